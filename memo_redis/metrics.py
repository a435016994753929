"""Per-function cache metrics: counters, latency histograms, event hooks, spans.

One :class:`FunctionMetrics` per decorated function (its qualified name and category) counts
hits, misses, L1 hits, stores, refused stores, errors, single-flight waits and wait time, early
refreshes, invalidations and bytes stored, and keeps two latency histograms (lookup, compute).
They live in a process-wide registry::

    >>> from memo_redis import metrics
    >>> m = metrics.register("app.prices.fetch", "data")
    >>> m.hit(lookup_ns=180_000); m.miss(); m.store(nbytes=120)
    >>> snap = metrics.snapshot()["app.prices.fetch:data"]
    >>> snap["hits"], snap["misses"], snap["bytes_stored"], snap["lookup_seconds"]["count"]
    (1, 1, 120, 1)
    >>> metrics.reset()

Recording is plain attribute arithmetic, without locks: two threads incrementing the same
counter at the same instant may lose one increment. That is deliberate (a lock would cost more
than the rest of an L1 hit) and harmless for monitoring; counters never go backwards except on
:func:`reset`. Histograms are lists of ints indexed with :func:`bisect.bisect_left` over fixed
bounds (:data:`BUCKETS`, 10 us to 10 s).

Event hooks, for statsd, structured logs or anything else: a listener receives a small frozen
:class:`Event` for every recorded event. Events are only built while at least one listener is
registered, so listeners cost nothing when there are none. A listener runs on the caller's
thread, inside the cached call: keep it fast (hand off to a queue for network I/O). A listener
that raises is logged once and otherwise ignored::

    import logging
    from memo_redis import metrics

    log = logging.getLogger("cache.events")

    def to_statsd_lines(event: metrics.Event) -> None:
        # e.g. "memo.app.prices.fetch.hit:1|c" then "...lookup:0.180|ms"
        base = f"memo.{event.function}"
        log.info("%s.%s:1|c", base, event.kind)
        if event.duration is not None:
            log.info("%s.%s_ms:%.3f|ms", base, event.kind, event.duration * 1000)

    metrics.add_listener(to_statsd_lines)

Exporters: :class:`RedisMetricsPublisher` and :func:`read_published` (aggregation across
processes in Redis, read by ``memo-redis stats`` and ``memo-redis top``),
:func:`start_prometheus_exporter` (extra ``prometheus``) and :func:`instrument_opentelemetry`
(extra ``otel``) are importable from here; they live in :mod:`memo_redis.exporters`.
"""

from __future__ import annotations

import logging
import threading
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .metric_summary import BOUNDS_NS as _BOUNDS_NS
from .metric_summary import BUCKETS, COUNTERS, summarize
from .metric_summary import NBUCKETS as _NBUCKETS
from .tracing import span

if TYPE_CHECKING:
    from .exporters.otel import instrument_opentelemetry
    from .exporters.prometheus import MemoRedisCollector, start_prometheus_exporter
    from .exporters.published import RedisMetricsPublisher, read_published

__all__ = [
    "BUCKETS",
    "COUNTERS",
    "KINDS",
    "Event",
    "FunctionMetrics",
    "MemoRedisCollector",
    "RedisMetricsPublisher",
    "add_listener",
    "enabled",
    "functions",
    "get",
    "instrument_opentelemetry",
    "read_published",
    "register",
    "remove_listener",
    "reset",
    "set_enabled",
    "snapshot",
    "span",
    "start_prometheus_exporter",
    "summarize",
]

log = logging.getLogger("memo_redis.metrics")

KINDS = frozenset({
    "hit", "miss", "l1_hit", "store", "refused_store", "error", "wait", "early_refresh",
    "invalidate",
})  # fmt: skip
"""The values of :attr:`Event.kind`."""


@dataclass(frozen=True, slots=True)
class Event:
    """One recorded event, as given to listeners.

    ``duration`` is in seconds: the lookup's for ``hit``/``miss`` (when the caller timed it),
    the wait's for ``wait``, else ``None``. ``key`` is the Redis key (the pattern for
    ``invalidate``) when the caller passed it. ``size`` is the stored bytes for ``store``.
    """

    function: str
    category: str
    kind: str
    duration: float | None = None
    key: str | None = None
    size: int | None = None


Listener = Callable[[Event], object]
_listeners: tuple[Listener, ...] = ()
_failed_listeners: set[int] = set()
_listeners_lock = threading.Lock()


def add_listener(callback: Listener) -> None:
    """Call ``callback(event)`` for every event recorded from now on (any function)."""
    global _listeners
    if not callable(callback):
        raise TypeError(f"a listener must be callable, got {type(callback).__name__}")
    with _listeners_lock:
        _listeners = (*_listeners, callback)


def remove_listener(callback: Listener) -> None:
    """Stop calling ``callback``; a callback that was never added is ignored."""
    global _listeners
    with _listeners_lock:
        kept = list(_listeners)
        if callback in kept:
            kept.remove(callback)
        _listeners = tuple(kept)


def _emit(m: FunctionMetrics, kind: str, duration_ns: int, key: str | None,
          size: int | None = None) -> None:
    event = Event(m.function, m.category, kind,
                  duration_ns / 1e9 if duration_ns >= 0 else None, key, size)
    for callback in _listeners:
        try:
            callback(event)
        except Exception:
            if id(callback) not in _failed_listeners:
                _failed_listeners.add(id(callback))
                log.exception("memo_redis: metrics listener %r failed (logged once)", callback)


class FunctionMetrics:
    """The counters and histograms of one cached function; get one with :func:`register`.

    The recorder methods are what the decorators call: :meth:`hit`, :meth:`l1_hit`,
    :meth:`miss`, :meth:`computed`, :meth:`store`, :meth:`refused_store`, :meth:`error`,
    :meth:`wait`, :meth:`early_refresh`, :meth:`invalidate`. Durations are integer nanoseconds
    (``time.perf_counter_ns()`` differences); ``-1`` (the default) means "not timed".
    """

    __slots__ = (
        "bytes_stored", "category", "compute_buckets", "compute_sum_ns", "early_refreshes",
        "errors", "flight_wait_ns", "flight_waits", "function", "hits", "id", "invalidations",
        "l1_hits", "lookup_buckets", "lookup_sum_ns", "misses", "refused_stores", "stores",
    )  # fmt: skip

    def __init__(self, function: str, category: str) -> None:
        self.function = function
        self.category = category
        self.id = f"{function}:{category}"
        self._zero()

    def _zero(self) -> None:
        self.hits = self.misses = self.l1_hits = self.stores = self.refused_stores = 0
        self.errors = self.flight_waits = self.early_refreshes = self.invalidations = 0
        self.bytes_stored = self.flight_wait_ns = self.lookup_sum_ns = self.compute_sum_ns = 0
        self.lookup_buckets = [0] * _NBUCKETS
        self.compute_buckets = [0] * _NBUCKETS

    def __repr__(self) -> str:
        return (f"FunctionMetrics({self.function!r}, {self.category!r}, hits={self.hits}, "
                f"misses={self.misses}, l1_hits={self.l1_hits})")

    # -- recorders (hot path: keep them minimal) -----------------------------------------------

    def hit(self, lookup_ns: int = -1, key: str | None = None) -> None:
        """A value served from Redis; ``lookup_ns``: the lookup's duration, if timed."""
        self.hits += 1
        if lookup_ns >= 0:
            self.lookup_buckets[bisect_left(_BOUNDS_NS, lookup_ns)] += 1
            self.lookup_sum_ns += lookup_ns
        if _listeners:
            _emit(self, "hit", lookup_ns, key)

    def l1_hit(self, key: str | None = None) -> None:
        """A value served from the in-process L1 cache (not timed: it is too fast to matter)."""
        self.l1_hits += 1
        if _listeners:
            _emit(self, "l1_hit", -1, key)

    def miss(self, lookup_ns: int = -1, key: str | None = None) -> None:
        """A lookup that found no valid entry (the function is then computed)."""
        self.misses += 1
        if lookup_ns >= 0:
            self.lookup_buckets[bisect_left(_BOUNDS_NS, lookup_ns)] += 1
            self.lookup_sum_ns += lookup_ns
        if _listeners:
            _emit(self, "miss", lookup_ns, key)

    def computed(self, compute_ns: int) -> None:
        """The wrapped function ran for ``compute_ns`` (histogram only, no event)."""
        self.compute_buckets[bisect_left(_BOUNDS_NS, compute_ns)] += 1
        self.compute_sum_ns += compute_ns

    def store(self, nbytes: int = 0, key: str | None = None) -> None:
        """A result was stored (``nbytes``: the stored value's size)."""
        self.stores += 1
        self.bytes_stored += nbytes
        if _listeners:
            _emit(self, "store", -1, key, nbytes)

    def refused_store(self, key: str | None = None) -> None:
        """A store refused because an invalidation happened during the computation."""
        self.refused_stores += 1
        if _listeners:
            _emit(self, "refused_store", -1, key)

    def error(self, key: str | None = None) -> None:
        """A cache operation failed and the call fell back to the function."""
        self.errors += 1
        if _listeners:
            _emit(self, "error", -1, key)

    def wait(self, wait_ns: int, key: str | None = None) -> None:
        """The call waited ``wait_ns`` for another caller's computation (single flight)."""
        self.flight_waits += 1
        self.flight_wait_ns += wait_ns
        if _listeners:
            _emit(self, "wait", wait_ns, key)

    def early_refresh(self, key: str | None = None) -> None:
        """A hit refreshed before expiry (XFetch)."""
        self.early_refreshes += 1
        if _listeners:
            _emit(self, "early_refresh", -1, key)

    def invalidate(self, pattern: str | None = None) -> None:
        """An invalidation done on behalf of this function (``pattern``: what was invalidated)."""
        self.invalidations += 1
        if _listeners:
            _emit(self, "invalidate", -1, pattern)

    # -- reading ---------------------------------------------------------------------------------

    @property
    def flight_wait_seconds(self) -> float:
        """Total single-flight wait time, in seconds."""
        return self.flight_wait_ns / 1e9

    def counts(self) -> dict[str, int]:
        """Every integer this object holds, flat: the counters, ``flight_wait_ns``, and per
        histogram ``<phase>_sum_ns`` and ``<phase>_b<i>`` (non-cumulative bucket counts).

        This is the form published to Redis; :func:`summarize` turns it into a report.
        """
        out = {name: getattr(self, name) for name in COUNTERS}
        out["flight_wait_ns"] = self.flight_wait_ns
        for phase, buckets, total in (("lookup", self.lookup_buckets, self.lookup_sum_ns),
                                      ("compute", self.compute_buckets, self.compute_sum_ns)):
            out[f"{phase}_sum_ns"] = total
            for i, n in enumerate(list(buckets)):
                out[f"{phase}_b{i}"] = n
        return out

    def summary(self) -> dict[str, Any]:
        """This function's counters and histogram summaries (see :func:`summarize`)."""
        return {"function": self.function, "category": self.category,
                **summarize(self.counts())}


class _DisabledFunctionMetrics(FunctionMetrics):
    """What every :class:`FunctionMetrics` becomes under ``set_enabled(False)``: no-op
    recorders (the class is swapped in place, so the enabled path pays no flag test)."""

    __slots__ = ()

    def hit(self, lookup_ns: int = -1, key: str | None = None) -> None:
        pass

    def l1_hit(self, key: str | None = None) -> None:
        pass

    def miss(self, lookup_ns: int = -1, key: str | None = None) -> None:
        pass

    def computed(self, compute_ns: int) -> None:
        pass

    def store(self, nbytes: int = 0, key: str | None = None) -> None:
        pass

    def refused_store(self, key: str | None = None) -> None:
        pass

    def error(self, key: str | None = None) -> None:
        pass

    def wait(self, wait_ns: int, key: str | None = None) -> None:
        pass

    def early_refresh(self, key: str | None = None) -> None:
        pass

    def invalidate(self, pattern: str | None = None) -> None:
        pass


# -- registry ---------------------------------------------------------------------------------

_registry: dict[tuple[str, str], FunctionMetrics] = {}
_registry_lock = threading.Lock()
_enabled = True


def register(function: str, category: str = "data") -> FunctionMetrics:
    """The :class:`FunctionMetrics` of ``function`` (a qualified name) in ``category``,
    created on first use; the same object for the same pair afterwards."""
    for label, value in (("function", function), ("category", category)):
        if not isinstance(value, str) or not value:
            raise ValueError(f"{label} must be a non-empty str, got {value!r}")
    found = _registry.get((function, category))
    if found is not None:
        return found
    with _registry_lock:
        found = _registry.get((function, category))
        if found is None:
            found = _registry[(function, category)] = FunctionMetrics(function, category)
            if not _enabled:
                found.__class__ = _DisabledFunctionMetrics
        return found


def get(function: str, category: str = "data") -> FunctionMetrics | None:
    """The registered :class:`FunctionMetrics` of ``function``/``category``, or ``None``."""
    return _registry.get((function, category))


def functions() -> list[FunctionMetrics]:
    """Every registered :class:`FunctionMetrics`, in registration order."""
    with _registry_lock:
        return list(_registry.values())


def snapshot() -> dict[str, dict[str, Any]]:
    """Every function's counters and histogram summaries, JSON-serializable, keyed by
    ``"<function>:<category>"`` (see :func:`summarize` for one entry's fields)."""
    return {m.id: m.summary() for m in functions()}


def reset() -> None:
    """Zero every function's counters and histograms (registrations are kept)."""
    for m in functions():
        m._zero()


def set_enabled(flag: bool) -> None:
    """Turn recording on or off for the whole process (on by default). Off, every recorder is
    a no-op; counts already recorded are kept."""
    global _enabled
    with _registry_lock:
        _enabled = bool(flag)
        cls = FunctionMetrics if _enabled else _DisabledFunctionMetrics
        for m in _registry.values():
            m.__class__ = cls


def enabled() -> bool:
    """Whether recording is on (see :func:`set_enabled`)."""
    return _enabled


_LAZY = {
    "RedisMetricsPublisher": "published",
    "read_published": "published",
    "MemoRedisCollector": "prometheus",
    "start_prometheus_exporter": "prometheus",
    "instrument_opentelemetry": "otel",
}


def __getattr__(name: str) -> Any:
    """Exporters are imported on first use (they need redis-py, prometheus_client, otel)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'memo_redis.metrics' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"memo_redis.exporters.{module}"), name)
