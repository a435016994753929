"""A process's own invalidation reaches its own L1 at once: read-your-writes without waiting
for the server's tracking notification; a row's invalidation drops only that row locally."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from support import wait_until

from memo_redis import RedisCaching, cached
from memo_redis.servers import EmbeddedServer

TRIES = 200


@pytest.fixture
def writer(server: EmbeddedServer) -> Iterator[RedisCaching]:
    """Another RedisCaching on the session server, with connections of its own."""
    with RedisCaching(server.args()) as other:
        yield other


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


def test_a_rows_invalidation_keeps_the_other_rows_local(cache: RedisCaching,
                                                        writer: RedisCaching) -> None:
    """Replacing one row's generation (here, or in another process) drops that row's entries
    from the L1 and keeps the other rows' (a write must not empty the whole L1)."""
    db = {n: 0 for n in range(10)}

    @cached(cache=cache, prefix="sql:cats:{n}", local=True)
    def cat(n: int) -> int:
        return db[n]

    local = cache.local_cache()
    assert local is not None and local.wait_ready(20)
    for n in range(10):
        assert wait_until(lambda n=n: cat(n) is not None and cat.cache_key(n) in local, 20)
    db[3] = 1
    cache.invalidate("sql:cats:3:*")
    assert cat.cache_key(3) not in local and cat(3) == 1
    db[4] = 1
    before = local.epoch()
    writer.invalidate("sql:cats:4:*")  # another client: through the tracking notification
    assert wait_until(lambda: local.epoch() != before and cat.cache_key(4) not in local, 20)
    assert cat(4) == 1
    assert all(cat.cache_key(n) in local for n in (0, 1, 2, 5, 6, 7, 8, 9))


def test_a_fill_is_refused_only_by_an_invalidation_of_its_own_key(cache: RedisCaching) -> None:
    """A value read before an invalidation of another key (or of another row's scope) is still
    kept locally; one read before an invalidation of its own key, of its row, or of everything
    is not."""
    local = cache.local_cache()
    assert local is not None and local.wait_ready(20)
    cases = [
        ("other key", lambda: local.forget("key", "sql:cats:2:data:x"), True),
        ("other row", lambda: local.forget("pattern", "sql:cats:2:*"), True),
        ("own key", lambda: local.forget("key", "sql:cats:1:data:x"), False),
        ("own row", lambda: local.forget("pattern", "sql:cats:1:*"), False),
        ("own table", lambda: local.forget("pattern", "sql:cats:*"), False),
        ("everything", lambda: local.forget("pattern", "*"), False),
        ("another glob", lambda: local.forget("pattern", "sql:c?ts:9:*"), False),
    ]
    for name, invalidate, kept in cases:
        local.clear()
        epoch = local.epoch()  # a read starts
        invalidate()
        local.put("sql:cats:1:data:x", name, 8, 60_000, epoch)  # ... and fills after it
        assert ("sql:cats:1:data:x" in local) is kept, name


def test_a_fill_older_than_the_invalidations_kept_is_refused(cache: RedisCaching) -> None:
    """When more invalidations arrived during a read than the L1 remembers, its fill is refused
    (it cannot tell whether one of the forgotten ones touched the key)."""
    local = cache.local_cache()
    assert local is not None and local.wait_ready(20)
    local.clear()
    epoch = local.epoch()
    for n in range(2000):
        local.forget("key", f"sql:other:{n}:data:x")
    local.put("sql:cats:1:data:x", "v", 8, 60_000, epoch)
    assert "sql:cats:1:data:x" not in local
    epoch = local.epoch()
    local.forget("key", "sql:other:1:data:x")
    local.put("sql:cats:1:data:x", "v", 8, 60_000, epoch)
    assert "sql:cats:1:data:x" in local


@pytest.mark.parametrize(("pattern", "dropped"), [
    ("sql:t:*", {"sql:t:x", "sql:t:1:a:1", "sql:t:1:b:1", "sql:t:2:a:1", "sql:t:data:9"}),
    ("sql:*", {"sql:t:x", "sql:t:1:a:1", "sql:t:1:b:1", "sql:t:2:a:1", "sql:t:data:9",
               "sql:u:1:a:1", "sql:x", "sql:t1:1:a:1"}),
    ("sql:t:1:*", {"sql:t:1:a:1", "sql:t:1:b:1"}),
    ("sql:t:1:a:*", {"sql:t:1:a:1"}),
    ("sql:t:data:*", {"sql:t:data:9"}),
    ("*", {"sql:t:x", "sql:t:1:a:1", "sql:t:1:b:1", "sql:t:2:a:1", "sql:t:data:9",
           "sql:u:1:a:1", "sql:x", "plain", "sql:t1:1:a:1"}),
])
def test_a_replaced_generation_drops_exactly_the_keys_under_its_scope(
        cache: RedisCaching, pattern: str, dropped: set[str]) -> None:
    """Tables, rows and deeper scopes: the L1 drops the keys under the scope and nothing else
    (``sql:t1`` is not under ``sql:t``)."""
    local = cache.local_cache()
    assert local is not None and local.wait_ready(20)
    local.clear()
    keys = {"sql:t:x", "sql:t:1:a:1", "sql:t:1:b:1", "sql:t:2:a:1", "sql:t:data:9",
            "sql:u:1:a:1", "sql:x", "plain", "sql:t1:1:a:1"}
    for key in keys:
        local.put(key, key, 8, 60_000, local.epoch())
    assert all(key in local for key in keys) and len(local) == len(keys)
    local.forget("pattern", pattern)
    assert {key for key in keys if key not in local} == dropped
    assert len(local) == len(keys) - len(dropped)
    local.clear()
    assert len(local) == 0
