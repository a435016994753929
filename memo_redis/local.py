"""An optional in-process (L1) cache in front of Redis, kept coherent by client tracking.

A dedicated connection subscribes to ``__redis__:invalidate`` and turns on
``CLIENT TRACKING ... REDIRECT <itself> BCAST`` for the key prefixes of the functions that use the
local cache, plus memo_redis's generation keys. Redis then pushes the name of every such key that
changes, expires or is evicted; a background thread drops the matching local entries (a change of
a generation drops every local entry), typically well under a millisecond after the write.
Invalidating one entry deletes its key, which is reported like any other change. (Fence keys are
tracked too, but only count as a sign of life: a fence guards a computation's store, never a
cached value.)

Correctness rules:

* an entry is only filled from a read that started after tracking was active and during which no
  invalidation of that key (or of a scope above it, or of everything) arrived (an *epoch* check
  against the latest invalidations kept), so a value read before a write never lands after it,
  and writes to other keys do not keep hot keys out of the L1;
* if the tracking connection drops, or stays silent past a PING (a dead peer or a partition), the
  local cache is emptied and bypassed until it is back;
* tracking a new prefix reconnects the listener at once (the caller never waits for it); local
  hits pause until the new prefix is tracked;
* a forked child starts with an empty local cache and a tracking connection of its own;
* if the server cannot track (older than Redis 6, or the command is refused), the local cache
  switches itself off with one log line and every call goes to Redis as before.

Values are returned as the same object on every local hit (like :func:`functools.lru_cache`): do
not mutate them. An entry lives at most ``max_ttl`` seconds locally; it is dropped when Redis
deletes the key, which for an expiring key happens in Redis's expire cycle (usually within a
hundred milliseconds of the TTL).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import weakref
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError

from .exceptions import ConfigError
from .keys import matches, scope_pattern
from .layout import INTERNAL_PREFIX
from .local_log import InvalidationLog, row_of

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger("memo_redis")

_CHANNEL = b"__redis__:invalidate"
_GEN = (INTERNAL_PREFIX + "gen:").encode()
_FENCE = (INTERNAL_PREFIX + "fence:").encode()
_POLL = 0.2  # seconds the listener blocks on its socket before checking for a stop or a PING
_KEEPALIVE = 1.0  # seconds of silence after which the tracking connection is PINGed


class _Missing:
    __slots__ = ()


_MISS = _Missing()

_instances: weakref.WeakSet[LocalCache] = weakref.WeakSet()
_fork_hook_lock = threading.Lock()
_fork_hook_registered = False


def _after_fork_in_child() -> None:
    for local in list(_instances):
        local._forked()


def _watch_forks(local: LocalCache) -> None:
    global _fork_hook_registered
    with _fork_hook_lock:
        _instances.add(local)
        if not _fork_hook_registered and hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_after_fork_in_child)
            _fork_hook_registered = True


def _check_bounds(max_entries: int, max_bytes: int, max_ttl: float) -> None:
    for name, value in (("max_entries", max_entries), ("max_bytes", max_bytes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    if isinstance(max_ttl, bool) or not isinstance(max_ttl, (int, float)) or max_ttl <= 0:
        raise ConfigError(f"max_ttl must be a number of seconds > 0, got {max_ttl!r}")


class LocalCache:
    """A bounded LRU of decoded values (by entries and by bytes), coherent with Redis.

    ``max_entries`` and ``max_bytes`` bound memory (bytes are the size of the stored Redis value,
    a good proxy for the decoded object's); ``max_ttl`` bounds how long an entry lives locally even
    if no invalidation arrives.
    """

    def __init__(self, cache: Engine, *, max_entries: int = 10_000,
                 max_bytes: int = 64 * 1024 * 1024, max_ttl: float = 300.0) -> None:
        _check_bounds(max_entries, max_bytes, max_ttl)
        self._cache = cache
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.max_ttl = float(max_ttl)
        self.keepalive = _KEEPALIVE
        """Seconds of silence after which the tracking connection is PINGed; no answer within
        the socket timeout counts as a lost connection."""
        self._entries: OrderedDict[str, tuple[Any, int, float]] = OrderedDict()
        self._rows: dict[str, set[str]] = {}
        """The keys held, by row (:func:`~memo_redis.local_log.row_of`): what a replaced
        generation drops is found without a pass over every entry."""
        self._bytes = 0
        self._lock = threading.Lock()
        self._log = InvalidationLog()
        self._prefixes: set[str] = set()
        self._version = 0  # bumped when the tracked prefixes change
        self._active = False
        self._disabled = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self._connection: Any = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self.hits = 0
        self.invalidations = 0
        _watch_forks(self)

    # -- configuration -----------------------------------------------------------------------

    def configure(self, *, max_entries: int, max_bytes: int, max_ttl: float) -> None:
        """Change the bounds; entries over the new ones are evicted (least recently used first)."""
        _check_bounds(max_entries, max_bytes, max_ttl)
        with self._lock:
            self.max_entries = max_entries
            self.max_bytes = max_bytes
            self.max_ttl = float(max_ttl)
            self._evict()

    def track_prefix(self, prefix: str) -> None:
        """Ask Redis to report changes of keys starting with ``prefix``.

        Never waits: a running listener is told to reconnect with the new prefix, and local hits
        pause (calls go to Redis) until it has.
        """
        with self._lock:
            if prefix in self._prefixes:
                return
            self._prefixes.add(prefix)
            if self._thread is None:
                return
            self._version += 1
            self._active = False
            self._ready.clear()
            self._log.record(None)
            self._reset()
        self._kick()

    @property
    def enabled(self) -> bool:
        """True while local hits are served (tracking is active)."""
        return self._active

    @property
    def disabled(self) -> bool:
        """True once the server refused to track: the local cache stays off."""
        return self._disabled

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        """Whether ``key`` has a local entry (expired or not; nothing is counted or moved)."""
        return key in self._entries

    @property
    def size_bytes(self) -> int:
        """Bytes currently held (sum of the stored values' sizes)."""
        return self._bytes

    # -- the hit path --------------------------------------------------------------------------

    def get(self, key: str) -> Any:
        """The local value of ``key``, or the private miss marker (see :meth:`is_miss`)."""
        if not self._active:
            if self._thread is None and not self._disabled and not self._closed:
                self._start()
            return _MISS
        entries = self._entries
        entry = entries.get(key)
        if entry is None:
            return _MISS
        if entry[2] < time.monotonic():
            self._drop(key)
            return _MISS
        try:
            entries.move_to_end(key)
        except KeyError:  # dropped by an invalidation that raced this read
            return _MISS
        self.hits += 1
        return entry[0]

    @staticmethod
    def is_miss(value: Any) -> bool:
        """True when :meth:`get` found nothing."""
        return value is _MISS

    def epoch(self) -> int:
        """Take before reading Redis and pass to :meth:`put`: a fill racing an invalidation is
        dropped."""
        return self._log.epoch if self._active else -1

    def put(self, key: str, value: Any, size: int, ttl_ms: int | None, epoch: int) -> None:
        """Keep ``value`` locally unless an invalidation touching ``key`` arrived since ``epoch``
        was taken."""
        if epoch < 0 or size > self.max_bytes:
            return
        lifetime = self.max_ttl if ttl_ms is None else min(self.max_ttl, ttl_ms / 1000.0)
        with self._lock:
            if not self._active or self._log.touched_since(epoch, key):
                return
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            else:
                self._rows.setdefault(row_of(key), set()).add(key)
            self._entries[key] = (value, size, time.monotonic() + lifetime)
            self._bytes += size
            self._evict()

    def _evict(self) -> None:
        while self._entries and (
            len(self._entries) > self.max_entries or self._bytes > self.max_bytes
        ):
            key, (_, dropped, _) = self._entries.popitem(last=False)
            self._bytes -= dropped
            self._unlist(key)

    def clear(self) -> None:
        """Drop every local entry."""
        with self._lock:
            self._log.record(None)
            self._reset()

    def close(self) -> None:
        """Stop the tracking thread and drop everything; the local cache stays off."""
        self._closed = True
        self._stop.set()
        self._active = False
        self.clear()
        self._kick()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=2.0)
        self._thread = None

    def forget(self, kind: str, target: str) -> None:
        """This process invalidated ``target`` (``kind`` "key", or "pattern" a Redis glob): drop
        what it matches now, without waiting for the server's notification, and refuse fills
        that read Redis before."""
        if kind == "key":
            with self._lock:
                self._log.record(target)
                self._pop(target)
            return
        scope = scope_pattern(target)
        if scope is not None:
            self._drop_scope(scope)
            return
        with self._lock:
            self._log.record(None)  # fills in flight refused whatever their key (rare globs)
            for key in [k for k in self._entries if matches(target, k)]:
                self._pop(key)

    def _drop_scope(self, scope: str) -> None:
        """Drop every entry under ``scope`` (all of them for ``""``): what replacing the scope's
        generation makes unreachable."""
        if not scope:
            self.clear()
            return
        start = scope + ":"
        with self._lock:
            self._log.record(start, under=True)
            rows = self._rows
            if scope.count(":") >= 2:  # one row (or less): its own keys
                found = list(rows.get(row_of(start), ()))
            else:  # a table (or more): the rows under it
                found = [k for row, keys in rows.items()
                         if row == scope or row.startswith(start) for k in keys]
            for key in found:
                if key.startswith(start):
                    self._pop(key)

    def _pop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= entry[1]
            self._unlist(key)

    def _unlist(self, key: str) -> None:
        row = row_of(key)
        keys = self._rows.get(row)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._rows[row]

    def _reset(self) -> None:
        self._entries.clear()
        self._rows.clear()
        self._bytes = 0

    def _drop(self, key: str) -> None:
        with self._lock:
            self._pop(key)

    def _forked(self) -> None:
        """In a forked child: forget the parent's thread and connection (never touch its socket),
        drop everything; the next lookup starts tracking anew."""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = None
        self._connection = None
        self._active = False
        self._log.record(None)
        self._reset()

    # -- tracking ------------------------------------------------------------------------------

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None or self._disabled or self._closed:
                return
            self._stop.clear()
            self._ready.clear()
            self._thread = threading.Thread(target=self._listen, name="memo_redis-tracking",
                                            daemon=True)
            self._thread.start()

    def _kick(self) -> None:
        """Wake the listener out of its socket wait by shutting the socket down: it reconnects
        (or stops). Only the OS socket is touched: redis-py's connection is not thread-safe."""
        sock = getattr(self._connection, "_sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def wait_ready(self, timeout: float = 5.0) -> bool:
        """Start tracking if needed and wait until local hits can be served (for tests)."""
        if self._thread is None and not self._disabled and not self._closed:
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
        # A connection like the cache's own (same server, credentials, TLS; the current master
        # under Sentinel), speaking RESP2 so that invalidations arrive as pub/sub messages.
        pool = self._cache.client.connection_pool
        kwargs = dict(pool.connection_kwargs)
        kwargs.update(decode_responses=False, protocol=2, health_check_interval=0)
        if "maint_notifications_config" in kwargs:
            # redis-py >= 7 turns these on for TCP; they need RESP3 (or hiredis), not RESP2.
            from redis.maint_notifications import MaintNotificationsConfig

            kwargs["maint_notifications_config"] = MaintNotificationsConfig(enabled=False)
            kwargs.pop("maint_notifications_pool_handler", None)
        connection = pool.connection_class(**kwargs)
        connection.connect()
        return connection

    def _listen(self) -> None:
        delay = 0.05
        while not self._stop.is_set():
            connection: Any = None
            with self._lock:
                version = self._version
                prefixes = self._tracking_prefixes()
            try:
                connection = self._connection = self._connect()
                connection.send_command("CLIENT", "ID")
                client_id = connection.read_response()
                args: list[Any] = ["CLIENT", "TRACKING", "ON", "REDIRECT", client_id, "BCAST"]
                for prefix in prefixes:
                    args += ["PREFIX", prefix]
                connection.send_command(*args)
                connection.read_response()
                connection.send_command("SUBSCRIBE", _CHANNEL)
                connection.read_response()
                with self._lock:
                    if version != self._version or self._stop.is_set():
                        continue  # prefixes changed meanwhile: track them first (finally runs)
                    self._log.record(None)
                    self._reset()
                    self._active = True
                self._ready.set()
                delay = 0.05
                self._serve(connection, version)
            except ResponseError as exc:
                self._disabled = True
                self._ready.set()
                log.warning("memo_redis: local cache off, the server cannot track keys: %s", exc)
                return
            except (RedisError, OSError) as exc:
                if version == self._version and not self._stop.is_set():
                    log.debug("memo_redis: tracking connection lost: %s", exc)
            finally:
                with self._lock:
                    self._active = False
                    if not self._disabled:
                        self._ready.clear()
                    self._log.record(None)
                    self._reset()
                    self._connection = None
                if connection is not None:
                    connection.disconnect()
            if version != self._version:
                continue  # reconnect at once with the new prefixes
            self._stop.wait(delay)
            delay = min(delay * 2, 1.0)

    def _serve(self, connection: Any, version: int) -> None:
        """Apply invalidations until stopped, told to re-track, or the connection fails."""
        timeout = connection.socket_timeout or 1.0
        heard = time.monotonic()
        pinged = False
        while not self._stop.is_set() and version == self._version:
            if connection.can_read(timeout=_POLL):
                self._handle(connection.read_response())
                while connection.can_read(timeout=0):  # a burst: one wake-up for all of it
                    self._handle(connection.read_response())
                heard = time.monotonic()
                pinged = False
                continue
            silent = time.monotonic() - heard
            if pinged and silent > self.keepalive + timeout:
                raise RedisConnectionError("the tracking connection did not answer a PING")
            if not pinged and silent > self.keepalive:
                connection.send_command("PING")
                pinged = True

    def _handle(self, message: Any) -> None:
        if not isinstance(message, list) or len(message) < 3 or message[0] != b"message":
            return
        keys = message[2]
        self.invalidations += 1
        if keys is None:  # FLUSHALL / FLUSHDB
            self.clear()
            return
        keys = [raw for raw in keys if not raw.startswith(_FENCE)]
        if not keys:
            return  # fences change on every miss and store; cached values do not depend on them
        scopes = [raw[len(_GEN):].decode("utf-8", "surrogateescape")
                  for raw in keys if raw.startswith(_GEN)]
        for scope in scopes:  # a replaced generation: the entries under its scope
            self._drop_scope(scope)
        with self._lock:
            for raw in keys:
                if not raw.startswith(_GEN):
                    key = raw.decode("utf-8", "surrogateescape")
                    self._log.record(key)
                    self._pop(key)


__all__ = ["LocalCache"]
