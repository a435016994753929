"""RedisCaching: the cache users hold, on the top floor of the package.

It validates and forwards: the work is done by an :class:`~memo_redis.engine.Engine` (settings,
clients, drivers) running the flows of :mod:`memo_redis.protocol`. Nothing below this module
imports it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import redis
import redis.asyncio

from . import context, decorators
from .config import RedisArgs
from .context import caching_disabled
from .engine import Engine, is_client
from .engine_attributes import EngineAttributes
from .exceptions import CacheUnavailable, ConfigError
from .keys import glob_unescape, is_glob
from .layout import check_key, check_pattern
from .local import LocalCache
from .protocol import operations
from .protocol.entries import MISS
from .protocol.readthrough import ReadPolicy
from .protocol.steps import Flow
from .sealing import KeyInput
from .serialization import Serializer
from .sql.methods import SQLMethods
from .tracing import span
from .transaction_state import Kind, record_invalidation
from .ttl import CATEGORY_DEFAULT, TTL, to_milliseconds

if TYPE_CHECKING:
    from redis.cluster import RedisCluster


T = TypeVar("T")
_MAX_POLICIES = 256


class RedisCaching(EngineAttributes, SQLMethods):
    """A Redis cache with deterministic keys, race-free invalidation and fail-open behaviour.

    ``RedisCaching()`` reads the environment (:meth:`RedisArgs.from_env`); ``RedisCaching(url)``,
    ``RedisCaching(args)``, ``RedisCaching(redis.Redis(...))`` and ``RedisCaching(client=r)``
    work too. Nothing connects until the first command.

    >>> cache = RedisCaching("redis://127.0.0.1:6390/0")
    >>> cache.set("app_config", {"debug": False}, ttl=None)   # doctest: +SKIP

    Failures of Redis never reach callers unless ``strict=True``: reads return their default,
    writes return False, and after ``failure_threshold`` consecutive connection failures Redis is
    skipped for ``reset_timeout`` seconds (circuit breaker). In strict mode the error is a
    :class:`CacheUnavailable` whose ``__cause__`` is redis-py's error.

    ``serializer`` is ``"msgpack"`` (default, exact round trips), ``"json"`` (plain JSON text,
    the seed's format, never compressed), ``"pickle"`` (explicit opt-in) or a
    :class:`Serializer`; ``compress_threshold`` (bytes) zlib-compresses larger msgpack/pickle
    bodies. ``digest_length`` is the number of hex characters of argument digests in decorated
    keys. Every method has an ``a``-prefixed async twin running on the event loop's
    ``redis.asyncio`` client.

    Sealed values (see ``docs/security.md``): with ``signing_key`` (``bytes`` or ``str`` of at
    least 16 bytes, or a list of them for rotation: the first signs, all verify; default:
    ``MEMO_REDIS_SIGNING_KEY``, comma-separated) every stored value carries an HMAC-SHA256 over
    its key name and bytes. With ``encryption_key`` (32 bytes or their base64 text, or a list;
    default: ``MEMO_REDIS_ENCRYPTION_KEY``; the ``crypto`` extra) values are encrypted with
    AES-256-GCM, the key name as authenticated data. ``encrypt`` chooses for the whole cache:
    None (default) encrypts whenever an encryption key is given, False signs by default and
    keeps the encryption keys for ``@cached(encrypt=True)`` functions. Once a key is set, every
    value is sealed (with ``serializer="json"`` too: no plain JSON text) and a value read that
    does not open (written without the key, tampered with, copied from another key, sealed
    with a removed key) is a miss, counted in :attr:`rejected_values` and logged once per key,
    never deserialized. ``serializer="pickle"`` refuses to start without a key.

    Invalidations that survive a failover (see ``docs/cluster-and-sentinel.md``): with
    ``wait_replicas=n`` every invalidation returns only once ``n`` replicas of the primary that
    applied it acknowledged it (``WAIT``, pipelined with its writes), so promoting one of them
    cannot bring the invalidated entries back. Fewer within ``wait_timeout`` seconds (default
    0.5, shorter than the socket timeout) fail the invalidation like an outage would: it is
    logged at error level once, kept and applied again before this process next reads or
    writes the cache, and raises :class:`CacheUnavailable` in strict mode.
    """

    def __init__(
        self,
        target: str | RedisArgs | redis.Redis | RedisCluster | None = None,
        *,
        client: redis.Redis | RedisCluster | None = None,
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
        if is_client(target):
            if client is not None:
                raise ConfigError("pass the client positionally or as client=, not both")
            target, client = None, target
        if client is not None and target is not None:
            raise ConfigError("pass either a target (URL or RedisArgs) or client=, not both")
        if client is not None and not is_client(client):
            raise ConfigError(
                f"client must be a redis-py client (redis.Redis, RedisCluster), got "
                f"{type(client).__name__}"
            )
        if isinstance(target, str):
            args = RedisArgs.from_url(target)
        elif isinstance(target, RedisArgs):
            args = target
        elif target is None:
            args = RedisArgs.from_env() if client is None else RedisArgs()
        else:
            raise ConfigError(
                "target must be a Redis URL, a RedisArgs, a redis-py client or None, got "
                f"{type(target).__name__}"
            )
        self.engine = Engine(
            args, client, namespace=namespace, serializer=serializer,
            compress_threshold=compress_threshold, digest_length=digest_length,
            default_ttls=default_ttls, strict=strict, failure_threshold=failure_threshold,
            reset_timeout=reset_timeout, max_value_size=max_value_size,
            lock_timeout=lock_timeout, lock_wait=lock_wait, fence_ttl=fence_ttl,
            scan_threshold=scan_threshold, scan_count=scan_count,
            race_protection=race_protection, signing_key=signing_key,
            encryption_key=encryption_key, encrypt=encrypt, wait_replicas=wait_replicas,
            wait_timeout=wait_timeout,
        )
        """The machinery (settings, clients, drivers) this facade forwards to."""
        self._policies: dict[tuple[Any, ...], ReadPolicy] = {}

    def ttl_for(self, category: str) -> int:
        """The default TTL (seconds) of ``category`` on this cache."""
        return self.engine.ttl_for(category)

    def local_cache(self) -> LocalCache | None:
        """The in-process L1 used by ``@cached(local=True)``, created on first use; None on
        Redis Cluster, where one tracking connection cannot see every node."""
        return self.engine.local_cache()

    def configure_local_cache(self, *, max_entries: int = 10_000,
                              max_bytes: int = 64 * 1024 * 1024, max_ttl: float = 300.0) -> None:
        """Bounds of the in-process L1 (entries, bytes, seconds); a live L1 evicts down to them."""
        self.engine.configure_local_cache(max_entries=max_entries, max_bytes=max_bytes,
                                          max_ttl=max_ttl)

    # -- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection pools this cache created (a client passed in is left open)."""
        self.engine.close()

    async def aclose(self) -> None:
        """Close the async client of the running loop, then the sync one."""
        await self.engine.aclose()

    def __enter__(self) -> RedisCaching:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> RedisCaching:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return (
            f"RedisCaching({self.engine.gate.target}, namespace={self.namespace!r}, "
            f"serializer={self.serializer!r}, strict={self.strict})"
        )

    __str__ = __repr__

    # -- running flows, failing open -------------------------------------------------------------

    def _fail_open(self, error: CacheUnavailable, strict: bool | None, default: T) -> T:
        if self.strict if strict is None else strict:
            raise error
        return default

    def _run(self, flow: Flow[T], strict: bool | None, default: T) -> T:
        try:
            return self.engine.sync.run(flow)
        except CacheUnavailable as error:
            return self._fail_open(error, strict, default)

    async def _arun(self, flow: Flow[T], strict: bool | None, default: T) -> T:
        try:
            return await self.engine.aio.run(flow)
        except CacheUnavailable as error:
            return self._fail_open(error, strict, default)

    # -- the key/value API -----------------------------------------------------------------------

    def _set_flow(self, key: str, value: Any, ttl: TTL) -> Flow[bool]:
        ttl_ms = to_milliseconds(self.default_ttls["data"] if ttl is CATEGORY_DEFAULT else ttl)
        check_key(key)
        return operations.store(self.engine, key, value, ttl_ms)

    def set(self, key: str, value: Any, ttl: TTL = CATEGORY_DEFAULT, *,
            strict: bool | None = None) -> bool:
        """Store ``value`` at ``key`` for ``ttl`` seconds (default: the ``data`` TTL, 300 s).

        ``ttl=None`` stores without expiry; a zero or negative ttl is a ``ValueError``. Returns
        True when stored, False when Redis failed (unless strict) or the value is too large.
        A value that cannot be serialized raises :class:`SerializationError`; nothing is written.

        The value is stored binary-safe in memo_redis's envelope (see :mod:`memo_redis.envelope`);
        with ``serializer="json"`` it is stored as plain ``json.dumps(value)`` text instead, the
        seed's format, which any language can read.
        """
        return self._run(self._set_flow(key, value, ttl), strict, False)

    async def aset(self, key: str, value: Any, ttl: TTL = CATEGORY_DEFAULT, *,
                   strict: bool | None = None) -> bool:
        """Async :meth:`set`."""
        return await self._arun(self._set_flow(key, value, ttl), strict, False)

    def _get_flow(self, key: str) -> Flow[Any]:
        check_key(key)
        return (yield from operations.lookup(self.engine, key)).value

    def get(self, key: str, default: Any = None, *, strict: bool | None = None) -> Any:
        """The value at ``key``, or ``default`` on a miss, an invalidated or undecodable entry,
        or a Redis failure (unless strict)."""
        value = self._run(self._get_flow(key), strict, MISS)
        return default if value is MISS else value

    async def aget(self, key: str, default: Any = None, *, strict: bool | None = None) -> Any:
        """Async :meth:`get`."""
        value = await self._arun(self._get_flow(key), strict, MISS)
        return default if value is MISS else value

    def _delete_flow(self, keys: tuple[str, ...]) -> Flow[int]:
        for key in keys:
            check_key(key)
        if not keys:
            return 0
        return (yield from operations.delete(self.engine, keys))

    def delete(self, *keys: str, strict: bool | None = None) -> int:
        """Delete ``keys``; returns how many existed. (Use :meth:`invalidate` to also fence
        computations in flight.)"""
        return self._run(self._delete_flow(keys), strict, 0)

    async def adelete(self, *keys: str, strict: bool | None = None) -> int:
        """Async :meth:`delete`."""
        return await self._arun(self._delete_flow(keys), strict, 0)

    def _get_many_flow(self, keys: Iterable[str]) -> Flow[dict[str, Any]]:
        unique = list(dict.fromkeys(keys))
        for key in unique:
            check_key(key)
        if not unique:
            return {}
        looks = yield from operations.get_many(self.engine, unique)
        return {key: look.value for key, look in zip(unique, looks, strict=True)
                if look.value is not MISS}

    def get_many(self, keys: Iterable[str], *, strict: bool | None = None) -> dict[str, Any]:
        """The cached values of ``keys`` (missing ones left out), in one round trip."""
        return self._run(self._get_many_flow(keys), strict, {})

    async def aget_many(self, keys: Iterable[str], *,
                        strict: bool | None = None) -> dict[str, Any]:
        """Async :meth:`get_many`."""
        return await self._arun(self._get_many_flow(keys), strict, {})

    def _set_many_flow(self, mapping: Mapping[str, Any], ttl: TTL) -> Flow[bool]:
        ttl_ms = to_milliseconds(self.default_ttls["data"] if ttl is CATEGORY_DEFAULT else ttl)
        for key in mapping:
            check_key(key)
        if not mapping:
            return True
        entries = [(key, value, ttl_ms, None, None) for key, value in mapping.items()]
        results = yield from operations.store_many(self.engine, entries, op="set_many")
        return results is not None and all(results)

    def set_many(self, mapping: Mapping[str, Any], ttl: TTL = CATEGORY_DEFAULT, *,
                 strict: bool | None = None) -> bool:
        """Store every item of ``mapping`` in one round trip (a pipeline of atomic stores)."""
        return self._run(self._set_many_flow(mapping, ttl), strict, False)

    async def aset_many(self, mapping: Mapping[str, Any], ttl: TTL = CATEGORY_DEFAULT, *,
                        strict: bool | None = None) -> bool:
        """Async :meth:`set_many`."""
        return await self._arun(self._set_many_flow(mapping, ttl), strict, False)

    # -- the read-through primitive --------------------------------------------------------------

    def _policy(self, ttl: TTL, category: str, should_cache: Callable[[Any], bool] | None,
                single_flight: bool, strict: bool | None) -> ReadPolicy:
        if ttl is not CATEGORY_DEFAULT:
            to_milliseconds(ttl)
        options = (ttl, category, should_cache, single_flight, strict)
        policy = self._policies.get(options)
        if policy is None:
            if len(self._policies) >= _MAX_POLICIES:
                self._policies.clear()
            policy = self._policies[options] = ReadPolicy(
                ttl=ttl, category=category, should_store=should_cache,
                single_flight=single_flight, strict=strict)
        return policy

    def get_or_create(self, key: str, creator: Callable[[], T], ttl: TTL = CATEGORY_DEFAULT, *,
                      category: str = "data", fingerprint: bytes | None = None,
                      should_cache: Callable[[T], bool] | None = None,
                      single_flight: bool = True, strict: bool | None = None) -> T:
        """The value at ``key``; on a miss, ``creator()``'s result, stored for ``ttl`` seconds
        (default: ``category``'s TTL), like dogpile.cache's ``get_or_create``.

        What ``@cached`` does for one call, with the key given: concurrent misses of one key run
        ``creator`` once (threads, tasks and processes); a result computed while the key was
        invalidated is returned but not stored; exceptions are never cached;
        ``should_cache(result)`` returning False skips storing. ``fingerprint`` (16 bytes) is
        stored with the value and required of it on later lookups, so two kinds of request that
        share a key name never serve each other. A Redis failure runs ``creator`` uncached
        (``strict=True``: raises :class:`CacheUnavailable`).
        """
        check_key(key)
        if caching_disabled.get():
            return creator()
        policy = self._policy(ttl, category, should_cache, single_flight, strict)
        return self.engine.sync.read(policy, key, fingerprint, creator, (), {})  # type: ignore[no-any-return]

    async def aget_or_create(self, key: str, creator: Callable[[], Awaitable[T]],
                             ttl: TTL = CATEGORY_DEFAULT, *, category: str = "data",
                             fingerprint: bytes | None = None,
                             should_cache: Callable[[T], bool] | None = None,
                             single_flight: bool = True, strict: bool | None = None) -> T:
        """Async :meth:`get_or_create` (``creator`` returns an awaitable)."""
        check_key(key)
        if caching_disabled.get():
            return await creator()
        policy = self._policy(ttl, category, should_cache, single_flight, strict)
        return await self.engine.aio.read(policy, key, fingerprint, creator, (), {})  # type: ignore[no-any-return]

    # -- invalidation ----------------------------------------------------------------------------

    def _invalidation(self, pattern: str) -> tuple[Kind, str]:
        """(kind, target) of an invalidation of ``pattern``, after checking it."""
        if not isinstance(pattern, str):
            raise TypeError(f"pattern must be a str, got {type(pattern).__name__} {pattern!r}")
        if not pattern:
            raise ValueError("pattern must be a non-empty glob such as 'sql:users:*', got ''")
        if not is_glob(pattern):
            key = glob_unescape(pattern)
            check_key(key)
            return "key", key
        check_pattern(pattern)
        return "pattern", pattern

    def _invalidate(self, kind: Kind, target: str, strict: bool | None) -> int:
        record_invalidation(self, kind, target)
        try:
            with span("memo_redis.invalidate", pattern=target):
                removed = self.engine.sync.run(self.engine.invalidation(kind, target))
        except CacheUnavailable as error:
            self.engine.defer(kind, target)
            return self._fail_open(error, strict, 0)
        self.engine.invalidated_here(kind, target)
        return removed

    async def _ainvalidate(self, kind: Kind, target: str, strict: bool | None) -> int:
        record_invalidation(self, kind, target)
        try:
            with span("memo_redis.invalidate", pattern=target):
                removed = await self.engine.aio.run(self.engine.invalidation(kind, target))
        except CacheUnavailable as error:
            self.engine.defer(kind, target)
            return self._fail_open(error, strict, 0)
        self.engine.invalidated_here(kind, target)
        return removed

    def invalidate(self, pattern: str, *, strict: bool | None = None) -> int:
        """Invalidate every entry matching a Redis glob ``pattern``; returns the number deleted.

        Keys not matching ``pattern`` are left alone, and KEYS is never used:

        * ``prefix:*`` (and ``*``): the generation of ``prefix`` (``sql:users`` for
          ``sql:users:*``) is replaced first, so entries cached or computed before this call can
          neither be served nor stored afterwards (race-free). Then the matching keys are
          unlinked: with SCAN + UNLINK in batches of ``scan_count`` (O(keyspace)), or through
          the table's index set (it holds the entries memo_redis wrote, so keys written by
          other clients are then left to expire): for a table (``sql:users:*``) when the
          keyspace holds more than ``scan_threshold`` keys (O(matches)), and always for a
          prefix deeper than a table (``sql:users:7:*``, one row: through the row's own index,
          O(the row's entries); deeper still, ``sql:users:7:data:*``, that index filtered by the
          server).
        * any other glob (``sql:us*``, ``*:users:*``): SCAN + UNLINK of the matching keys
          (O(keyspace)), after deleting the fence of every matching computation in flight (each
          arms one before it runs), so none can store a value read before this call.
        * a pattern without wildcards invalidates that one key (:meth:`invalidate_key`).

        Patterns in memo_redis's own ``__memo__:`` namespace are refused (``ValueError``);
        ``*`` never deletes those keys. While the circuit breaker is open, or when Redis cannot
        be reached, the invalidation is kept and applied before this process next reads or
        writes the cache (it bypasses the cache until then); it returns 0 (``strict=True``:
        raises :class:`CacheUnavailable`).
        """
        kind, target = self._invalidation(pattern)
        return self._invalidate(kind, target, strict)

    async def ainvalidate(self, pattern: str, *, strict: bool | None = None) -> int:
        """Async :meth:`invalidate` (natively async, scan included)."""
        kind, target = self._invalidation(pattern)
        return await self._ainvalidate(kind, target, strict)

    def invalidate_key(self, key: str, *, strict: bool | None = None) -> int:
        """Invalidate one entry (race-free: in-flight computations of it are fenced off).

        Returns 1 when a live entry was deleted, else 0. Kept for later, like
        :meth:`invalidate`, while Redis is unavailable.
        """
        check_key(key)
        return self._invalidate("key", key, strict)

    async def ainvalidate_key(self, key: str, *, strict: bool | None = None) -> int:
        """Async :meth:`invalidate_key`."""
        check_key(key)
        return await self._ainvalidate("key", key, strict)

    # -- health and stats ------------------------------------------------------------------------

    def check_cache_health(self) -> bool:
        """True when Redis answers PING (on Redis Cluster: every primary); never raises."""
        return self.engine.sync.ping()

    async def acheck_cache_health(self) -> bool:
        """Async :meth:`check_cache_health`."""
        return await self.engine.aio.ping()

    def _hit_rate_flow(self) -> Flow[float]:
        topology = self.engine.topology
        infos = topology.stats_of((yield topology.info_stats("hit_rate")))
        hits = sum(int(info.get("keyspace_hits", 0)) for info in infos)
        misses = sum(int(info.get("keyspace_misses", 0)) for info in infos)
        total = hits + misses
        return 0.0 if total == 0 else hits / total * 100.0

    def hit_rate(self) -> float:
        """Keyspace hit rate of the server in percent (0.0 when no lookups yet), as in the seed.

        Counts every key the server looked up, including memo_redis's generation keys; on Redis
        Cluster, summed over the primaries.
        """
        return self._run(self._hit_rate_flow(), None, 0.0)

    async def ahit_rate(self) -> float:
        """Async :meth:`hit_rate`."""
        return await self._arun(self._hit_rate_flow(), None, 0.0)

    # -- decorators bound to this cache ----------------------------------------------------------

    def cached(self, **options: Any) -> decorators.CachedDecorator:
        """``@cache.cached(...)``: :func:`memo_redis.cached` bound to this cache."""
        return decorators.cached(cache=self, **options)

    def invalidates(self, *patterns: str,
                    strict: bool | None = None) -> decorators.InvalidatesDecorator:
        """``@cache.invalidates(...)``: :func:`memo_redis.invalidates` bound to this cache."""
        return decorators.invalidates(*patterns, cache=self, strict=strict)


context.register_cache_class(RedisCaching)
