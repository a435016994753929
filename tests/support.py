"""Helpers shared by the test modules (server statistics, bounded polling, event loops)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import redis

from memo_redis import RedisCaching

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
