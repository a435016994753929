"""Helpers shared by the test modules (server statistics, bounded polling, event loops)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
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
