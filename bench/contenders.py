"""The cache implementations under test, each behind the same two calls: ``hit()`` and ``miss(i)``.

Every contender caches the same workload, ``fetch(table, limit, page)``, whose body returns
precomputed rows (see :mod:`bench.workload`). ``hit()`` repeats one call whose entry is stored by
``warm()``; ``miss(i)`` makes a call whose key has never been seen (``page=i``, unique per run),
so it pays the lookup, the body and the store.

Baselines are plain redis-py on the same connection type: ``GET`` + ``msgpack.unpackb`` on a hit,
``GET`` then ``SET EX`` on a miss. Rows marked *diagnostic* are not targets; they split memo_redis's
cost into its parts (a raw ``MGET`` of the same six keys memo_redis reads, memo_redis without
zlib, memo_redis without single-flight).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgpack
import redis
import redis.asyncio

from memo_redis import RedisCaching, cached

from .workload import LIMIT, TABLE, Rows

TTL_SECONDS = 300


@dataclass(frozen=True)
class Target:
    """How to reach the benchmark server: over its unix socket or over TCP loopback."""

    transport: str
    socket_path: str
    host: str = "127.0.0.1"
    port: int = 0

    @property
    def url(self) -> str:
        """A redis-py URL for this transport."""
        if self.transport == "unix":
            return f"unix://{self.socket_path}"
        return f"redis://{self.host}:{self.port}/0"

    def redis_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``redis.Redis`` / ``redis.asyncio.Redis``."""
        if self.transport == "unix":
            return {"unix_socket_path": self.socket_path}
        return {"host": self.host, "port": self.port}


@dataclass
class Body:
    """What a cached function's body does: count its runs, optionally wait, return ``rows``."""

    rows: Rows
    on_run: Callable[[], None] | None = None
    delay: float = 0.0

    def __call__(self, table: str, limit: int, page: int = 0) -> Rows:
        if self.on_run is not None:
            self.on_run()
        if self.delay:
            time.sleep(self.delay)  # models a slow query (stampede only), not synchronization
        return self.rows

    async def run_async(self, table: str, limit: int, page: int = 0) -> Rows:
        """The same body for ``async def`` contenders."""
        if self.on_run is not None:
            self.on_run()
        if self.delay:
            await asyncio.sleep(self.delay)
        return self.rows


@dataclass
class SyncContender:
    """A synchronous cache: ``hit()`` repeats the warmed call, ``miss(i)`` uses a cold key."""

    name: str
    hit: Callable[[], Any]
    miss: Callable[[int], Any]
    close: Callable[[], None]
    family: str
    diagnostic: bool = False
    is_async: bool = field(default=False, init=False)

    def warm(self) -> Any:
        """Store the entry ``hit()`` reads (a first call with the hot arguments)."""
        return self.hit()


@dataclass
class AsyncContender:
    """An asyncio cache; same contract as :class:`SyncContender` with awaitables."""

    name: str
    hit: Callable[[], Awaitable[Any]]
    miss: Callable[[int], Awaitable[Any]]
    close: Callable[[], Awaitable[None]]
    family: str
    diagnostic: bool = False
    is_async: bool = field(default=True, init=False)

    async def warm(self) -> Any:
        """Store the entry ``hit()`` reads."""
        return await self.hit()


Contender = SyncContender | AsyncContender


# -- baselines ------------------------------------------------------------------------------


def raw(target: Target, body: Body) -> SyncContender:
    """redis-py: ``GET`` + ``msgpack.unpackb``; on a miss the body, then ``SET key value EX``."""
    client = redis.Redis(**target.redis_kwargs())
    unpackb, packb = msgpack.unpackb, msgpack.packb

    def fetch(table: str, limit: int, page: int = 0) -> Any:
        key = f"raw:{table}:{limit}:{page}"
        raw_value = client.get(key)
        if raw_value is not None:
            return unpackb(raw_value)
        rows = body(table, limit, page)
        client.set(key, packb(rows), ex=TTL_SECONDS)
        return rows

    return SyncContender("raw redis-py", lambda: fetch(TABLE, LIMIT),
                         lambda i: fetch(TABLE, LIMIT, i), client.close, family="baseline")


def raw_mget(target: Target, body: Body) -> SyncContender:
    """Diagnostic: one ``MGET`` of the five keys a memo_redis lookup reads, + ``msgpack.unpackb``.

    The four generation keys exist (memo_redis creates them on its first store): this is the
    network and server cost of memo_redis's lookup with no Python around it.
    """
    client = redis.Redis(**target.redis_kwargs())
    unpackb, packb = msgpack.unpackb, msgpack.packb
    gens = ["__memo__:gen:", "__memo__:gen:sql", "__memo__:gen:sql:users",
            "__memo__:gen:sql:users:data"]

    def fetch(table: str, limit: int, page: int = 0) -> Any:
        key = f"rawm:{table}:{limit}:{page}"
        values = client.mget(*gens, key)
        if values[-1] is not None:
            return unpackb(values[-1])
        rows = body(table, limit, page)
        client.set(key, packb(rows), ex=TTL_SECONDS)
        return rows

    return SyncContender("raw MGET(5 keys)", lambda: fetch(TABLE, LIMIT),
                         lambda i: fetch(TABLE, LIMIT, i), client.close, family="baseline",
                         diagnostic=True)


def raw_async(target: Target, body: Body) -> AsyncContender:
    """redis.asyncio: ``GET`` + ``msgpack.unpackb``; ``SET EX`` on a miss."""
    client = redis.asyncio.Redis(**target.redis_kwargs())
    unpackb, packb = msgpack.unpackb, msgpack.packb

    async def fetch(table: str, limit: int, page: int = 0) -> Any:
        key = f"rawa:{table}:{limit}:{page}"
        raw_value = await client.get(key)
        if raw_value is not None:
            return unpackb(raw_value)
        rows = await body.run_async(table, limit, page)
        await client.set(key, packb(rows), ex=TTL_SECONDS)
        return rows

    return AsyncContender("raw redis.asyncio", lambda: fetch(TABLE, LIMIT),
                          lambda i: fetch(TABLE, LIMIT, i), client.aclose, family="baseline")


# -- memo_redis -----------------------------------------------------------------------------


def _memo_sync(name: str, prefix: str, target: Target, body: Body, *, diagnostic: bool = False,
               single_flight: bool = True, **cache_options: Any) -> SyncContender:
    cache = RedisCaching(target.url, **cache_options)

    @cached(prefix=prefix, cache=cache, ttl=TTL_SECONDS, single_flight=single_flight)  # type: ignore[untyped-decorator]
    def fetch(table: str, limit: int, page: int = 0) -> Rows:
        return body(table, limit, page)

    contender = SyncContender(name, lambda: fetch(TABLE, LIMIT), lambda i: fetch(TABLE, LIMIT, i),
                              cache.close, family="memo_redis", diagnostic=diagnostic)
    contender.fetch = fetch  # type: ignore[attr-defined]  # for the profile and byte counts
    contender.cache = cache  # type: ignore[attr-defined]
    return contender


def memo(target: Target, body: Body) -> SyncContender:
    """memo_redis ``@cached`` with its defaults (msgpack, zlib >= 512 B, single-flight)."""
    return _memo_sync("memo_redis", "sql:{table}", target, body)


def memo_no_zlib(target: Target, body: Body) -> SyncContender:
    """Diagnostic: memo_redis with ``compress_threshold=None``."""
    return _memo_sync("memo_redis no zlib", "sqz:{table}", target, body, diagnostic=True,
                      compress_threshold=None)


def memo_no_flight(target: Target, body: Body) -> SyncContender:
    """Diagnostic: memo_redis with ``single_flight=False`` (no lock round trip on a miss)."""
    return _memo_sync("memo_redis no single-flight", "sqn:{table}", target, body,
                      diagnostic=True, single_flight=False)


def memo_async(target: Target, body: Body) -> AsyncContender:
    """memo_redis ``@cached`` on an ``async def``."""
    cache = RedisCaching(target.url)

    @cached(prefix="sqa:{table}", cache=cache, ttl=TTL_SECONDS)  # type: ignore[untyped-decorator]
    async def fetch(table: str, limit: int, page: int = 0) -> Rows:
        return await body.run_async(table, limit, page)

    return AsyncContender("memo_redis async", lambda: fetch(TABLE, LIMIT),
                          lambda i: fetch(TABLE, LIMIT, i), cache.aclose, family="memo_redis")


# -- peers ----------------------------------------------------------------------------------


def _dogpile(name: str, target: Target, body: Body, *, lock: bool) -> SyncContender:
    from dogpile.cache import make_region

    region = make_region().configure(
        "dogpile.cache.redis",
        expiration_time=TTL_SECONDS,
        arguments={
            "url": target.url,
            "redis_expiration_time": TTL_SECONDS,
            "distributed_lock": lock,
            "thread_local_lock": False,
            "lock_timeout": 30,
            "lock_sleep": 0.01,
        },
    )

    @region.cache_on_arguments(namespace="lock" if lock else "nolock")
    def fetch(table: str, limit: int, page: int = 0) -> Rows:
        return body(table, limit, page)

    def close() -> None:
        region.backend.writer_client.close()

    return SyncContender(name, lambda: fetch(TABLE, LIMIT), lambda i: fetch(TABLE, LIMIT, i),
                         close, family="dogpile.cache")


def dogpile(target: Target, body: Body) -> SyncContender:
    """dogpile.cache, redis backend, default (in-process dogpile lock only)."""
    return _dogpile("dogpile.cache", target, body, lock=False)


def dogpile_lock(target: Target, body: Body) -> SyncContender:
    """dogpile.cache, redis backend with ``distributed_lock=True`` (a Redis lock per miss)."""
    return _dogpile("dogpile.cache +lock", target, body, lock=True)


def hermes(target: Target, body: Body) -> SyncContender:
    """HermesCache, redis backend (zlib-compressed pickle, a Redis lock on every miss)."""
    from hermes import Hermes  # type: ignore[import-untyped]
    from hermes.backend.redis import Backend  # type: ignore[import-untyped]

    if target.transport == "unix":
        cache = Hermes(Backend, ttl=TTL_SECONDS, unix_socket_path=target.socket_path)
    else:
        cache = Hermes(Backend, ttl=TTL_SECONDS, host=target.host, port=target.port)

    @cache  # type: ignore[untyped-decorator]
    def fetch(table: str, limit: int, page: int = 0) -> Rows:
        return body(table, limit, page)

    return SyncContender("HermesCache", lambda: fetch(TABLE, LIMIT),
                         lambda i: fetch(TABLE, LIMIT, i), cache.backend.client.close,
                         family="HermesCache")


def _cashews(name: str, target: Target, body: Body, *, lock: bool) -> AsyncContender:
    from cashews import Cache

    cache = Cache()
    # setup() keys the backend by URL scheme; a unix socket is passed as the redis address.
    cache.setup("redis://127.0.0.1/0", address=target.url, suppress=False)

    @cache(ttl=TTL_SECONDS, lock=lock, prefix="withlock" if lock else "")
    async def fetch(table: str, limit: int, page: int = 0) -> Rows:
        return await body.run_async(table, limit, page)

    async def close() -> None:
        await cache.close()

    return AsyncContender(name, lambda: fetch(TABLE, LIMIT), lambda i: fetch(TABLE, LIMIT, i),
                          close, family="cashews")


def cashews(target: Target, body: Body) -> AsyncContender:
    """cashews, redis backend, ``@cache(ttl=...)`` (in-process thunder protection only)."""
    return _cashews("cashews", target, body, lock=False)


def cashews_lock(target: Target, body: Body) -> AsyncContender:
    """cashews with ``lock=True`` (a Redis lock around every call)."""
    return _cashews("cashews +lock", target, body, lock=True)


Builder = Callable[[Target, Body], Contender]

LATENCY: tuple[Builder, ...] = (
    raw, raw_mget, memo, memo_no_zlib, memo_no_flight, dogpile, dogpile_lock, hermes,
    raw_async, memo_async, cashews, cashews_lock,
)
"""Every contender of the hit/miss figures, baselines first."""

STAMPEDE: tuple[Builder, ...] = (
    raw, memo, memo_async, dogpile, dogpile_lock, hermes, cashews, cashews_lock,
)
"""Contenders of the stampede figure."""

STORAGE: tuple[Builder, ...] = (raw, memo, dogpile, hermes, cashews)
"""Contenders of the bytes-per-entry figure."""

BUILDERS: dict[str, Builder] = {b.__name__: b for b in (*LATENCY,)}
