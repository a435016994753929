"""A process's own invalidation reaches its own L1 at once: read-your-writes without waiting
for the server's tracking notification."""

from __future__ import annotations

import asyncio

import pytest
from support import wait_until

from memo_redis import RedisCaching, cached

TRIES = 200


@pytest.mark.parametrize("how", ["pattern", "other glob", "handle", "key"])
def test_own_invalidation_is_seen_by_the_next_call(cache: RedisCaching, how: str) -> None:
    """After this process invalidates, its next call never returns the old value from the L1
    (200 tries, each right after the invalidation returned)."""
    db = {"v": 0}

    @cached(cache=cache, prefix="sql:users", local=True)
    def user(n: int) -> int:
        return db["v"]

    local = cache.local_cache()
    assert local is not None and local.wait_ready(20)
    key = user.cache_key(1)
    stale = 0
    for attempt in range(1, TRIES + 1):
        assert wait_until(lambda: user(1) is not None and key in local, 20)  # held locally
        db["v"] = attempt
        if how == "pattern":
            cache.invalidate("sql:users:*")
        elif how == "other glob":
            cache.invalidate("sql:us*")
        elif how == "handle":
            user.invalidate(1)
        else:
            cache.invalidate_key(user.cache_key(1))
        stale += user(1) != attempt
    assert stale == 0


def test_own_async_invalidation_is_seen_by_the_next_call(cache: RedisCaching) -> None:
    """The same through ``ainvalidate`` and an async function: no stale value in 200 tries."""
    db = {"v": 0}

    @cached(cache=cache, prefix="sql:users", local=True)
    async def user(n: int) -> int:
        return db["v"]

    local = cache.local_cache()
    assert local is not None and local.wait_ready(20)
    key = user.cache_key(1)

    async def tries() -> int:
        stale = 0
        for attempt in range(1, TRIES + 1):
            for _ in range(200):
                await user(1)
                if key in local:
                    break
                await asyncio.sleep(0.01)
            assert key in local
            db["v"] = attempt
            await cache.ainvalidate("sql:users:*")
            stale += await user(1) != attempt
        return stale

    assert asyncio.run(tries()) == 0
