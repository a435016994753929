"""``@cached(local_copy=True)``: L1 hits return a fresh object each time (safe to mutate),
kept coherent like the shared L1."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from support import wait_until

from memo_redis import RedisCaching, cached
from memo_redis.embedded import EmbeddedServer


@pytest.fixture
def writer(server: EmbeddedServer) -> Iterator[RedisCaching]:
    """Another RedisCaching on the session server, with connections of its own."""
    with RedisCaching(server.args()) as other:
        yield other


def _warm(fn: Any, *args: Any) -> None:
    assert wait_until(lambda: (fn(*args), fn.cache_info().l1_hits)[1] > 0, 20), "no L1 hit"


def test_mutating_a_local_copy_never_changes_the_next_hit(cache: RedisCaching) -> None:
    """A caller mutating what an L1 hit returned never changes what the next caller gets;
    without local_copy the L1 shares one object (the documented default)."""
    rows = [{"id": 1, "tags": ["a"]}]

    @cached(cache=cache, prefix="sql:copies", local_copy=True)
    def copied(n: int) -> list[dict[str, Any]]:
        return rows

    @cached(cache=cache, prefix="sql:shared", local=True)
    def shared(n: int) -> list[dict[str, Any]]:
        return rows

    _warm(copied, 1)
    _warm(shared, 1)
    first = copied(1)
    first[0]["tags"].append("mutated")
    first.append({"id": 2})
    assert copied(1) == [{"id": 1, "tags": ["a"]}]
    assert copied(1) is not copied(1)
    assert shared(1) is shared(1)
    assert copied.cache_info().l1_hits >= 3


def test_a_local_copy_is_invalidated_like_the_shared_l1(cache: RedisCaching,
                                                        writer: RedisCaching) -> None:
    """Another process's invalidation reaches local_copy entries within milliseconds."""
    db = {"v": 1}

    @cached(cache=cache, prefix="sql:copied_rows", local_copy=True)
    def value(n: int) -> int:
        return db["v"]

    _warm(value, 1)
    db["v"] = 2
    writer.invalidate("sql:copied_rows:*")
    assert wait_until(lambda: value(1) == 2, 10)


def test_local_copy_of_an_async_function(cache: RedisCaching) -> None:
    """Async functions get fresh copies from the L1 too."""

    @cached(cache=cache, prefix="sql:acopies", local_copy=True)
    async def rows(n: int) -> list[int]:
        return [n]

    async def main() -> tuple[list[int], list[int], int]:
        try:
            for _ in range(200):
                await rows(1)
                if rows.cache_info().l1_hits:
                    break
                await asyncio.sleep(0.01)
            first = await rows(1)
            first.append(99)
            return first, await rows(1), rows.cache_info().l1_hits
        finally:
            await cache.aclose()

    first, second, l1_hits = asyncio.run(main())
    assert first == [1, 99] and second == [1]
    assert l1_hits >= 2
