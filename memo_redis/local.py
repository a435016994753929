"""An optional in-process (L1) cache in front of Redis, kept coherent by client tracking.

A dedicated connection subscribes to ``__redis__:invalidate`` and turns on
``CLIENT TRACKING ... REDIRECT <itself> BCAST`` for the key prefixes of the functions that use the
local cache, plus memo_redis's generation and fence keys. Redis then pushes the name of every such
key that changes or expires; a background thread drops the matching local entries (an invalidation
of a scope drops every local entry), typically well under a millisecond after the write.

Correctness rules:

* an entry is only filled from a read that started after tracking was active and during which no
  invalidation arrived (an *epoch* check), so a value read before a write never lands after it;
* if the tracking connection drops, the local cache is emptied and bypassed until it is back;
* if the server cannot track (older than Redis 6, or the command is refused), the local cache
  switches itself off with one log line and every call goes to Redis as before.

Values are returned as the same object on every local hit (like :func:`functools.lru_cache`): do
not mutate them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import redis
from redis.exceptions import RedisError

from .exceptions import ConfigError
from .layout import INTERNAL_PREFIX

if TYPE_CHECKING:
    from .core import RedisCaching

log = logging.getLogger("memo_redis")

_CHANNEL = b"__redis__:invalidate"
_GEN = (INTERNAL_PREFIX + "gen:").encode()
_FENCE = (INTERNAL_PREFIX + "fence:").encode()


class _Missing:
    __slots__ = ()


_MISS = _Missing()


class LocalCache:
    """A bounded LRU of decoded values (by entries and by bytes), coherent with Redis.

    ``max_entries`` and ``max_bytes`` bound memory (bytes are the size of the stored Redis value,
    a good proxy for the decoded object's); ``max_ttl`` bounds how long an entry lives locally even
    if no invalidation arrives.
    """

    def __init__(self, cache: RedisCaching, *, max_entries: int = 10_000,
                 max_bytes: int = 64 * 1024 * 1024, max_ttl: float = 300.0) -> None:
        for name, value in (("max_entries", max_entries), ("max_bytes", max_bytes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if isinstance(max_ttl, bool) or not isinstance(max_ttl, (int, float)) or max_ttl <= 0:
            raise ConfigError(f"max_ttl must be a number of seconds > 0, got {max_ttl!r}")
        self._cache = cache
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.max_ttl = float(max_ttl)
        self._entries: OrderedDict[str, tuple[Any, int, float]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._epoch = 0
        self._prefixes: set[str] = set()
        self._active = False
        self._disabled = False
        self._thread: threading.Thread | None = None
        self._listener_prefixes: frozenset[str] = frozenset()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self.hits = 0
        self.invalidations = 0

    # -- configuration -----------------------------------------------------------------------

    def track_prefix(self, prefix: str) -> None:
        """Ask Redis to report changes of keys starting with ``prefix``."""
        with self._lock:
            if prefix in self._prefixes:
                return
            self._prefixes.add(prefix)
            restart = self._thread is not None
        if restart:
            self._restart()

    @property
    def enabled(self) -> bool:
        """True while local hits are served (tracking is active)."""
        return self._active

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        """Bytes currently held (sum of the stored values' sizes)."""
        return self._bytes

    # -- the hit path --------------------------------------------------------------------------

    def get(self, key: str) -> Any:
        """The local value of ``key``, or the private miss marker (see :meth:`is_miss`)."""
        if not self._active:
            if self._thread is None and not self._disabled:
                self._start()
            return _MISS
        entry = self._entries.get(key)
        if entry is None:
            return _MISS
        value, _, expires = entry
        if expires < time.monotonic():
            self._drop(key)
            return _MISS
        self.hits += 1
        return value

    @staticmethod
    def is_miss(value: Any) -> bool:
        """True when :meth:`get` found nothing."""
        return value is _MISS

    def epoch(self) -> int:
        """Take before reading Redis and pass to :meth:`put`: a fill racing an invalidation is
        dropped."""
        return self._epoch if self._active else -1

    def put(self, key: str, value: Any, size: int, ttl_ms: int | None, epoch: int) -> None:
        """Keep ``value`` locally unless an invalidation arrived since ``epoch`` was taken."""
        if epoch < 0 or size > self.max_bytes:
            return
        lifetime = self.max_ttl if ttl_ms is None else min(self.max_ttl, ttl_ms / 1000.0)
        with self._lock:
            if epoch != self._epoch or not self._active:
                return
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._entries[key] = (value, size, time.monotonic() + lifetime)
            self._bytes += size
            while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
                _, (_, dropped, _) = self._entries.popitem(last=False)
                self._bytes -= dropped

    def clear(self) -> None:
        """Drop every local entry."""
        with self._lock:
            self._epoch += 1
            self._entries.clear()
            self._bytes = 0

    def close(self) -> None:
        """Stop the tracking thread and drop everything."""
        self._stop.set()
        self._active = False
        self.clear()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=2.0)
        self._thread = None

    def _drop(self, key: str) -> None:
        with self._lock:
            entry = self._entries.pop(key, None)
            if entry is not None:
                self._bytes -= entry[1]

    # -- tracking ------------------------------------------------------------------------------

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None or self._disabled:
                return
            self._stop.clear()
            self._ready.clear()
            self._thread = threading.Thread(target=self._listen, name="memo_redis-tracking",
                                            daemon=True)
            self._thread.start()

    def _restart(self) -> None:
        self._stop.set()
        self._active = False
        self.clear()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=2.0)
        self._thread = None
        self._start()

    def wait_ready(self, timeout: float = 5.0) -> bool:
        """Start tracking if needed and wait until local hits can be served (for tests)."""
        if self._thread is None and not self._disabled:
            self._start()
        return self._ready.wait(timeout) and self._active

    def _tracking_prefixes(self) -> list[str]:
        wanted = sorted({*self._prefixes, _GEN.decode(), _FENCE.decode()})
        # BCAST prefixes must not overlap: keep only the shortest of nested ones
        kept: list[str] = []
        for prefix in wanted:
            if not any(prefix.startswith(k) for k in kept):
                kept.append(prefix)
        return kept

    def _connect(self) -> Any:
        kwargs = dict(self._cache._client_kwargs())
        kwargs["decode_responses"] = False
        kwargs["protocol"] = 2  # invalidations arrive as pub/sub messages on this connection
        kwargs.pop("max_connections", None)
        connection_class: Any
        if "unix_socket_path" in kwargs:
            kwargs["path"] = kwargs.pop("unix_socket_path")
            connection_class = redis.UnixDomainSocketConnection
        elif kwargs.pop("ssl", False):
            connection_class = redis.SSLConnection
        else:
            connection_class = redis.Connection
        connection = connection_class(**kwargs)
        connection.connect()
        return connection

    def _listen(self) -> None:
        delay = 0.05
        while not self._stop.is_set():
            connection: Any = None
            try:
                connection = self._connect()
                connection.send_command("CLIENT", "ID")
                client_id = connection.read_response()
                prefixes = self._tracking_prefixes()
                args: list[Any] = ["CLIENT", "TRACKING", "ON", "REDIRECT", client_id, "BCAST"]
                for prefix in prefixes:
                    args += ["PREFIX", prefix]
                connection.send_command(*args)
                connection.read_response()
                connection.send_command("SUBSCRIBE", _CHANNEL)
                connection.read_response()
                self.clear()
                self._active = True
                self._ready.set()
                delay = 0.05
                while not self._stop.is_set():
                    if connection.can_read(timeout=0.2):
                        self._handle(connection.read_response())
            except redis.ResponseError as exc:
                self._disabled = True
                self._ready.set()
                log.warning("memo_redis: local cache off, the server cannot track keys: %s", exc)
                return
            except (RedisError, OSError) as exc:
                log.debug("memo_redis: tracking connection lost: %s", exc)
            finally:
                self._active = False
                self.clear()
                if connection is not None:
                    connection.disconnect()
            self._stop.wait(delay)
            delay = min(delay * 2, 1.0)

    def _handle(self, message: Any) -> None:
        if not isinstance(message, list) or len(message) < 3 or message[0] != b"message":
            return
        keys = message[2]
        self.invalidations += 1
        if keys is None:  # FLUSHALL / FLUSHDB
            self.clear()
            return
        with self._lock:
            self._epoch += 1
            for raw in keys:
                if raw.startswith(_GEN):
                    self._entries.clear()
                    self._bytes = 0
                    return
                key = (raw[len(_FENCE):] if raw.startswith(_FENCE) else raw).decode(
                    "utf-8", "surrogateescape")
                entry = self._entries.pop(key, None)
                if entry is not None:
                    self._bytes -= entry[1]


__all__ = ["LocalCache"]

