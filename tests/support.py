"""Helpers shared by the test modules (server statistics, bounded polling, event loops, the
sync and async drivers of the cache API)."""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import redis

from memo_redis import RedisCaching
from memo_redis.protocol import operations
from memo_redis.protocol.entries import Claim, Lookup

T = TypeVar("T")


def command_calls(client: redis.Redis) -> dict[str, int]:
    """Calls per command since the last CONFIG RESETSTAT, e.g. {"mget": 1}."""
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


def reset_stats(client: redis.Redis) -> None:
    """Zero the server's command statistics."""
    command: Callable[..., Any] = client.execute_command
    command("CONFIG", "RESETSTAT")


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``condition`` (bounded, yielding the GIL); True as soon as it holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.001)
    return condition()


def run(cache: RedisCaching, coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` in a fresh event loop, closing the cache's async client for that loop."""

    async def main() -> T:
        try:
            return await coro
        finally:
            await cache.aclose()

    return asyncio.run(main())


class Protocol:
    """The engine's entry flows (:mod:`memo_redis.protocol.operations`) run on the sync driver,
    for tests that drive the protocol step by step: ``protocol(cache).arm(key)``."""

    def __init__(self, cache: RedisCaching) -> None:
        self.engine = cache.engine

    def lookup(self, key: str, fingerprint: bytes | None = None) -> Lookup:
        return self.engine.sync.run(operations.lookup(self.engine, key, fingerprint))

    def arm(self, key: str, fingerprint: bytes | None = None) -> Lookup:
        return self.engine.sync.run(operations.arm(self.engine, key, fingerprint))

    def claim(self, key: str, seen: Lookup, token: bytes,
              fingerprint: bytes | None = None) -> Claim:
        return self.engine.sync.run(operations.claim(self.engine, key, seen, token, fingerprint))

    def store(self, key: str, value: Any, ttl_ms: int | None, **options: Any) -> bool:
        return self.engine.sync.run(operations.store(self.engine, key, value, ttl_ms, **options))

    def lock_held(self, key: str, seen: Lookup) -> bool:
        return self.engine.sync.run(operations.lock_held(self.engine, key, seen))

    def release(self, key: str, seen: Lookup, token: bytes) -> None:
        self.engine.sync.run(operations.release(self.engine, key, seen, token))


def protocol(cache: RedisCaching) -> Protocol:
    """:class:`Protocol` of ``cache``."""
    return Protocol(cache)


class Driver:
    """Runs a test's cache calls through the sync API or through its async twins.

    ``driver.call(cache, "get", "k")`` is ``cache.get("k")`` for the "sync" driver, and
    ``await cache.aget("k")`` for the "async" one. Decorated functions are written once as a
    plain body and turned into a sync or ``async def`` function by :meth:`define`; they are
    called with :meth:`call_fn` and their handles (``invalidate``, ``refresh``, ``many``,
    ``cache_clear``) with :meth:`handle`.

    The async driver runs everything on one event loop for the whole test, as an application
    does, so the caches keep their ``redis.asyncio`` client from one call to the next; :meth:`close`
    (the fixture's teardown) closes those clients, then the loop.
    """

    def __init__(self, name: str) -> None:
        if name not in ("sync", "async"):
            raise ValueError(f"driver name must be 'sync' or 'async', got {name!r}")
        self.name = name
        self.is_async = name == "async"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._caches: list[RedisCaching] = []

    def __repr__(self) -> str:
        return f"Driver({self.name!r})"

    # -- running ---------------------------------------------------------------------------------

    def track(self, *caches: RedisCaching) -> None:
        """Close the async clients of ``caches`` when the test ends (done by :meth:`call` and,
        for ``@cached`` functions, by :meth:`call_fn` and :meth:`handle`)."""
        for cache in caches:
            if not any(cache is seen for seen in self._caches):
                self._caches.append(cache)

    def run(self, awaitable: Awaitable[T]) -> T:
        """Run ``awaitable`` to completion on this driver's event loop."""
        if self._loop is None:
            self._loop = asyncio.new_event_loop()

        async def main() -> T:
            return await awaitable

        return self._loop.run_until_complete(main())

    def close(self) -> None:
        """Close the tracked caches' async clients on this driver's loop, then the loop."""
        loop, self._loop = self._loop, None
        if loop is None:
            return
        try:
            for cache in self._caches:
                loop.run_until_complete(cache.aclose())
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()

    # -- the key/value API -----------------------------------------------------------------------

    def call(self, cache: RedisCaching, method: str, *args: Any, **kwargs: Any) -> Any:
        """``cache.<method>(...)``, or ``await cache.a<method>(...)`` for the async driver."""
        if not self.is_async:
            return getattr(cache, method)(*args, **kwargs)
        self.track(cache)
        return self.run(getattr(cache, "a" + method)(*args, **kwargs))

    # -- decorated functions ---------------------------------------------------------------------

    def define(self, body: Callable[..., Any]) -> Callable[..., Any]:
        """``body`` itself for the sync driver; for the async one, an ``async def`` with the
        same name, qualname, module, doc and signature that yields to the loop once, then
        returns (or raises) what ``body`` does. Decorate the result:
        ``cached(cache=c)(driver.define(body))``."""
        if not self.is_async:
            return body

        @functools.wraps(body)
        async def body_async(*args: Any, **kwargs: Any) -> Any:
            await asyncio.sleep(0)
            return body(*args, **kwargs)

        return body_async

    def call_fn(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call a (decorated) function ``fn`` defined by :meth:`define`; await it if async."""
        result = fn(*args, **kwargs)
        return self._settle(fn, result)

    def handle(self, handle: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call a handle (``f.invalidate``, ``f.refresh``, ``f.many``, ``f.cache_clear``): on an
        async function it returns an awaitable, awaited here; on a sync one, the result."""
        result = handle(*args, **kwargs)
        return self._settle(getattr(handle, "__self__", handle), result)

    def _settle(self, fn: object, result: Any) -> Any:
        if not self.is_async:
            assert not inspect.isawaitable(result), f"{fn!r} returned an awaitable: {result!r}"
            return result
        assert inspect.isawaitable(result), f"{fn!r} returned {result!r}, not an awaitable"
        cache = _cache_of(fn)
        if cache is not None:
            self.track(cache)
        return self.run(result)


def _cache_of(fn: object) -> RedisCaching | None:
    """The cache a ``@cached`` function (or a bound method of one) uses now, if any."""
    core = getattr(fn, "_memo_core", None)
    return core().resolve() if callable(core) else None
