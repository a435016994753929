"""``cache_info()``: the per-process counters of one decorated function, mirrored into
:mod:`memo_redis.metrics`."""

from __future__ import annotations

import threading
from typing import NamedTuple

from .. import metrics


class CacheInfo(NamedTuple):
    """Per-process counters of one ``@cached`` function, like ``functools.lru_cache``'s.

    ``hits`` counts every hit; ``l1_hits`` is the part of them served by the in-process L1
    (``local=True``) without a Redis round trip.
    """

    hits: int
    misses: int
    errors: int
    stores: int
    l1_hits: int = 0


class Stats:
    """The read-through events of one function (see
    :class:`~memo_redis.protocol.readthrough.ReadEvents`), counted exactly."""

    __slots__ = ("_lock", "errors", "hits", "l1_hits", "misses", "recorder", "stores")

    def __init__(self, function: str, category: str) -> None:
        self.hits = self.misses = self.errors = self.stores = self.l1_hits = 0
        # ``x += 1`` on an attribute is not atomic: concurrent callers would lose counts.
        self._lock = threading.Lock()
        self.recorder = metrics.register(function, category)

    def hit(self, lookup_ns: int = -1) -> None:
        """A hit read from Redis (its lookup took ``lookup_ns``; -1: not timed)."""
        with self._lock:
            self.hits += 1
        self.recorder.hit(lookup_ns)

    def l1_hit(self) -> None:
        """A hit served by the in-process L1."""
        with self._lock:
            self.hits += 1
            self.l1_hits += 1
        self.recorder.l1_hit()

    def miss(self, lookup_ns: int = -1) -> None:
        """A miss (its lookup took ``lookup_ns``; -1: not timed)."""
        with self._lock:
            self.misses += 1
        self.recorder.miss(lookup_ns)

    def error(self) -> None:
        """A Redis failure (the call ran uncached)."""
        with self._lock:
            self.errors += 1
        self.recorder.error()

    def store(self) -> None:
        """A result stored."""
        with self._lock:
            self.stores += 1
        self.recorder.store()

    def refused_store(self) -> None:
        """A store refused (an invalidation happened since the claim)."""
        self.recorder.refused_store()

    def computed(self, nanoseconds: int) -> None:
        """A computation that took ``nanoseconds``."""
        self.recorder.computed(nanoseconds)

    def wait(self, nanoseconds: int) -> None:
        """A wait for another caller's computation (single flight)."""
        self.recorder.wait(nanoseconds)

    def early_refresh(self) -> None:
        """A hit recomputed before its expiry (XFetch); counted as a miss in cache_info()."""
        with self._lock:
            self.misses += 1
        self.recorder.early_refresh()

    def info(self) -> CacheInfo:
        """The counters now."""
        with self._lock:
            return CacheInfo(self.hits, self.misses, self.errors, self.stores, self.l1_hits)

    def clear(self) -> None:
        """Reset the counters (the metrics keep theirs)."""
        with self._lock:
            self.hits = self.misses = self.errors = self.stores = self.l1_hits = 0
