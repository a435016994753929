"""Row-level invalidation (a prefix deeper than a table) goes through the row's index at any
keyspace size: no SCAN of the keyspace, no walk of the table's index, and exactly the row's
entries are removed. A table's invalidation drains its rows' indexes with it."""

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
    assert cache.invalidate("sql:cats:99:*") == 0  # (loads the script)
    reset_stats(raw)
    deleted = cache.invalidate("sql:cats:7:*")
    calls = command_calls(raw)
    assert deleted == 2
    assert "scan" not in calls and "sscan" not in calls  # the row's index, drained whole
    assert calls.get("evalsha") == 1 and sum(  # one round trip: bump, drain, unlist
        n for name, n in calls.items() if "|" not in name and name not in (
            "evalsha", "set", "spop", "unlink", "srem")) == 0, calls
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


def test_a_category_of_a_row_filters_only_that_rows_index(server: EmbeddedServer,
                                                          raw: redis.Redis) -> None:
    """A prefix deeper than a row reads the row's index with a server-side MATCH: the other
    categories of the row and the other rows stay."""
    cache = RedisCaching(server.args())
    for row in range(50):
        for category in ("a", "b"):
            cache.set(f"sql:t:{row}:{category}:1", (row, category), ttl=60)
    reset_stats(raw)
    assert cache.invalidate("sql:t:7:a:*") == 1
    calls = command_calls(raw)
    assert "scan" not in calls and calls.get("sscan", 0) == 1  # one page: the row's 2 entries
    assert cache.get("sql:t:7:a:1") is None
    assert cache.get("sql:t:7:b:1") == (7, "b") and cache.get("sql:t:8:a:1") == (8, "a")
    cache.close()


def test_a_row_of_a_table_with_nothing_cached_costs_no_scan(server: EmbeddedServer,
                                                             raw: redis.Redis) -> None:
    """Invalidating a row of a table memo_redis never wrote (no index) is a few commands, not a
    SCAN of a large keyspace (a write invalidating a report nobody read yet)."""
    cache = RedisCaching(server.args())
    raw.mset({f"unrelated:{i}": i for i in range(5000)})
    assert cache.invalidate("sql:report:8:*") == 0  # (loads the script)
    reset_stats(raw)
    assert cache.invalidate("sql:report:9:*") == 0
    calls = command_calls(raw)
    assert "scan" not in calls and "sscan" not in calls
    assert calls.get("evalsha", 0) == 1 and "dbsize" not in calls, calls  # one script
    cache.close()


def test_a_table_invalidation_drains_its_rows_indexes(server: EmbeddedServer,
                                                      raw: redis.Redis) -> None:
    """The table's index lists the index of each row: invalidating the table removes every
    entry of every row and leaves no index behind; other tables are untouched."""
    cache = RedisCaching(server.args(), scan_threshold=0)  # the index path at any size
    for row in range(30):
        cache.set(f"sql:t:{row}:data:1", row, ttl=60)
        cache.set(f"sql:t:{row}:data:2", row, ttl=60)
    cache.set("sql:t:plain", "p", ttl=60)  # a 2-segment scope: in the table's index itself
    cache.set("sql:other:1:data:1", "o", ttl=60)
    assert raw.scard("__memo__:idx:sql:t") == 31  # 30 row indexes and the plain entry
    assert raw.scard("__memo__:idx:sql:t:7") == 2
    reset_stats(raw)
    assert cache.invalidate("sql:t:*") == 61
    assert "scan" not in command_calls(raw)
    assert [k for k in raw.scan_iter("sql:t:*", count=1000)] == []
    assert [k for k in raw.scan_iter("__memo__:idx:sql:t*", count=1000)] == []
    assert cache.get("sql:other:1:data:1") == "o"
    cache.close()


def test_a_drained_row_is_no_longer_listed_by_its_table(server: EmbeddedServer,
                                                        raw: redis.Redis) -> None:
    """After a row's invalidation its table's index no longer names the row's index; the next
    store lists it again."""
    cache = RedisCaching(server.args())
    cache.set("sql:t:1:data:1", 1, ttl=60)
    cache.set("sql:t:2:data:1", 2, ttl=60)
    assert cache.invalidate("sql:t:1:*") == 1
    assert raw.smembers("__memo__:idx:sql:t") == {b"__memo__:idx:sql:t:2"}
    cache.set("sql:t:1:data:1", 1, ttl=60)
    assert raw.smembers("__memo__:idx:sql:t") == {b"__memo__:idx:sql:t:1",
                                                   b"__memo__:idx:sql:t:2"}
    cache.close()
