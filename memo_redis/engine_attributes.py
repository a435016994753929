"""The settings of a cache as attributes of the facade, read from (and a few written to) its
engine."""

from __future__ import annotations

from collections.abc import Callable

import redis
import redis.asyncio

from .breaker import CircuitBreaker
from .config import RedisArgs
from .engine import Engine
from .layout import KeyLayout
from .serialization import Serializer


class EngineAttributes:
    """Attributes of :class:`~memo_redis.RedisCaching` that forward to its :attr:`engine`."""

    engine: Engine

    @property
    def args(self) -> RedisArgs:
        """The connection settings."""
        return self.engine.args

    @property
    def namespace(self) -> str:
        """The first segment of default decorated keys (``"memo"``)."""
        return self.engine.namespace

    @property
    def serializer(self) -> Serializer:
        """How values are encoded."""
        return self.engine.serializer

    @property
    def rejected_values(self) -> int:
        """Values read that failed the seal check since this cache was created: with a signing
        or encryption key, those written without it, tampered with, copied from another key or
        sealed with a removed key; without one, sealed values. Each was a miss."""
        return self.engine.codec.rejected

    @property
    def digest_length(self) -> int:
        """Hex characters of argument digests in decorated keys."""
        return self.engine.digest_length

    @property
    def default_ttls(self) -> dict[str, int]:
        """Default TTL (seconds) per category."""
        return self.engine.default_ttls

    @property
    def strict(self) -> bool:
        """Do Redis failures raise :class:`CacheUnavailable` (instead of failing open)?"""
        return self.engine.strict

    @property
    def breaker(self) -> CircuitBreaker:
        """The circuit breaker."""
        return self.engine.gate.breaker

    @breaker.setter
    def breaker(self, breaker: CircuitBreaker) -> None:
        self.engine.gate.breaker = breaker

    @property
    def max_value_size(self) -> int | None:
        """Largest value stored (bytes, after compression), and largest decoded."""
        return self.engine.codec.max_value_size

    @max_value_size.setter
    def max_value_size(self, size: int | None) -> None:
        self.engine.codec.max_value_size = size

    @property
    def lock_wait(self) -> float:
        """Longest wait (seconds) for another caller's computation of a missing entry."""
        return self.engine.lock_wait

    @property
    def race_protection(self) -> bool:
        """Are stores checked against the invalidations that happened since their claim?"""
        return self.engine.race_protection

    @race_protection.setter
    def race_protection(self, enabled: bool) -> None:
        self.engine.race_protection = enabled

    @property
    def wait_replicas(self) -> int:
        """Replicas that must acknowledge each invalidation before it returns (0: none)."""
        return self.engine.wait_replicas

    @property
    def wait_timeout(self) -> float:
        """Longest wait (seconds) for ``wait_replicas`` replicas to acknowledge an invalidation."""
        return self.engine.wait_timeout

    @property
    def before_store(self) -> Callable[[str], None] | None:
        """Test hook: called with the key between a computation's return and its store."""
        return self.engine.before_store

    @before_store.setter
    def before_store(self, hook: Callable[[str], None] | None) -> None:
        self.engine.before_store = hook

    @property
    def layout(self) -> KeyLayout:
        """Names of the keys an entry involves (hash-tagged on Redis Cluster)."""
        return self.engine.layout

    @property
    def client(self) -> redis.Redis:
        """The redis-py client (honours ``decode_responses``); created on first use.

        A ``redis.cluster.RedisCluster`` in cluster mode, a Sentinel-managed ``redis.Redis``
        in sentinel mode.
        """
        return self.engine.client

    @property
    def async_client(self) -> redis.asyncio.Redis:
        """The ``redis.asyncio`` client of the running event loop (one per loop)."""
        return self.engine.async_client

