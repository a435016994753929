"""The engine: one cache's settings, clients, topology and drivers, wired together.

The decorators, the seed SQL API and :class:`~memo_redis.RedisCaching` (the facade users hold)
all work through an :class:`Engine`: its :attr:`~Engine.sync` and :attr:`~Engine.aio` drivers
run the protocol's flows (:mod:`memo_redis.protocol`) and serve read-throughs.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import sys
import threading
import weakref
from collections.abc import Callable, Mapping
from typing import Any

import redis
import redis.asyncio

from .backend.clients import (
    DEFAULT_SOCKET_TIMEOUT,
    build_async_client,
    build_async_twin,
    build_client,
    describe_client,
)
from .backend.drivers import AsyncDriver, SyncDriver
from .backend.gate import Gate
from .breaker import CircuitBreaker
from .config import (
    ENCRYPTION_KEY_VARIABLE,
    SIGNING_KEY_VARIABLE,
    RedisArgs,
    sealing_keys_from_env,
)
from .exceptions import CacheUnavailable, ConfigError
from .keys import require_utf8
from .layout import INTERNAL_PREFIX, KeyLayout
from .local import LocalCache
from .protocol.invalidation import Invalidator
from .protocol.requests import Requests
from .protocol.steps import Flow
from .protocol.topology import Cluster, SingleServer
from .protocol.values import ValueCodec
from .sealing import KeyInput, Sealer
from .serialization import Codec, Serializer
from .ttl import DEFAULT_TTLS, default_ttl, to_milliseconds


def _check_seconds(name: str, value: object) -> None:
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not 0 < value < math.inf):
        raise ConfigError(f"{name} must be a finite number of seconds > 0, got {value!r}")


def check_wait(wait_replicas: int, wait_timeout: float, args: RedisArgs | None) -> None:
    """Refuse a bad ``wait_replicas`` / ``wait_timeout`` (:class:`ConfigError` naming it); with
    ``args`` (clients this cache builds), a ``wait_timeout`` the socket timeout would cut."""
    if isinstance(wait_replicas, bool) or not isinstance(wait_replicas, int) or wait_replicas < 0:
        raise ConfigError(f"wait_replicas must be an integer >= 0, got {wait_replicas!r}")
    _check_seconds("wait_timeout", wait_timeout)
    if args is None or not wait_replicas:
        return
    socket_timeout = args.socket_timeout or DEFAULT_SOCKET_TIMEOUT
    if wait_timeout >= socket_timeout:
        raise ConfigError(
            f"wait_timeout must be shorter than the socket timeout (REDIS_SOCKET_TIMEOUT, "
            f"{socket_timeout!r} s), got {wait_timeout!r}: a WAIT that long would be cut as a "
            "timeout, an outage")


def build_sealer(signing_key: KeyInput | None = None, encryption_key: KeyInput | None = None,
                 encrypt: bool | None = None,
                 environ: Mapping[str, str] | None = None) -> Sealer | None:
    """The sealer of a cache: keys given in code, else ``MEMO_REDIS_SIGNING_KEY`` /
    ``MEMO_REDIS_ENCRYPTION_KEY`` (read from ``environ``, default ``os.environ``); None when
    neither kind of key is set. Raises :class:`ConfigError` naming the parameter or the
    variable, never showing a key."""
    if encrypt is not None and not isinstance(encrypt, bool):
        raise ConfigError(f"encrypt must be True, False or None, got {type(encrypt).__name__}")
    signing_source, encryption_source = "signing_key", "encryption_key"
    if signing_key is None or encryption_key is None:
        env = sealing_keys_from_env(environ)
        if signing_key is None and SIGNING_KEY_VARIABLE in env:
            signing_key, signing_source = env[SIGNING_KEY_VARIABLE], SIGNING_KEY_VARIABLE
        if encryption_key is None and ENCRYPTION_KEY_VARIABLE in env:
            encryption_key = env[ENCRYPTION_KEY_VARIABLE]
            encryption_source = ENCRYPTION_KEY_VARIABLE
    if encrypt and encryption_key is None:
        raise ConfigError("encrypt=True needs an encryption key: pass encryption_key=... or set "
                          f"{ENCRYPTION_KEY_VARIABLE}")
    return Sealer.from_keys(signing_key, encryption_key, encrypt=encrypt,
                            signing_source=signing_source, encryption_source=encryption_source)


def is_client(value: object) -> bool:
    """Is ``value`` a redis-py client (``redis.Redis``, ``RedisCluster``) rather than a URL?"""
    return callable(getattr(value, "execute_command", None)) and not isinstance(value, type)


class Engine:
    """The machinery of one cache. Nothing connects until the first command.

    See :class:`~memo_redis.RedisCaching` for the meaning of every setting; it validates them
    here.
    """

    def __init__(
        self,
        args: RedisArgs,
        client: Any = None,
        *,
        namespace: str = "memo",
        serializer: Serializer | str = "msgpack",
        compress_threshold: int | None = 512,
        digest_length: int = 16,
        default_ttls: Mapping[str, int] | None = None,
        strict: bool = False,
        failure_threshold: int = 3,
        reset_timeout: float = 1.0,
        max_value_size: int | None = 8 * 1024 * 1024,
        lock_timeout: float = 30.0,
        lock_wait: float = 10.0,
        fence_ttl: float = 60.0,
        scan_threshold: int = 100_000,
        scan_count: int = 1000,
        race_protection: bool = True,
        signing_key: KeyInput | None = None,
        encryption_key: KeyInput | None = None,
        encrypt: bool | None = None,
        wait_replicas: int = 0,
        wait_timeout: float = 0.5,
    ) -> None:
        if not isinstance(namespace, str) or not namespace or "*" in namespace:
            raise ConfigError(
                f"namespace must be a non-empty string without '*', got {namespace!r}"
            )
        require_utf8(namespace, "namespace")
        if (namespace + ":").startswith(INTERNAL_PREFIX):
            raise ConfigError(f"namespace {namespace!r} is in the {INTERNAL_PREFIX!r} "
                              "namespace, reserved for memo_redis's bookkeeping keys")
        if isinstance(digest_length, bool) or not isinstance(digest_length, int) or not (
            1 <= digest_length <= 64
        ):
            raise ConfigError(f"digest_length must be an integer in 1..64, got {digest_length!r}")
        _check_seconds("lock_timeout", lock_timeout)
        _check_seconds("lock_wait", lock_wait)
        _check_seconds("fence_ttl", fence_ttl)
        check_wait(wait_replicas, wait_timeout, args if client is None else None)
        if max_value_size is not None and (
            isinstance(max_value_size, bool) or not isinstance(max_value_size, int)
            or max_value_size < 1
        ):
            raise ConfigError(
                f"max_value_size must be a positive integer or None, got {max_value_size!r}"
            )
        self.args = args
        self.namespace = namespace
        if not isinstance(serializer, Serializer):
            codec = Serializer(serializer, compress_threshold=None).codec
            # JSON is chosen for interoperability: plain text other languages can read, so its
            # values are never compressed (pass a Serializer to compress JSON anyway).
            serializer = Serializer(
                codec, compress_threshold=None if codec is Codec.JSON else compress_threshold
            )
        sealer = build_sealer(signing_key, encryption_key, encrypt)
        if sealer is None and serializer.codec is Codec.PICKLE:
            raise ConfigError(
                "serializer='pickle' needs a signing key (signing_key=... or "
                f"{SIGNING_KEY_VARIABLE}; an encryption key, which authenticates too, also "
                "does): unpickling runs code, so only values this deployment sealed may be "
                "unpickled"
            )
        self.codec = ValueCodec(serializer, max_value_size, sealer)
        self.digest_length = digest_length
        self.default_ttls: dict[str, int] = dict(DEFAULT_TTLS)
        if default_ttls:
            for category, seconds in default_ttls.items():
                to_milliseconds(seconds, f"default_ttls[{category!r}]")
            self.default_ttls.update(default_ttls)
        self.strict = strict
        self.lock_wait = float(lock_wait)
        self.fence_ttl_ms = round(fence_ttl * 1000)
        self.race_protection = race_protection
        self.before_store: Callable[[str], None] | None = None
        """Test hook: called with the key between a computation's return and its store."""

        self._client = client
        self._owns_client = client is None
        target, password = (
            (args.describe(), args.password) if client is None else describe_client(client)
        )
        self.gate = Gate(CircuitBreaker(failure_threshold, reset_timeout), target, password)
        self._client_lock = threading.Lock()
        self._async_clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, redis.asyncio.Redis
        ] = weakref.WeakKeyDictionary()
        self._local: LocalCache | None = None
        self._local_options: dict[str, Any] = {}
        self.closed = False

        cluster = args.mode == "cluster" or (
            client is not None and type(client).__name__ == "RedisCluster"
        )
        self._lock_timeout_ms = round(lock_timeout * 1000)
        self._scan = (scan_threshold, scan_count)
        self.wait_replicas = wait_replicas
        self.wait_timeout = float(wait_timeout)
        self.topology = Cluster() if cluster else SingleServer()
        self.sync = SyncDriver(self)
        """Runs flows and read-throughs with blocking I/O."""
        self.aio = AsyncDriver(self)
        """Runs flows and read-throughs on the running event loop."""

    # -- settings ------------------------------------------------------------------------------

    @property
    def topology(self) -> SingleServer:
        """Single server (or Sentinel) or Redis Cluster: the strategy every flow asks."""
        return self._topology

    @topology.setter
    def topology(self, topology: SingleServer) -> None:
        self._topology = topology
        self.requests = Requests(topology.layout, self.codec,
                                 lock_timeout_ms=self._lock_timeout_ms,
                                 fence_ttl_ms=self.fence_ttl_ms)
        scan_threshold, scan_count = self._scan
        self.invalidator = Invalidator(topology, self.requests,
                                       scan_threshold=scan_threshold, scan_count=scan_count,
                                       replicas=self.wait_replicas,
                                       wait_ms=max(1, round(self.wait_timeout * 1000)))

    @property
    def layout(self) -> KeyLayout:
        """Names of the keys an entry involves (hash-tagged on Redis Cluster)."""
        return self.topology.layout

    @property
    def serializer(self) -> Serializer:
        """How values are encoded."""
        return self.codec.serializer

    @property
    def sealer(self) -> Sealer | None:
        """Signs or encrypts every value (None: values are not sealed)."""
        return self.codec.sealer

    def ttl_for(self, category: str) -> int:
        """The default TTL (seconds) of ``category`` on this cache."""
        return self.default_ttls.get(category, default_ttl(category))

    def is_refusal(self, error: CacheUnavailable) -> bool:
        """Did Redis answer with an error (rather than fail to answer)? See :class:`Gate`."""
        return self.gate.is_refusal(error)

    # -- clients -------------------------------------------------------------------------------

    @property
    def client(self) -> redis.Redis:
        """The sync redis-py client; created on first use."""
        client = self._client
        if client is None:
            with self._client_lock:
                client = self._client
                if client is None:
                    client = self._client = build_client(self.args)
        built: redis.Redis = client
        return built

    @property
    def owns_client(self) -> bool:
        """Did this engine build its clients (rather than use a client passed in)?"""
        return self._owns_client

    @property
    def async_client(self) -> redis.asyncio.Redis:
        """The ``redis.asyncio`` client of the running event loop (one per loop)."""
        loop = asyncio.get_running_loop()
        client = self._async_clients.get(loop)
        if client is None:
            given = self._client is not None and not self._owns_client
            client = build_async_twin(self._client) if given else build_async_client(self.args)
            self._async_clients[loop] = client
        return client

    def close(self) -> None:
        """Close the L1 and the sync pool this engine created (a client passed in stays open)."""
        self.closed = True
        if self._local is not None:
            self._local.close()
            self._local = None
        if self._client is not None and self._owns_client:
            self._client.close()
            self._client = None

    async def aclose(self) -> None:
        """Close the async client of the running loop, then everything :meth:`close` closes."""
        client = self._async_clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()
        self.close()

    # -- the in-process L1 ---------------------------------------------------------------------

    def local_cache(self) -> LocalCache | None:
        """The in-process L1 used by ``@cached(local=True)``, created on first use; None where
        the topology cannot track keys (Redis Cluster)."""
        if not self.topology.supports_local_cache:
            self.codec.warn_once("local-cluster",
                                 "the local cache is not available on Redis Cluster")
            return None
        local = self._local
        if local is None:
            with self._client_lock:
                local = self._local
                if local is None:
                    local = self._local = LocalCache(self, **self._local_options)
        return local

    def configure_local_cache(self, *, max_entries: int = 10_000,
                              max_bytes: int = 64 * 1024 * 1024, max_ttl: float = 300.0) -> None:
        """Bounds of the in-process L1 (entries, bytes, seconds); a live L1 evicts down to them."""
        LocalCache(self, max_entries=max_entries, max_bytes=max_bytes, max_ttl=max_ttl)  # checks
        self._local_options = {"max_entries": max_entries, "max_bytes": max_bytes,
                               "max_ttl": max_ttl}
        if self._local is not None:
            self._local.configure(max_entries=max_entries, max_bytes=max_bytes, max_ttl=max_ttl)

    def invalidated_here(self, kind: str, target: str) -> None:
        """This process just invalidated ``target`` (``kind`` "pattern" or "key"): its own L1
        drops what it may hold of it now, so the next call here reads the new value without
        waiting for the server's tracking notification."""
        local = self._local
        if local is not None:
            local.forget(kind, target)

    # -- invalidations that could not be sent --------------------------------------------------

    def defer(self, kind: str, target: str) -> None:
        """Keep an invalidation (``kind`` "pattern" or "key") that could not be sent, or that
        too few replicas acknowledged (``wait_replicas``); it is applied before this process
        next reads or writes the cache.

        Called while the invalidation's :class:`CacheUnavailable` is being handled: that error
        tells the log which of the two happened.
        """
        self.gate.defer(kind, target, sys.exc_info()[1])
        local = self._local
        if local is not None:
            local.clear()  # it may hold what the invalidation targets; lookups refill it later

    def flush_deferred(self) -> Flow[None]:
        """Before an invalidation, apply the ones kept earlier once Redis lets calls through (a
        process that only writes would otherwise never apply them)."""
        gate = self.gate
        if gate.deferred.items and gate.breaker.allow():
            with contextlib.suppress(CacheUnavailable):
                yield from gate.apply_flow("invalidate", self.invalidator)

    def invalidation(self, kind: str, target: str) -> Flow[int]:
        """The flow invalidating one key (``kind`` "key") or a glob (``"pattern"``)."""
        yield from self.flush_deferred()
        if kind == "key":
            return (yield from self.invalidator.one(target, "invalidate"))
        return (yield from self.invalidator.pattern(target, "invalidate"))
