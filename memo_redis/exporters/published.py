"""Cross-process metrics: every process adds its counts into Redis, in batches.

A :class:`RedisMetricsPublisher` wakes up every ``interval`` seconds in a background thread and
sends, in one pipeline, what each function's counters grew by since its last flush::

    from memo_redis import RedisCaching, metrics

    cache = RedisCaching()
    publisher = metrics.RedisMetricsPublisher(cache.client, interval=5.0).start()
    ...
    publisher.stop()          # one last flush (also done at interpreter exit)

Layout (bookkeeping keys, never matched by an invalidation):

* ``__memo__:metrics:<function>:<category>``: a hash of the flat counts of
  :meth:`memo_redis.metrics.FunctionMetrics.counts` summed over every process (``HINCRBY``),
  plus ``function``, ``category``, ``first_ms`` (first publication) and ``updated_ms``;
* ``__memo__:metrics``: a sorted set of the published ids scored by their last publication
  (milliseconds); members older than ``ttl`` are dropped at each flush.

Both expire ``ttl`` seconds after the last flush that touched them, so the figures of functions
nobody calls any more disappear. The cached calls themselves never wait for Redis here.
A publisher does not survive ``fork()``: start one in each worker process.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from .. import metrics

__all__ = ["METRICS_PREFIX", "REGISTRY_KEY", "RedisMetricsPublisher", "read_published"]

log = logging.getLogger("memo_redis.metrics")

METRICS_PREFIX = "__memo__:metrics:"
REGISTRY_KEY = "__memo__:metrics"


def _client_of(target: Any) -> Any:
    """A redis-py client from a client or a :class:`~memo_redis.RedisCaching`."""
    if hasattr(target, "pipeline"):
        return target
    client = getattr(target, "client", None)
    if client is None or not hasattr(client, "pipeline"):
        raise TypeError(
            f"expected a redis-py client or a RedisCaching, got {type(target).__name__}"
        )
    return client


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class RedisMetricsPublisher:
    """Adds this process's metric deltas into Redis every ``interval`` seconds.

    ``client`` is a redis-py client (standalone, Sentinel-managed or cluster) or a
    :class:`~memo_redis.RedisCaching` (its client is used). ``ttl`` (seconds, default the larger
    of 300 and 10 intervals) is how long published figures outlive the last flush.

    Failures (Redis down) are logged once per outage; the unsent deltas are kept and sent with
    the next successful flush.
    """

    def __init__(self, client: Any, interval: float = 5.0, *, ttl: float | None = None) -> None:
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not (
            0 < interval < 86_400
        ):
            raise ValueError(
                f"interval must be a number of seconds in (0, 86400), got {interval!r}"
            )
        self.client = _client_of(client)
        self.interval = float(interval)
        self.ttl = max(300.0, 10 * self.interval) if ttl is None else float(ttl)
        if not self.ttl >= 1:
            raise ValueError(f"ttl must be at least 1 second, got {ttl!r}")
        self._last: dict[str, dict[str, int]] = {}
        self._flush_lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"RedisMetricsPublisher(interval={self.interval}, ttl={self.ttl}, {state})"

    @property
    def running(self) -> bool:
        """Whether the background thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> RedisMetricsPublisher:
        """Start the background thread (a no-op when running); returns ``self``.

        The deltas left at interpreter exit are sent then (an ``atexit`` hook calls
        :meth:`stop`).
        """
        if not self.running:
            atexit.register(self.stop)
            self._stopping.clear()
            self._thread = threading.Thread(
                target=self._run, name="memo-redis-metrics", daemon=True
            )
            self._thread.start()
        return self

    def stop(self, *, flush: bool = True, timeout: float = 5.0) -> None:
        """Stop the thread, then (by default) send what is left; never raises on Redis errors."""
        atexit.unregister(self.stop)
        self._stopping.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        if flush:
            self._safe_flush()

    def __enter__(self) -> RedisMetricsPublisher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stopping.wait(self.interval):
            self._safe_flush()

    def _safe_flush(self) -> None:
        try:
            self.flush()
        except Exception as exc:
            if not self._failing:
                self._failing = True
                log.warning("memo_redis: cannot publish metrics (will retry): %s", exc)
            return
        if self._failing:
            self._failing = False
            log.warning("memo_redis: publishing metrics again")

    def flush(self) -> int:
        """Send the deltas since the last flush now, in one pipeline; returns the number of
        functions written. Raises redis-py's errors (the background thread logs them)."""
        with self._flush_lock:
            pending: list[tuple[metrics.FunctionMetrics, dict[str, int], dict[str, int]]] = []
            for m in metrics.functions():
                current = m.counts()
                last = self._last.get(m.id, {})
                deltas: dict[str, int] = {}
                for name, value in current.items():
                    previous = last.get(name, 0)
                    # A smaller value means metrics.reset() ran: count from zero again.
                    delta = value - previous if value >= previous else value
                    if delta:
                        deltas[name] = delta
                if deltas:
                    pending.append((m, current, deltas))
            if not pending:
                return 0
            now_ms = int(time.time() * 1000)
            ttl_s = max(1, round(self.ttl))
            pipe = self.client.pipeline(transaction=False)
            for m, _, deltas in pending:
                key = METRICS_PREFIX + m.id
                for name, delta in deltas.items():
                    pipe.hincrby(key, name, delta)
                pipe.hset(key, mapping={"function": m.function, "category": m.category,
                                        "updated_ms": now_ms})
                pipe.hsetnx(key, "first_ms", now_ms)
                pipe.expire(key, ttl_s)
                pipe.zadd(REGISTRY_KEY, {m.id: now_ms})
            pipe.zremrangebyscore(REGISTRY_KEY, "-inf", now_ms - ttl_s * 1000)
            pipe.expire(REGISTRY_KEY, ttl_s)
            pipe.execute()
            for m, current, _ in pending:
                self._last[m.id] = current
            return len(pending)


def read_published(client: Any) -> dict[str, dict[str, Any]]:
    """The published totals of every function, keyed like :func:`memo_redis.metrics.snapshot`.

    Each entry is a :func:`memo_redis.metrics.summarize` report plus ``function``,
    ``category``, ``first_ms`` and ``updated_ms`` (milliseconds since the epoch). ``client``
    is a redis-py client or a :class:`~memo_redis.RedisCaching`; ``{}`` when nothing was
    published.
    """
    client = _client_of(client)
    ids = [_text(i) for i in client.zrange(REGISTRY_KEY, 0, -1)]
    if not ids:
        return {}
    pipe = client.pipeline(transaction=False)
    for ident in ids:
        pipe.hgetall(METRICS_PREFIX + ident)
    out: dict[str, dict[str, Any]] = {}
    for ident, raw in zip(ids, pipe.execute(), strict=True):
        if not raw:
            continue  # expired
        fields = {_text(k): _text(v) for k, v in raw.items()}
        out[ident] = _entry(ident, fields)
    return out


def _entry(ident: str, fields: Mapping[str, str]) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for name, value in fields.items():
        try:
            counts[name] = int(value)
        except ValueError:
            continue
    function, _, category = ident.rpartition(":")
    return {
        "function": fields.get("function", function),
        "category": fields.get("category", category),
        "first_ms": counts.get("first_ms"),
        "updated_ms": counts.get("updated_ms"),
        **metrics.summarize(counts),
    }
