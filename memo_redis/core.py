"""RedisCaching: the thin caching core. The only module that talks to Redis.

It owns the redis-py clients (one sync client, one async client per event loop, sharing the
configuration), stores values in the envelope described in :mod:`memo_redis.envelope`, and
implements race-free invalidation with generation tokens (see :mod:`memo_redis.layout`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import random
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, NamedTuple, TypeVar

import redis
import redis.asyncio
from redis.crc import key_slot
from redis.exceptions import (
    ClusterCrossSlotError,
    ClusterError,
    MovedError,
    NoScriptError,
    RedisClusterException,
    RedisError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from . import envelope, layout, scripts
from .breaker import CircuitBreaker
from .clients import (
    build_async_client,
    build_async_twin,
    build_client,
    connection_kwargs,
    describe_client,
)
from .config import RedisArgs
from .exceptions import CacheUnavailable, ConfigError
from .keys import glob_escape, glob_unescape, is_glob, literal_prefix, matches
from .local import LocalCache
from .serialization import Codec, DecodeError, Serializer
from .ttl import CATEGORY_DEFAULT, DEFAULT_TTLS, TTL, default_ttl, to_milliseconds

if TYPE_CHECKING:
    from .decorators import CachedFactory, InvalidatesFactory

log = logging.getLogger("memo_redis")

T = TypeVar("T")


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISS"


MISS: Final = _Missing()
"""Sentinel telling a miss from a cached ``None``."""

# Outages: they feed the circuit breaker. On Redis Cluster, CLUSTERDOWN during a failover and
# redis-py's own cluster errors (no node reachable, slot not covered) are outages too.
_INFRA_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError, ClusterError,
                 RedisClusterException)
_CLIENT_ERRORS = (RedisError, OSError, RedisClusterException)
# Ops that neither read nor write cached values: they need not wait for deferred invalidations.
_UNGATED_OPS = frozenset({"invalidate", "apply", "unlock", "hit_rate"})
# Ops the circuit breaker does not skip: a lock release (the lock would otherwise block other
# callers until it expires), the statistics, and the invalidations applied once Redis is back
# (their caller already passed the breaker).
_UNBROKEN_OPS = frozenset({"apply", "unlock", "hit_rate"})
_MAX_DEFERRED = 1000
_FENCE_PREFIX = layout.INTERNAL_PREFIX + "fence:"
_MAX_WARNED_KEYS = 1024


class SeedFingerprint(bytes):
    """The fingerprint of a seed SQL read: its key may hold the seed deployment's plain JSON,
    which lookups with any other fingerprint (decorated functions) treat as a miss."""

    __slots__ = ()


@dataclass(slots=True)
class Lookup:
    """What one lookup saw: the decoded value (or MISS) and the state a later store must match."""

    value: Any
    generations: list[bytes | None]
    fence: bytes | None
    envelope: envelope.Envelope | None
    lock_stamp: bytes | None = None
    """Memo of :func:`_stamp_of` (claim, release and store each need it on a miss)."""


class Claim(NamedTuple):
    """What :meth:`RedisCaching.claim` saw: the entry's state after its fence was armed
    (``look.fence`` is the fence a later store must find unchanged) and the lock's outcome."""

    taken: bool
    """This caller holds the single-flight lock (or armed the entry, when it asked for none)."""
    held: bool
    """Another caller holds the lock of exactly the state this caller expected: wait for it.
    (Neither taken nor held: the state moved, e.g. an invalidation; claim again under it.)"""
    look: Lookup


class _Script:
    """A Lua script run by EVALSHA, loaded on NOSCRIPT (e.g. after a server restart)."""

    __slots__ = ("sha", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()

    def run(self, client: redis.Redis, keys: list[str], args: list[Any]) -> Any:
        command: Callable[..., Any] = client.execute_command
        try:
            return command("EVALSHA", self.sha, len(keys), *keys, *args, NEVER_DECODE=True)
        except NoScriptError:
            client.script_load(self.source)
            return command("EVALSHA", self.sha, len(keys), *keys, *args, NEVER_DECODE=True)

    async def arun(self, client: redis.asyncio.Redis, keys: list[str], args: list[Any]) -> Any:
        command: Callable[..., Any] = client.execute_command
        try:
            return await command("EVALSHA", self.sha, len(keys), *keys, *args, NEVER_DECODE=True)
        except NoScriptError:
            await client.script_load(self.source)
            return await command("EVALSHA", self.sha, len(keys), *keys, *args,
                                 NEVER_DECODE=True)


_STORE = _Script(scripts.STORE)
_CLAIM = _Script(scripts.CLAIM)
_BUMP = _Script(scripts.BUMP)
_DRAIN_INDEX = _Script(scripts.DRAIN_INDEX)
_PRUNE_RATE = 1 / 16
"""Share of stores that also drop a few expired members from their index set."""
_INVALIDATE_ONE = _Script(scripts.INVALIDATE_ONE)
_RELEASE = _Script(scripts.RELEASE)


def _redact(text: str, password: str | None) -> str:
    return text.replace(password, "***") if password else text


class RedisCaching:
    """A Redis cache with deterministic keys, race-free invalidation and fail-open behaviour.

    ``RedisCaching()`` reads the environment (:meth:`RedisArgs.from_env`); ``RedisCaching(url)``,
    ``RedisCaching(args)`` and ``RedisCaching(client=r)`` work too. Nothing connects until the
    first command.

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
    keys.
    """

    def __init__(
        self,
        target: str | RedisArgs | None = None,
        *,
        client: redis.Redis | None = None,
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
    ) -> None:
        if client is not None and target is not None:
            raise ConfigError("pass either a target (URL or RedisArgs) or client=, not both")
        if isinstance(target, str):
            args = RedisArgs.from_url(target)
        elif isinstance(target, RedisArgs):
            args = target
        elif target is None:
            args = RedisArgs.from_env() if client is None else RedisArgs()
        else:
            raise ConfigError(
                f"target must be a Redis URL, a RedisArgs or None, got {type(target).__name__}"
            )
        if not isinstance(namespace, str) or not namespace or "*" in namespace:
            raise ConfigError(
                f"namespace must be a non-empty string without '*', got {namespace!r}"
            )
        if (namespace + ":").startswith(layout.INTERNAL_PREFIX):
            raise ConfigError(f"namespace {namespace!r} is in the {layout.INTERNAL_PREFIX!r} "
                              "namespace, reserved for memo_redis's bookkeeping keys")
        if isinstance(digest_length, bool) or not isinstance(digest_length, int) or not (
            1 <= digest_length <= 64
        ):
            raise ConfigError(f"digest_length must be an integer in 1..64, got {digest_length!r}")
        for name, value in (
            ("lock_timeout", lock_timeout),
            ("lock_wait", lock_wait),
            ("fence_ttl", fence_ttl),
        ):
            if (isinstance(value, bool) or not isinstance(value, (int, float))
                    or not 0 < value < math.inf):
                raise ConfigError(
                    f"{name} must be a finite number of seconds > 0, got {value!r}"
                )
        if max_value_size is not None and (
            isinstance(max_value_size, bool) or not isinstance(max_value_size, int)
            or max_value_size < 1
        ):
            raise ConfigError(
                f"max_value_size must be a positive integer or None, got {max_value_size!r}"
            )
        self.args: RedisArgs = args
        self.namespace = namespace
        if isinstance(serializer, Serializer):
            self.serializer = serializer
        else:
            codec = Serializer(serializer, compress_threshold=None).codec
            # JSON is chosen for interoperability: plain text other languages can read, so its
            # values are never compressed (pass a Serializer to compress JSON anyway).
            self.serializer = Serializer(
                codec, compress_threshold=None if codec is Codec.JSON else compress_threshold
            )
        self.digest_length = digest_length
        self.default_ttls: dict[str, int] = dict(DEFAULT_TTLS)
        if default_ttls:
            for category, seconds in default_ttls.items():
                to_milliseconds(seconds, f"default_ttls[{category!r}]")
            self.default_ttls.update(default_ttls)
        self.strict = strict
        self.breaker = CircuitBreaker(failure_threshold, reset_timeout)
        self.max_value_size = max_value_size
        self.lock_timeout_ms = round(lock_timeout * 1000)
        self.lock_wait = float(lock_wait)
        self.fence_ttl_ms = round(fence_ttl * 1000)
        self.scan_threshold = scan_threshold
        self.scan_count = scan_count
        self.race_protection = race_protection
        self.before_store: Callable[[str], None] | None = None
        """Test hook: called with the key between a computation's return and its store."""
        self._client = client
        self._owns_client = client is None
        self._target, self._password = (
            (args.describe(), args.password) if client is None else describe_client(client)
        )
        self._last_error: BaseException | None = None
        self._loaded_scripts: set[str] = set()
        self._warned_keys: set[str] = set()
        self._client_lock = threading.Lock()
        self._async_clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, redis.asyncio.Redis
        ] = weakref.WeakKeyDictionary()
        self._outage = False
        self._warned: set[str] = set()
        self._closed = False
        self._groups: set[str] = set()
        # Invalidations that failed, (kind, target) -> sequence number; see _apply_deferred.
        self._deferred: dict[tuple[str, str], int] = {}
        self._deferred_seq = 0
        self._deferred_calls = 0  # invalidations deferred since the last ones were applied
        self._deferred_mutex = threading.Lock()
        self._applying = threading.Lock()
        self._local: LocalCache | None = None
        self._local_options: dict[str, Any] = {}
        cluster = args.mode == "cluster" or (
            client is not None and type(client).__name__ == "RedisCluster"
        )
        self.layout: layout.KeyLayout = layout.ClusterLayout() if cluster else layout.KeyLayout()
        """Names of the keys an entry involves (hash-tagged on Redis Cluster)."""

    # -- clients ---------------------------------------------------------------------------

    def _client_kwargs(self) -> dict[str, Any]:
        return connection_kwargs(self.args)

    @property
    def client(self) -> redis.Redis:
        """The redis-py client (honours ``decode_responses``); created on first use.

        A ``redis.cluster.RedisCluster`` in cluster mode, a Sentinel-managed ``redis.Redis``
        in sentinel mode.
        """
        client = self._client
        if client is None:
            with self._client_lock:
                client = self._client
                if client is None:
                    client = self._client = build_client(self.args)
        return client

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
        """Close the connection pools this cache created (a client passed in is left open)."""
        self._closed = True
        if self._local is not None:
            self._local.close()
            self._local = None
        if self._client is not None and self._owns_client:
            self._client.close()
            self._client = None

    async def aclose(self) -> None:
        """Close the async client of the running loop, then the sync one."""
        client = self._async_clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()
        self.close()

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
            f"RedisCaching({self._target}, namespace={self.namespace!r}, "
            f"serializer={self.serializer!r}, strict={self.strict})"
        )

    __str__ = __repr__

    # -- failure handling --------------------------------------------------------------------

    def _unavailable(self, op: str, exc: BaseException) -> CacheUnavailable:
        """Record a failure (breaker, one warning per outage) and build the error to raise.

        Only connection and timeout failures are an outage and count against the breaker; a
        command Redis answered with an error (NOPERM, WRONGTYPE, OOM, READONLY, a script error)
        is a refusal: logged once per kind of error, the breaker untouched.
        """
        message = _redact(f"{op} failed on {self._target}: {exc}", self._password)
        if isinstance(exc, (MovedError, ClusterCrossSlotError)) and not self.layout.tagged:
            message += (" (the server is a Redis Cluster node: set REDIS_CLUSTER=true, "
                        "or pass RedisArgs(cluster=True, ...))")
        if isinstance(exc, _INFRA_ERRORS):
            self._last_error = exc
            self.breaker.record_failure()
            if not self._outage:
                self._outage = True
                log.warning("memo_redis: Redis unavailable, running uncached: %s", message)
        else:
            kind = type(exc).__name__
            if kind not in self._warned:
                self._warned.add(kind)
                log.warning("memo_redis: Redis refused a command, running uncached: %s", message)
        return CacheUnavailable(message)

    def _circuit_open(self, op: str) -> CacheUnavailable:
        error = CacheUnavailable(
            f"{op} skipped: Redis at {self._target} failed repeatedly "
            f"(circuit open for {self.breaker.reset_timeout}s)"
        )
        # Chained like a failed call, so callers always find redis-py's error as __cause__.
        error.__cause__ = self._last_error
        return error

    def _succeeded(self) -> None:
        if self._outage and not self._deferred:
            # With invalidations pending, _apply_deferred announces the end of the outage once
            # they are applied (it runs before anything else reads or writes the cache).
            self._outage = False
            log.warning("memo_redis: Redis at %s is back, caching resumed", self._target)
        self.breaker.record_success()

    def _execute(self, op: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if op not in _UNBROKEN_OPS and not self.breaker.allow():
            raise self._circuit_open(op)
        if self._deferred and op not in _UNGATED_OPS:
            self._apply_deferred(op)
        try:
            result = fn(*args, **kwargs)
        except _CLIENT_ERRORS as exc:
            raise self._unavailable(op, exc) from exc
        self._succeeded()
        return result

    async def _aexecute(self, op: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if op not in _UNBROKEN_OPS and not self.breaker.allow():
            raise self._circuit_open(op)
        if self._deferred and op not in _UNGATED_OPS:
            await asyncio.to_thread(self._apply_deferred, op)
        try:
            result = await fn(*args, **kwargs)
        except _CLIENT_ERRORS as exc:
            raise self._unavailable(op, exc) from exc
        self._succeeded()
        return result

    def _defer(self, kind: str, target: str) -> None:
        """Keep an invalidation that could not be sent (``kind`` "pattern" or "key"), to apply
        it before this process reads or writes the cache again.

        While the breaker is open this costs no socket time. The first invalidation kept is
        logged at error level (other processes may serve stale entries meanwhile), the next ones
        are only counted: the end of the outage is logged with their number.
        """
        with self._deferred_mutex:
            if len(self._deferred) >= _MAX_DEFERRED:
                # Too many to track: invalidating everything is always correct.
                self._deferred.clear()
                kind, target = "pattern", "*"
            first = not self._deferred
            self._deferred_seq += 1
            self._deferred_calls += 1
            self._deferred[(kind, target)] = self._deferred_seq
        if first:
            # Once per outage (until the kept ones are applied), not once per invalidation.
            log.error("memo_redis: invalidation of %r could not be sent to %s; it is kept, with "
                      "any that follow, and applied once Redis answers (this process bypasses "
                      "the cache until then; other processes may serve stale entries)",
                      target, self._target)
        local = self._local
        if local is not None:
            local.clear()  # it may hold what the invalidation targets; lookups refill it later

    def _apply_deferred(self, op: str) -> None:
        """Apply the invalidations that failed earlier, before ``op`` reads or writes the cache.

        Until they are applied, an entry they target could be served stale, or a computation
        that started before them could store its result: ``op`` raises
        :class:`CacheUnavailable` instead, so its caller runs uncached (read-your-writes within
        this process, across an outage or a failover).
        """
        if not self._applying.acquire(blocking=False):
            raise CacheUnavailable(f"{op} skipped: invalidations that failed earlier are being "
                                   "applied by another thread")
        try:
            with self._deferred_mutex:
                pending = list(self._deferred.items())
                calls = self._deferred_calls
            for item, seq in pending:
                kind, target = item
                if kind == "key":
                    self._invalidate_one(target, "apply")
                else:
                    self._invalidate_pattern(target, "apply")
                with self._deferred_mutex:
                    # Failed again meanwhile: that newer failure must be applied later too.
                    if self._deferred.get(item) == seq:
                        del self._deferred[item]
            with self._deferred_mutex:
                self._deferred_calls -= calls
            if not pending:
                return
            if self._outage:
                self._outage = False
                log.warning("memo_redis: Redis at %s is back, caching resumed; applied %d "
                            "invalidation(s) deferred during the outage (%d distinct)",
                            self._target, calls, len(pending))
            else:
                log.warning("memo_redis: applied %d invalidation(s) that had failed on %s",
                            calls, self._target)
        finally:
            self._applying.release()

    def _fail_open(self, error: CacheUnavailable, strict: bool | None, default: T) -> T:
        if self.strict if strict is None else strict:
            raise error
        return default

    # -- envelope ----------------------------------------------------------------------------

    def _decode(self, key: str, raw: bytes | None, generations: list[bytes | None],
                fingerprint: bytes | None) -> tuple[Any, envelope.Envelope | None]:
        """The value held by ``raw`` if it is valid under ``generations``, else MISS."""
        if raw is None:
            return MISS, None
        env = envelope.unpack(raw)
        if env is None:
            # Plain JSON text: the seed deployment's format (no stamp, no fingerprint). Only the
            # key/value API (no fingerprint) and the seed's SQL reader (a SeedFingerprint) read
            # it; decorated functions write envelopes, so at their keys it came from elsewhere.
            if fingerprint is not None and not isinstance(fingerprint, SeedFingerprint):
                self._warn_key(key, "is not a memo_redis envelope (decorated functions write "
                               "only envelopes)")
                return MISS, None
            try:
                return self.serializer.decode_plain_json(raw, max_size=self.max_value_size), None
            except DecodeError as exc:
                self._warn_key(key, f"is neither memo_redis data nor readable JSON text ({exc})")
                return MISS, None
        if None in generations:
            return MISS, None
        if env.stamp != envelope.compute_stamp(generations):  # type: ignore[arg-type]
            return MISS, None
        if fingerprint is not None and env.fingerprint != fingerprint:
            return MISS, None
        try:
            return self.serializer.decode(env.flags, env.body, max_size=self.max_value_size), env
        except DecodeError as exc:
            self._warn_key(key, f"could not be decoded ({exc})")
            return MISS, None

    def _warn_once(self, kind: str, message: str) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            log.warning("memo_redis: %s", message)

    def _warn_key(self, key: str, problem: str) -> None:
        """Log an undecodable value once per key (bounded), so a bad entry does not flood logs."""
        if key in self._warned_keys:
            return
        if len(self._warned_keys) < _MAX_WARNED_KEYS:
            self._warned_keys.add(key)
        log.warning("memo_redis: the value stored at %r %s; treated as a miss", key, problem)

    def _encode(self, value: Any, fingerprint: bytes | None = None,
                early: tuple[int, int] | None = None) -> tuple[bytes, bytes] | None:
        """Serialize ``value`` into (head, tail); None when it exceeds ``max_value_size``.

        A JSON value without fingerprint or refresh data is stored as plain JSON text, the seed's
        format (empty head): readable by any language.
        """
        serializer = self.serializer
        plain = (serializer.codec is Codec.JSON and fingerprint is None and early is None
                 and serializer.compress_threshold is None)
        if plain:
            flags, body = 0, serializer.encode_plain_json(value)
        else:
            # Over max_value_size the payload comes back uncompressed: readers refuse to inflate
            # more than that, so it is refused here too.
            flags, body = serializer.encode(value, max_size=self.max_value_size)
        if self.max_value_size is not None and len(body) > self.max_value_size:
            self._warn_once(
                "too-large",
                f"a value of {len(body)} bytes exceeds max_value_size={self.max_value_size} "
                "and is not cached",
            )
            return None
        if plain:
            return b"", body
        return envelope.pack_tail(flags, body, fingerprint, early)

    # -- lookup / store primitives (used by the decorators) -----------------------------------

    def _lookup_keys(self, key: str) -> list[str]:
        return self.layout.lookup_keys(key)

    def _register_group(self, key: str) -> None:
        """Cluster layout: record ``key``'s group before its first lookup in this process, so
        that invalidating a wider prefix finds it (see :class:`.layout.ClusterLayout`)."""
        group = self.layout.group(key)
        if group is not None and group not in self._groups:
            self._execute("lookup", self.client.sadd, layout.GROUPS_KEY, group)
            self._groups.add(group)

    async def _aregister_group(self, key: str) -> None:
        group = self.layout.group(key)
        if group is not None and group not in self._groups:
            await self._aexecute("lookup", self.async_client.sadd, layout.GROUPS_KEY, group)
            self._groups.add(group)

    def _parse_lookup(self, key: str, raws: list[bytes | None], fingerprint: bytes | None,
                      fence: bytes | None = None) -> Lookup:
        """``raws`` is what a lookup reads: the generations, then the value."""
        generations = raws[:-1]
        value, env = self._decode(key, raws[-1], generations, fingerprint)
        return Lookup(value, generations, fence, env)

    def lookup(self, key: str, fingerprint: bytes | None = None) -> Lookup:
        """Read ``key`` and the generations guarding it in one round trip (an MGET).

        A value is served only if its stamp matches the generations read with it (and its
        fingerprint ``fingerprint``, when given). Raises :class:`CacheUnavailable` on failure
        (callers decide whether to fail open). A computation must :meth:`claim` (or :meth:`arm`) the
        entry before it runs: a store is checked against what the claim observed.
        """
        if self.layout.tagged:
            self._register_group(key)
        raws = self._execute(
            "lookup", self.client.execute_command, "MGET", *self._lookup_keys(key),
            NEVER_DECODE=True,
        )
        return self._parse_lookup(key, raws, fingerprint)

    async def alookup(self, key: str, fingerprint: bytes | None = None) -> Lookup:
        """Async :meth:`lookup`."""
        if self.layout.tagged:
            await self._aregister_group(key)
        raws = await self._aexecute(
            "lookup", self.async_client.execute_command, "MGET", *self._lookup_keys(key),
            NEVER_DECODE=True,
        )
        return self._parse_lookup(key, raws, fingerprint)

    def lookup_many(self, items: Sequence[tuple[str, bytes | None]]) -> list[Lookup]:
        """:meth:`lookup` for many (key, fingerprint) pairs in one round trip (a pipeline)."""
        if self.layout.tagged:
            for key, _ in items:
                self._register_group(key)
        raws = self._execute("lookup", self._pipelined_lookups, [key for key, _ in items])
        return [self._parse_lookup(key, r, fp)
                for (key, fp), r in zip(items, raws, strict=True)]

    async def alookup_many(self, items: Sequence[tuple[str, bytes | None]]) -> list[Lookup]:
        """Async :meth:`lookup_many`."""
        if self.layout.tagged:
            for key, _ in items:
                await self._aregister_group(key)
        pipe = self.async_client.pipeline(transaction=False)
        queue: Callable[..., Any] = pipe.execute_command
        for key, _ in items:
            queue("MGET", *self._lookup_keys(key), NEVER_DECODE=True)
        raws = await self._aexecute("lookup", pipe.execute)
        return [self._parse_lookup(key, r, fp)
                for (key, fp), r in zip(items, raws, strict=True)]

    # -- claims: what a computation observes before it runs ---------------------------------

    def _claim_call(self, key: str, seen: Lookup | None, token: bytes | None
                    ) -> tuple[list[str], list[Any]]:
        """Keys and arguments of :data:`scripts.CLAIM`.

        The lock is named after the state the caller expects (``seen``'s generations and fence;
        a fresh proposal when it knows no fence yet) and is taken only under that state.
        """
        lay = self.layout
        gen_keys = lay.generation_keys(key)
        proposal = envelope.new_token()
        fresh = [envelope.new_token() for _ in gen_keys]
        value_key = lay.physical(key)
        if token is None or seen is None:
            lock, stamp, expected = value_key, b"", b""
        else:
            # What the caller expects to find: what it saw, or what this claim creates.
            expected = seen.fence if seen.fence is not None else proposal
            stamp = envelope.compute_stamp(
                [g if g is not None else f for g, f in zip(seen.generations, fresh, strict=True)])
            lock = lay.lock_key(key, stamp + expected[:8])
        keys = [lock, *gen_keys, lay.fence_key(key), value_key]
        args: list[Any] = [len(gen_keys), token or b"", self.lock_timeout_ms, expected, proposal,
                           self.fence_ttl_ms, stamp, *fresh]
        return keys, args

    def _parse_claim(self, key: str, reply: list[Any], fingerprint: bytes | None) -> Claim:
        outcome, state = reply
        raws = [*state[:-2], state[-1]]
        return Claim(outcome == 1, outcome == 0,
                     self._parse_lookup(key, raws, fingerprint, state[-2]))

    def is_refusal(self, error: CacheUnavailable) -> bool:
        """True when Redis answered the call with an error (NOPERM, WRONGTYPE, OOM, READONLY,
        a script error), False for an outage (connection, timeout, circuit open)."""
        return not isinstance(error.__cause__, _INFRA_ERRORS)

    def claim(self, key: str, seen: Lookup, token: bytes,
              fingerprint: bytes | None = None) -> Claim:
        """Before computing ``key``: arm its fence (and create missing generations), read it
        again, and take the single-flight lock if the state is still the one ``seen`` names.

        One round trip. ``claim.look`` is what the computation's store will be checked against
        (its fence is always set); a hit there means a holder stored meanwhile. The lock is named
        after ``seen``'s generations and fence (or a fresh fence this call proposes when ``seen``
        has none), so callers after an invalidation never wait for a computation from before it.
        """
        if self.layout.tagged:
            self._register_group(key)
        keys, args = self._claim_call(key, seen, token)
        reply = self._execute("lock", _CLAIM.run, self.client, keys, args)
        return self._parse_claim(key, reply, fingerprint)

    async def aclaim(self, key: str, seen: Lookup, token: bytes,
                     fingerprint: bytes | None = None) -> Claim:
        """Async :meth:`claim`."""
        if self.layout.tagged:
            await self._aregister_group(key)
        keys, args = self._claim_call(key, seen, token)
        reply = await self._aexecute("lock", _CLAIM.arun, self.async_client, keys, args)
        return self._parse_claim(key, reply, fingerprint)

    def arm(self, key: str, fingerprint: bytes | None = None) -> Lookup:
        """:meth:`claim` without the lock, for a computation that runs without one
        (``single_flight=False``, ``refresh()``, after ``lock_wait``): its store is then checked
        against the returned lookup."""
        if self.layout.tagged:
            self._register_group(key)
        keys, args = self._claim_call(key, None, None)
        reply = self._execute("lock", _CLAIM.run, self.client, keys, args)
        return self._parse_claim(key, reply, fingerprint).look

    async def aarm(self, key: str, fingerprint: bytes | None = None) -> Lookup:
        """Async :meth:`arm`."""
        if self.layout.tagged:
            await self._aregister_group(key)
        keys, args = self._claim_call(key, None, None)
        reply = await self._aexecute("lock", _CLAIM.arun, self.async_client, keys, args)
        return self._parse_claim(key, reply, fingerprint).look

    def arm_many(self, items: Sequence[tuple[str, bytes | None]]) -> list[Lookup]:
        """:meth:`arm` for many (key, fingerprint) pairs in one round trip (a pipeline)."""
        if not items:
            return []
        calls = [self._claim_call(key, None, None) for key, _ in items]
        replies = self._execute("lock", self._pipeline_scripts, _CLAIM, calls)
        return [self._parse_claim(key, reply, fp).look
                for (key, fp), reply in zip(items, replies, strict=True)]

    async def aarm_many(self, items: Sequence[tuple[str, bytes | None]]) -> list[Lookup]:
        """Async :meth:`arm_many` (the pipeline runs in a worker thread)."""
        return await asyncio.to_thread(self.arm_many, items)

    # -- stores ------------------------------------------------------------------------------

    def _store_calls(self, entries: list[tuple[str, Any, int | None, Lookup, bytes]]
                     ) -> list[tuple[list[str], list[Any]]]:
        calls = []
        for key, value, ttl_ms, seen, fingerprint in entries:
            parts = self._encode(value, fingerprint)
            if parts is not None:
                checked = seen if self.race_protection else None
                calls.append(self._store_call(key, parts, ttl_ms, checked, None, None))
        return calls

    def store_many(self, entries: list[tuple[str, Any, int | None, Lookup, bytes]]) -> int:
        """Checked stores of (key, value, ttl_ms, lookup, fingerprint) in one round trip;
        returns how many were stored."""
        calls = self._store_calls(entries)
        if not calls:
            return 0
        if self.before_store is not None:
            for key, *_ in entries:
                self.before_store(key)
        return sum(bool(r) for r in self._execute("store", self._pipeline_scripts, _STORE, calls))

    async def astore_many(self, entries: list[tuple[str, Any, int | None, Lookup, bytes]]) -> int:
        """Async :meth:`store_many` (the stores run in a worker thread's pipeline)."""
        return await asyncio.to_thread(self.store_many, entries)

    def local_cache(self) -> LocalCache | None:
        """The in-process L1 used by ``@cached(local=True)``, created on first use; None on
        Redis Cluster, where one tracking connection cannot see every node."""
        if self.layout.tagged:
            self._warn_once("local-cluster", "the local cache is not available on Redis Cluster")
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

    def _store_call(self, key: str, parts: tuple[bytes, bytes], ttl_ms: int | None,
                    seen: Lookup | None, token: bytes | None, stamp: bytes | None
                    ) -> tuple[list[str], list[Any]]:
        lay = self.layout
        gens = lay.generation_keys(key)
        lock = lay.lock_key(key, stamp) if token is not None and stamp is not None else ""
        index = lay.index_key(key)
        value_key = lay.physical(key)
        keys = [*gens, lay.fence_key(key), value_key, lock or value_key, index or value_key]
        ttl_s = 0 if ttl_ms is None else -(-ttl_ms // 1000)
        mode = ("c" if seen is not None else "u") + ("p" if random.random() < _PRUNE_RATE else "")
        args: list[Any] = [
            len(gens), mode, parts[0], parts[1], ttl_ms or 0,
            token or b"", (seen.fence or b"") if seen is not None else b"", ttl_s if index else -1,
        ]
        if not index:
            keys[-1] = ""
        if seen is not None:
            args.extend(g or b"" for g in seen.generations)
        else:
            args.extend(envelope.new_token() for _ in gens)
        return keys, args

    def store(self, key: str, value: Any, ttl_ms: int | None, *, seen: Lookup | None = None,
              fingerprint: bytes | None = None, token: bytes | None = None,
              early: tuple[int, int] | None = None) -> bool:
        """Store ``value`` at ``key``; with ``seen`` (a :meth:`claim` or :meth:`arm` result),
        only if no invalidation happened since: its fence and generations must still be there,
        unchanged.

        Returns False when refused or too large. Raises :class:`SerializationError` for a value
        that cannot be encoded, :class:`CacheUnavailable` on failure (including a store Redis
        refused with an error: the caller releases its lock).
        """
        parts = self._encode(value, fingerprint, early)
        if parts is None:
            return False
        stamp = _stamp_of(seen) if token is not None and seen is not None else None
        if self.before_store is not None:
            self.before_store(key)
        keys, args = self._store_call(key, parts, ttl_ms, seen if self.race_protection else None,
                                      token, stamp)
        return bool(self._execute("store", _STORE.run, self.client, keys, args))

    async def astore(self, key: str, value: Any, ttl_ms: int | None, *, seen: Lookup | None = None,
                     fingerprint: bytes | None = None, token: bytes | None = None,
                     early: tuple[int, int] | None = None) -> bool:
        """Async :meth:`store`."""
        parts = self._encode(value, fingerprint, early)
        if parts is None:
            return False
        stamp = _stamp_of(seen) if token is not None and seen is not None else None
        if self.before_store is not None:
            self.before_store(key)
        keys, args = self._store_call(key, parts, ttl_ms, seen if self.race_protection else None,
                                      token, stamp)
        return bool(await self._aexecute("store", _STORE.arun, self.async_client, keys, args))

    def lock_held(self, key: str, seen: Lookup) -> bool:
        """Is the single-flight lock of ``key`` under ``seen`` (a claim's lookup) held?"""
        lock = self.layout.lock_key(key, _stamp_of(seen))
        return bool(self._execute("lock", self.client.execute_command, "EXISTS", lock))

    async def alock_held(self, key: str, seen: Lookup) -> bool:
        """Async :meth:`lock_held`."""
        lock = self.layout.lock_key(key, _stamp_of(seen))
        return bool(await self._aexecute("lock", self.async_client.execute_command, "EXISTS", lock))

    def _release_call(self, key: str, seen: Lookup, token: bytes, drop_fence: bool
                      ) -> tuple[list[str], list[Any]]:
        fence = seen.fence if drop_fence and seen.fence is not None else b""
        return ([self.layout.lock_key(key, _stamp_of(seen)), self.layout.fence_key(key)],
                [token, fence])

    def release(self, key: str, seen: Lookup, token: bytes, *, drop_fence: bool = True) -> None:
        """Release a lock this caller holds (compare-and-delete), and the fence it armed when
        it still holds ``seen``'s token (its result is not stored); errors are ignored."""
        keys, args = self._release_call(key, seen, token, drop_fence)
        with contextlib.suppress(CacheUnavailable):
            self._execute("unlock", _RELEASE.run, self.client, keys, args)

    async def arelease(self, key: str, seen: Lookup, token: bytes, *,
                       drop_fence: bool = True) -> None:
        """Async :meth:`release`."""
        keys, args = self._release_call(key, seen, token, drop_fence)
        with contextlib.suppress(CacheUnavailable):
            await self._aexecute("unlock", _RELEASE.arun, self.async_client, keys, args)

    # -- the public key/value API ----------------------------------------------------------

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
        ttl_ms = to_milliseconds(self.default_ttls["data"] if ttl is CATEGORY_DEFAULT else ttl)
        _check_key(key)
        try:
            return self.store(key, value, ttl_ms)
        except CacheUnavailable as error:
            return self._fail_open(error, strict, False)

    def get(self, key: str, default: Any = None, *, strict: bool | None = None) -> Any:
        """The value at ``key``, or ``default`` on a miss, an invalidated or undecodable entry,
        or a Redis failure (unless strict)."""
        _check_key(key)
        try:
            value = self.lookup(key).value
        except CacheUnavailable as error:
            return self._fail_open(error, strict, default)
        return default if value is MISS else value

    async def aget(self, key: str, default: Any = None, *, strict: bool | None = None) -> Any:
        """Async :meth:`get`."""
        _check_key(key)
        try:
            value = (await self.alookup(key)).value
        except CacheUnavailable as error:
            return self._fail_open(error, strict, default)
        return default if value is MISS else value

    async def aset(self, key: str, value: Any, ttl: TTL = CATEGORY_DEFAULT, *,
                   strict: bool | None = None) -> bool:
        """Async :meth:`set`."""
        ttl_ms = to_milliseconds(self.default_ttls["data"] if ttl is CATEGORY_DEFAULT else ttl)
        _check_key(key)
        try:
            return await self.astore(key, value, ttl_ms)
        except CacheUnavailable as error:
            return self._fail_open(error, strict, False)

    def delete(self, *keys: str, strict: bool | None = None) -> int:
        """Delete ``keys``; returns how many existed. (Use :meth:`invalidate` to also fence
        computations in flight.)"""
        if not keys:
            return 0
        for key in keys:
            _check_key(key)
        try:
            physical = [self.layout.physical(key) for key in keys]
            return int(self._execute("delete", self.client.delete, *physical))
        except CacheUnavailable as error:
            return self._fail_open(error, strict, 0)

    def get_many(self, keys: Iterable[str], *, strict: bool | None = None) -> dict[str, Any]:
        """The cached values of ``keys`` (missing ones left out), in one round trip."""
        keys = list(dict.fromkeys(keys))
        for key in keys:
            _check_key(key)
        if not keys:
            return {}
        lay = self.layout
        try:
            if lay.tagged:  # Cluster: one MGET per entry (its keys share a slot), pipelined
                lookups = self._execute("get_many", self._pipelined_lookups, keys)
            else:
                gen_keys = list(dict.fromkeys(g for key in keys for g in lay.generation_keys(key)))
                raws = self._execute("get_many", self.client.execute_command, "MGET", *gen_keys,
                                     *(lay.physical(key) for key in keys), NEVER_DECODE=True)
                gen_values = dict(zip(gen_keys, raws[: len(gen_keys)], strict=True))
                lookups = [
                    [*(gen_values[g] for g in lay.generation_keys(key)), raw]
                    for key, raw in zip(keys, raws[len(gen_keys):], strict=True)
                ]
        except CacheUnavailable as error:
            return self._fail_open(error, strict, {})
        found: dict[str, Any] = {}
        for key, raws_of_key in zip(keys, lookups, strict=True):
            value, _ = self._decode(key, raws_of_key[-1], raws_of_key[:-1], None)
            if value is not MISS:
                found[key] = value
        return found

    def _pipelined_lookups(self, keys: list[str]) -> list[list[bytes | None]]:
        pipe = self.client.pipeline(transaction=False)
        queue: Callable[..., Any] = pipe.execute_command
        for key in keys:
            queue("MGET", *self._lookup_keys(key), NEVER_DECODE=True)
        return list(pipe.execute())

    def set_many(self, mapping: Mapping[str, Any], ttl: TTL = CATEGORY_DEFAULT, *,
                 strict: bool | None = None) -> bool:
        """Store every item of ``mapping`` in one round trip (a pipeline of atomic stores)."""
        ttl_ms = to_milliseconds(self.default_ttls["data"] if ttl is CATEGORY_DEFAULT else ttl)
        calls = []
        for key, value in mapping.items():
            _check_key(key)
            parts = self._encode(value)
            if parts is not None:
                calls.append(self._store_call(key, parts, ttl_ms, None, None, None))
        if not calls:
            return not mapping
        try:
            results = self._execute("set_many", self._pipeline_scripts, _STORE, calls)
        except CacheUnavailable as error:
            return self._fail_open(error, strict, False)
        return all(results) and len(calls) == len(mapping)

    def _pipeline_scripts(self, script: _Script, calls: list[tuple[list[str], list[Any]]]
                          ) -> list[Any]:
        """Run ``script`` once per call in one pipeline: one round trip.

        The first use on this cache loads the script in the same round trip; after a server
        restart (NOSCRIPT) the pipeline is sent once more with the load.
        """
        for attempt in range(2):
            load = attempt > 0 or script.sha not in self._loaded_scripts
            if load and self.layout.tagged:  # a cluster loads on every primary, not in a pipeline
                self.client.script_load(script.source)
                load = False
            pipe = self.client.pipeline(transaction=False)
            queue: Callable[..., Any] = pipe.execute_command
            if load:
                queue("SCRIPT", "LOAD", script.source)
            for keys, args in calls:
                queue("EVALSHA", script.sha, len(keys), *keys, *args, NEVER_DECODE=True)
            results = list(pipe.execute(raise_on_error=False))
            if load:
                del results[0]
            if not load and any(isinstance(r, NoScriptError) for r in results):
                self._loaded_scripts.discard(script.sha)
                continue
            for result in results:
                if isinstance(result, Exception):
                    raise result
            self._loaded_scripts.add(script.sha)
            return results
        raise AssertionError("unreachable")

    # -- invalidation ------------------------------------------------------------------------

    def invalidate(self, pattern: str, *, strict: bool | None = None) -> int:
        """Invalidate every entry matching a Redis glob ``pattern``; returns the number deleted.

        Keys not matching ``pattern`` are left alone, and KEYS is never used:

        * ``prefix:*`` (and ``*``): the generation of ``prefix`` (``sql:users`` for
          ``sql:users:*``) is replaced first, so entries cached or computed before this call can
          neither be served nor stored afterwards (race-free). Then the matching keys are
          unlinked: with SCAN + UNLINK in batches of ``scan_count`` (O(keyspace)), or, when the
          keyspace holds more than ``scan_threshold`` keys and the prefix has 2 or more segments,
          through the prefix's index set (O(matches); it holds the entries memo_redis wrote, so
          keys written by other clients are then left to expire).
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
        if not isinstance(pattern, str):
            raise TypeError(f"pattern must be a str, got {type(pattern).__name__} {pattern!r}")
        if not pattern:
            raise ValueError("pattern must be a non-empty glob such as 'sql:users:*', got ''")
        if not is_glob(pattern):
            return self.invalidate_key(glob_unescape(pattern), strict=strict)
        _check_pattern(pattern)
        self._flush_deferred()
        try:
            return self._invalidate_pattern(pattern, "invalidate")
        except CacheUnavailable as error:
            self._defer("pattern", pattern)
            return self._fail_open(error, strict, 0)

    def _flush_deferred(self) -> None:
        """Before an invalidation, apply the ones kept earlier once Redis lets calls through (a
        process that only writes would otherwise never apply them)."""
        if self._deferred and self.breaker.allow():
            with contextlib.suppress(CacheUnavailable):
                self._apply_deferred("invalidate")

    def _invalidate_pattern(self, pattern: str, op: str) -> int:
        """The work of :meth:`invalidate` for a glob; raises :class:`CacheUnavailable`."""
        prefix = literal_prefix(pattern)
        whole = pattern == (glob_escape(prefix) + ":*" if prefix else "*")
        if whole:
            self._execute(op, self._bump, prefix)
            return self._execute(op, self._unlink_prefix, pattern, prefix)
        self._execute(op, self._unfence_matching, pattern)
        return self._execute(op, self._unlink_scanned, pattern)

    def _invalidate_one(self, key: str, op: str) -> int:
        """The work of :meth:`invalidate_key`; raises :class:`CacheUnavailable`."""
        return int(self._execute(
            op, _INVALIDATE_ONE.run, self.client,
            [self.layout.physical(key), self.layout.fence_key(key)], [],
        ))

    def invalidate_key(self, key: str, *, strict: bool | None = None) -> int:
        """Invalidate one entry (race-free: in-flight computations of it are fenced off).

        Returns 1 when a live entry was deleted, else 0. Kept for later, like
        :meth:`invalidate`, while Redis is unavailable.
        """
        _check_key(key)
        self._flush_deferred()
        try:
            return self._invalidate_one(key, "invalidate")
        except CacheUnavailable as error:
            self._defer("key", key)
            return self._fail_open(error, strict, 0)

    async def ainvalidate_key(self, key: str, *, strict: bool | None = None) -> int:
        """Async :meth:`invalidate_key`."""
        _check_key(key)
        if self._deferred:
            await asyncio.to_thread(self._flush_deferred)
        try:
            return int(await self._aexecute(
                "invalidate", _INVALIDATE_ONE.arun, self.async_client,
                [self.layout.physical(key), self.layout.fence_key(key)], [],
            ))
        except CacheUnavailable as error:
            self._defer("key", key)
            return self._fail_open(error, strict, 0)

    def _bump(self, prefix: str) -> None:
        """Replace the generation(s) invalidating ``prefix:*`` takes effect through.

        Entries stamped with the old token are misses at once, and computations that observed
        it are refused (an evicted token is recreated fresh by the next claim: never the old one).
        On Redis Cluster, ``sql:*`` and ``*`` replace one copy per group (table) under the prefix,
        as listed in the groups registry: O(groups), one pipelined round trip per primary.
        """
        groups: list[str] = []
        if self.layout.needs_registry(prefix):
            registered = {g.decode() if isinstance(g, bytes) else g
                          for g in self.client.smembers(layout.GROUPS_KEY)}
            # The registry can lose groups (a failover before it replicated, a FLUSHALL); this
            # process would never register its own again, so it puts them back here.
            missing = self._groups - registered
            if missing:
                self.client.sadd(layout.GROUPS_KEY, *missing)
            groups = sorted(registered | missing)
        keys = self.layout.bump_keys(prefix, groups)
        if len(keys) == 1:
            _BUMP.run(self.client, keys, [envelope.new_token()])
        elif keys:
            self._pipeline_scripts(_BUMP, [([key], [envelope.new_token()]) for key in keys])

    def _physical_match(self, pattern: str) -> str:
        """The SCAN MATCH finding ``pattern``'s keys (a superset in the cluster layout)."""
        if not self.layout.tagged:
            return pattern
        colons = [i for i, ch in enumerate(pattern) if ch == ":" and pattern[i - 1] != "\\"]
        literal = pattern[: colons[1]] if len(colons) >= 2 else pattern
        if len(colons) >= 1 and not is_glob(literal):
            return "{" + literal + "}" + pattern[len(literal):]
        return "*"

    def _scan(self, match: str) -> Iterator[bytes]:
        """SCAN ``match`` as bytes, whatever ``decode_responses`` says (keys may not be UTF-8)."""
        if self.layout.tagged:  # every primary of the cluster
            for key in self.client.scan_iter(match=match, count=self.scan_count):
                yield key.encode("utf-8", "surrogateescape") if isinstance(key, str) else key
            return
        command: Callable[..., Any] = self.client.execute_command
        cursor: bytes | int = 0
        while True:
            cursor, keys = command("SCAN", cursor, "MATCH", match, "COUNT", self.scan_count,
                                   NEVER_DECODE=True)
            yield from keys
            if int(cursor) == 0:
                return

    def _unlink_prefix(self, pattern: str, prefix: str) -> int:
        client = self.client
        index = self.layout.index_key_for_prefix(prefix)
        if index and self._dbsize() > self.scan_threshold and client.exists(index):
            return self._unlink_indexed(index, pattern, prefix)
        return self._unlink_scanned(pattern)

    def _dbsize(self) -> int:
        """Keys in the keyspace (on Redis Cluster: summed over the primaries)."""
        if self.layout.tagged:
            dbsize: Callable[..., Any] = self.client.dbsize
            return int(dbsize(target_nodes="primaries"))
        return int(self.client.dbsize())

    def _unlink_scanned(self, pattern: str) -> int:
        deleted = 0
        batch: list[bytes] = []
        lay = self.layout
        for key in self._scan(self._physical_match(pattern)):
            if layout.is_internal(key) or (lay.tagged and not matches(pattern, lay.logical(key))):
                continue
            batch.append(key)
            if len(batch) >= self.scan_count:
                deleted += self._unlink(batch)
                batch.clear()
        if batch:
            deleted += self._unlink(batch)
        return deleted

    def _unlink(self, keys: list[bytes]) -> int:
        """UNLINK ``keys``; on Redis Cluster one UNLINK per slot, pipelined (one round trip per
        primary, where redis-py's unlink() makes one per slot)."""
        if not self.layout.tagged:
            return int(self.client.unlink(*keys))
        by_slot: dict[int, list[bytes]] = {}
        for key in keys:
            by_slot.setdefault(key_slot(key), []).append(key)
        pipe = self.client.pipeline(transaction=False)
        queue: Callable[..., Any] = pipe.execute_command
        for same_slot in by_slot.values():
            queue("UNLINK", *same_slot)
        return sum(int(n) for n in pipe.execute())

    def _unlink_indexed(self, index: str, pattern: str, prefix: str) -> int:
        client = self.client
        # The index of a 2-segment prefix holds only keys under it; deeper prefixes share the
        # index of their first two segments and need the pattern test.
        whole = prefix.count(":") == 1
        if whole:
            return int(_DRAIN_INDEX.run(client, [index], []))
        deleted = 0
        cursor = 0
        command: Callable[..., Any] = client.execute_command
        while True:
            cursor, members = command(
                "SSCAN", index, cursor, "COUNT", self.scan_count, NEVER_DECODE=True)
            cursor = int(cursor)
            chosen = [m for m in members
                      if whole or matches(pattern, self.layout.logical(m))]
            if chosen:
                pipe = client.pipeline(transaction=False)
                # A raw UNLINK: redis-py's cluster pipeline refuses unlink() of several keys,
                # though an index and its members always share one slot.
                queue: Callable[..., Any] = pipe.execute_command
                queue("UNLINK", *chosen)
                queue("SREM", index, *chosen)
                deleted += int(pipe.execute()[0])
            if cursor == 0:
                break
        return deleted

    def _unfence_matching(self, pattern: str) -> int:
        """Delete the fence of every entry matching ``pattern``: each computation in flight armed
        one before its body ran, so none of them can store afterwards."""
        lay = self.layout
        # Fences are __memo__:fence:<key> (cluster layout: __memo__:fence:{group}|<key>); the
        # exact test is done here, on the logical key.
        match = _FENCE_PREFIX + ("*|" if lay.tagged else "") + pattern
        fences: list[bytes] = []
        deleted = 0
        for fence in self._scan(match):
            name = fence[len(_FENCE_PREFIX.encode()):]
            if lay.tagged:
                if not name.startswith(b"{"):
                    continue
                name = name[name.find(b"}|") + 2:]
            if matches(pattern, name):
                fences.append(fence)
                if len(fences) >= self.scan_count:
                    deleted += self._unlink(fences)
                    fences.clear()
        if fences:
            deleted += self._unlink(fences)
        return deleted

    async def ainvalidate(self, pattern: str, *, strict: bool | None = None) -> int:
        """Async :meth:`invalidate`: runs the blocking scan in a worker thread."""
        return await asyncio.to_thread(self.invalidate, pattern, strict=strict)

    # -- health and stats --------------------------------------------------------------------

    def check_cache_health(self) -> bool:
        """True when Redis answers PING (on Redis Cluster: every primary); never raises."""
        try:
            if self.layout.tagged:
                ping: Callable[..., Any] = self.client.ping
                return bool(ping(target_nodes="primaries"))
            return bool(self.client.ping())
        except _CLIENT_ERRORS:
            return False

    def hit_rate(self) -> float:
        """Keyspace hit rate of the server in percent (0.0 when no lookups yet), as in the seed.

        Counts every key the server looked up, including memo_redis's generation keys; on Redis
        Cluster, summed over the primaries.
        """
        try:
            if self.layout.tagged:
                per_node = self._execute("hit_rate", self.client.info, "stats",
                                         target_nodes="primaries")
                infos = list(per_node.values()) if isinstance(per_node, dict) else [per_node]
                if infos and not isinstance(infos[0], dict):  # a single node's flat answer
                    infos = [per_node]
            else:
                infos = [self._execute("hit_rate", self.client.info, "stats")]
        except CacheUnavailable as error:
            return self._fail_open(error, None, 0.0)
        hits = sum(int(info.get("keyspace_hits", 0)) for info in infos)
        misses = sum(int(info.get("keyspace_misses", 0)) for info in infos)
        total = hits + misses
        return 0.0 if total == 0 else hits / total * 100.0

    def ttl_for(self, category: str) -> int:
        """The default TTL (seconds) of ``category`` on this cache."""
        return self.default_ttls.get(category, default_ttl(category))

    # -- the seed's SQL API (implemented in memo_redis.sql) --------------------------------

    def get_data_from_table(
        self,
        table: str,
        column: list[str] | tuple[str, ...] | str,
        where: list[str] | tuple[str, ...] | str = (),
        beautify: bool = True,
        fetcher: Callable[[], Any] | None = None,
        ttl_seconds: TTL = CATEGORY_DEFAULT,
    ) -> Any:
        """Read-through cache of a SQL fetch; see :func:`memo_redis.sql.get_data_from_table`."""
        from .sql import get_data_from_table

        return get_data_from_table(self, table, column, where, beautify=beautify,
                                   fetcher=fetcher, ttl_seconds=ttl_seconds)

    def update_data_in_table(
        self,
        table: str,
        data: Any,
        column: list[str] | tuple[str, ...] | str,
        where: list[str] | tuple[str, ...] | str = (),
        writer: Callable[[], Any] | None = None,
    ) -> Any:
        """Write-through: run ``writer`` then invalidate ``sql:<table>:*`` (also when it raises);
        see :func:`memo_redis.sql.update_data_in_table`."""
        from .sql import update_data_in_table

        return update_data_in_table(self, table, data, column, where, writer=writer)

    # -- decorators bound to this cache ------------------------------------------------------

    def cached(self, **options: Any) -> CachedFactory[..., Any]:
        """``@cache.cached(...)``: :func:`memo_redis.cached` bound to this cache."""
        from .decorators import cached

        factory: CachedFactory[..., Any] = cached(cache=self, **options)
        return factory

    def invalidates(self, *patterns: str, **options: Any) -> InvalidatesFactory[..., Any]:
        """``@cache.invalidates(...)``: :func:`memo_redis.invalidates` bound to this cache."""
        from .decorators import invalidates

        factory: InvalidatesFactory[..., Any] = invalidates(*patterns, cache=self, **options)
        return factory


def _stamp_of(seen: Lookup) -> bytes:
    """What names the single-flight lock of a computation: its generations and fence."""
    stamp = seen.lock_stamp
    if stamp is None:
        stamp = envelope.compute_stamp([g or b"-" for g in seen.generations])
        stamp = seen.lock_stamp = stamp + (seen.fence or b"")[:8]
    return stamp


def _check_key(key: object) -> None:
    if not isinstance(key, str):
        raise TypeError(f"key must be a str, got {type(key).__name__} {key!r}")
    if not key:
        raise ValueError("key must be a non-empty str, got ''")
    if key.startswith(layout.INTERNAL_PREFIX):
        raise ConfigError(
            f"key {key!r} is in the {layout.INTERNAL_PREFIX!r} namespace, reserved for "
            "memo_redis's bookkeeping (generations, fences, locks, indexes): use another key"
        )


def _check_pattern(pattern: str) -> None:
    """Refuse a glob whose literal start is in the reserved ``__memo__:`` namespace."""
    head = literal_prefix(pattern)
    if head == layout.INTERNAL_PREFIX[:-1] or head.startswith(layout.INTERNAL_PREFIX):
        raise ConfigError(
            f"pattern {pattern!r} is in the {layout.INTERNAL_PREFIX!r} namespace, reserved for "
            "memo_redis's bookkeeping (generations, fences, locks, indexes); '*' never deletes "
            "those keys"
        )


