"""Row-level invalidation (a prefix deeper than a table) goes through the table's index at any
keyspace size: no SCAN of the keyspace, and exactly the row's entries are removed."""

from __future__ import annotations

import redis
from support import command_calls, reset_stats

from memo_redis import RedisCaching, cached, invalidates
from memo_redis.embedded import EmbeddedServer


def test_row_invalidation_reads_the_index_not_the_keyspace(server: EmbeddedServer,
                                                            raw: redis.Redis) -> None:
    """With 2,000 unrelated keys (far below scan_threshold), invalidating one row's prefix
    issues no SCAN, deletes only that row's entries and leaves its neighbours readable."""
    cache = RedisCaching(server.args())
    raw.mset({f"unrelated:{i}": i for i in range(2000)})
    reads: list[int] = []

    @cached(cache=cache, prefix="sql:cats:{cat_id}", ttl=60)
    def cat(cat_id: int, detail: str = "name") -> str:
        reads.append(cat_id)
        return f"cat {cat_id} {detail}"

    @invalidates("sql:cats:{cat_id}:*", cache=cache)
    def rename(cat_id: int) -> None:
        pass

    for cat_id in range(20):
        cat(cat_id)
        cat(cat_id, "age")
    reset_stats(raw)
    deleted = cache.invalidate("sql:cats:7:*")
    calls = command_calls(raw)
    assert deleted == 2
    assert "scan" not in calls and calls.get("sscan", 0) >= 1
    reads.clear()
    assert cat(7) == "cat 7 name" and cat(8) == "cat 8 name"
    assert reads == [7]  # the neighbour was still cached
    rename(8)
    assert cat(8, "age") == "cat 8 age" and reads == [7, 8]
    assert raw.dbsize() > 2000
    cache.close()


def test_row_prefix_with_glob_characters_in_its_value(server: EmbeddedServer,
                                                      raw: redis.Redis) -> None:
    """A row id holding glob characters matches only itself through the index's MATCH."""
    cache = RedisCaching(server.args())
    for row in ("a*", "ab", "a?", "a[b]"):
        cache.set(f"sql:things:{row}:data:1", row, ttl=60)
    escaped = "sql:things:a\\*:*"
    assert cache.invalidate(escaped) == 1
    assert sorted(k.decode() for k in raw.keys("sql:things:*")) == [
        "sql:things:a?:data:1", "sql:things:a[b]:data:1", "sql:things:ab:data:1"]
    cache.close()
