"""The seed's SQL API (memo_redis.sql), against the session's private server."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import redis

import memo_redis
from memo_redis import RedisCaching, build_cache_key
from memo_redis.embedded import EmbeddedServer
from memo_redis.exceptions import CacheUnavailable
from memo_redis.keys import seed_digest
from memo_redis.sql import (
    SQLCacheOrchestrator,
    get_data_from_table,
    sql_cache_key,
    table_pattern,
    update_data_in_table,
)
from memo_redis.testing import ServerFactory

ROWS = [{"id": 1, "name": "Felix"}, {"id": 2, "name": "Luna"}]


class Counter:
    """A fetcher/writer that counts its calls and returns (or raises) what it is told."""

    def __init__(self, result: Any = None, error: BaseException | None = None) -> None:
        self.calls = 0
        self.result = result
        self.error = error

    def __call__(self) -> Any:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return self.result


def read(cache: RedisCaching, table: str, fetcher: Callable[[], Any], **kwargs: Any) -> Any:
    return get_data_from_table(cache, table, ["id", "name"], fetcher=fetcher, **kwargs)


# --- keys --------------------------------------------------------------------------------------


def test_beautified_key_is_the_seed_key(cache: RedisCaching, raw: redis.Redis) -> None:
    """beautify=True stores at build_cache_key(table, column, where), byte for byte."""
    key = sql_cache_key("users", ["id", "name"], ["active=1"])
    assert key == build_cache_key("users", ["id", "name"], ["active=1"])
    assert key == "sql:users:data:cb668aec"
    get_data_from_table(cache, "users", ["name", "id"], ["active=1"], fetcher=Counter(ROWS))
    assert raw.exists(key) == 1


def test_entry_written_by_the_seed_is_a_hit(cache: RedisCaching, raw: redis.Redis) -> None:
    """A plain JSON value at the seed key is served without calling the fetcher."""
    raw.set(sql_cache_key("users", ["id", "name"]), json.dumps(ROWS))
    fetcher = Counter(["not", "this"])
    assert read(cache, "users", fetcher) == ROWS
    assert fetcher.calls == 0


def test_beautified_and_raw_results_never_share_a_key(cache: RedisCaching) -> None:
    """beautify=False uses sql:<table>:raw:<16 hex>; each flavour keeps its own rows."""
    pretty_key = sql_cache_key("users", ["id", "name"])
    raw_key = sql_cache_key("users", ["id", "name"], beautify=False)
    assert raw_key != pretty_key
    assert raw_key.startswith("sql:users:raw:") and len(raw_key.rsplit(":", 1)[1]) == 16
    pretty, plain = Counter(ROWS), Counter([(1, "Felix"), (2, "Luna")])
    for _ in range(2):
        assert read(cache, "users", pretty) == ROWS
        assert read(cache, "users", plain, beautify=False) == [(1, "Felix"), (2, "Luna")]
    assert (pretty.calls, plain.calls) == (1, 1)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ((["id"], ["id=1"]), ("id", "id=1")),
        ((["id", "name"], []), (("name", "id"), "")),
        ((["id"], ["a=1", "b=2"]), (["id"], ("b=2", "a=1"))),
    ],
    ids=["str-is-one-item", "tuple-order-and-empty-str", "where-order"],
)
def test_request_normalization(a: tuple[Any, Any], b: tuple[Any, Any]) -> None:
    """A str is one item ("" none), lists and tuples are alike, and order never matters."""
    assert sql_cache_key("users", *a) == sql_cache_key("users", *b)


def test_table_pattern_escapes_glob_characters() -> None:
    """table_pattern glob-escapes the name, so it matches only that table's keys."""
    assert table_pattern("users") == "sql:users:*"
    assert table_pattern("logs_*") == "sql:logs_\\*:*"
    assert table_pattern("a[1]?") == "sql:a\\[1\\]\\?:*"


@pytest.mark.parametrize(
    ("kwargs", "error", "needle"),
    [
        ({"fetcher": None}, TypeError, "fetcher"),
        ({"fetcher": "rows"}, TypeError, "fetcher"),
        ({"column": 3}, TypeError, "column"),
        ({"column": ["id", 3]}, TypeError, "column"),
        ({"where": {"id": 1}}, TypeError, "where"),
        ({"table": ""}, TypeError, "table"),
        ({"beautify": "yes"}, TypeError, "beautify"),
        ({"ttl_seconds": 0}, ValueError, "ttl_seconds"),
        ({"ttl_seconds": "60"}, TypeError, "ttl_seconds"),
    ],
    ids=["no-fetcher", "fetcher-not-callable", "column-int", "column-item", "where-dict",
         "empty-table", "beautify-str", "ttl-zero", "ttl-str"],
)
def test_bad_read_arguments_name_the_parameter(
    cache: RedisCaching, kwargs: dict[str, Any], error: type[Exception], needle: str
) -> None:
    """Bad arguments raise before any Redis work, naming the parameter."""
    call: dict[str, Any] = {"table": "users", "column": ["id"], "fetcher": Counter(ROWS)}
    call.update(kwargs)
    with pytest.raises(error, match=needle):
        get_data_from_table(cache, **call)


# --- read-through ------------------------------------------------------------------------------


def test_read_through_calls_the_fetcher_once(cache: RedisCaching) -> None:
    """Repeated reads of one request are served from Redis after the first."""
    fetcher = Counter(ROWS)
    assert [read(cache, "users", fetcher) for _ in range(3)] == [ROWS] * 3
    assert fetcher.calls == 1


def test_cache_methods_delegate_to_the_sql_module(cache: RedisCaching) -> None:
    """cache.get_data_from_table / cache.update_data_in_table are the same read and write."""
    fetcher = Counter(ROWS)
    assert cache.get_data_from_table("users", ["id", "name"], fetcher=fetcher) == ROWS
    assert read(cache, "users", fetcher) == ROWS
    assert fetcher.calls == 1
    assert cache.update_data_in_table("users", ["x"], ["name"], ["id=1"], writer=lambda: 7) == 7
    assert read(cache, "users", fetcher) == ROWS
    assert fetcher.calls == 2


def test_fetcher_exceptions_are_not_cached(cache: RedisCaching) -> None:
    """A failing fetcher propagates its error and the next read calls the fetcher again."""
    failing = Counter(error=LookupError("db down"))
    with pytest.raises(LookupError, match="db down"):
        read(cache, "users", failing)
    working = Counter(ROWS)
    assert read(cache, "users", working) == ROWS
    assert working.calls == 1


def test_default_ttl_is_the_data_ttl(cache: RedisCaching, raw: redis.Redis) -> None:
    """Without ttl_seconds an entry lives for the cache's data TTL (300 s)."""
    read(cache, "users", Counter(ROWS))
    assert 295_000 < raw.pttl(sql_cache_key("users", ["id", "name"])) <= 300_000


@pytest.mark.parametrize(("ttl", "low", "high"), [(42, 41_000, 42_000), (1.5, 1_000, 1_500)],
                         ids=["int", "float"])
def test_ttl_seconds_sets_the_server_ttl(
    cache: RedisCaching, raw: redis.Redis, ttl: float, low: int, high: int
) -> None:
    """ttl_seconds becomes the key's TTL on the server."""
    read(cache, "users", Counter(ROWS), ttl_seconds=ttl)
    assert low < raw.pttl(sql_cache_key("users", ["id", "name"])) <= high


def test_ttl_seconds_none_stores_without_expiry(cache: RedisCaching, raw: redis.Redis) -> None:
    """ttl_seconds=None stores the rows with no expiry (PTTL -1)."""
    read(cache, "users", Counter(ROWS), ttl_seconds=None)
    assert raw.pttl(sql_cache_key("users", ["id", "name"])) == -1


def test_disabled_reads_always_fetch_and_store_nothing(
    cache: RedisCaching, raw: redis.Redis
) -> None:
    """Inside memo_redis.disabled() every read calls the fetcher and nothing is written."""
    fetcher = Counter(ROWS)
    with memo_redis.disabled():
        read(cache, "users", fetcher)
        read(cache, "users", fetcher)
    assert fetcher.calls == 2
    assert raw.exists(sql_cache_key("users", ["id", "name"])) == 0


def test_read_overlapping_a_write_is_not_stored(cache: RedisCaching) -> None:
    """Rows fetched while the table was written are returned but never cached (race-free)."""

    def fetch_during_write() -> list[dict[str, Any]]:
        update_data_in_table(cache, "users", ["Tom"], ["name"], ["id=1"], writer=lambda: None)
        return ROWS

    assert read(cache, "users", fetch_during_write) == ROWS
    fresh = Counter([{"id": 1, "name": "Tom"}])
    assert read(cache, "users", fresh) == [{"id": 1, "name": "Tom"}]
    assert fresh.calls == 1


# --- write-through -----------------------------------------------------------------------------


def test_update_invalidates_the_table_and_returns_the_writer_result(
    cache: RedisCaching, raw: redis.Redis
) -> None:
    """update_data_in_table runs the writer, drops sql:<table>:* and leaves other tables."""
    users, feeders = Counter(ROWS), Counter([{"id": 9}])
    read(cache, "users", users)
    read(cache, "feeders", feeders)
    result = update_data_in_table(cache, "users", ["Tom"], ["name"], ["id=1"],
                                  writer=lambda: {"updated": 1})
    assert result == {"updated": 1}
    assert raw.exists(sql_cache_key("users", ["id", "name"])) == 0
    read(cache, "users", users)
    read(cache, "feeders", feeders)
    assert (users.calls, feeders.calls) == (2, 1)


def test_update_invalidates_even_when_the_writer_raises(cache: RedisCaching) -> None:
    """A failing writer still invalidates the table, and its exception propagates unchanged."""
    fetcher = Counter(ROWS)
    read(cache, "users", fetcher)
    error = RuntimeError("constraint violated")
    with pytest.raises(RuntimeError) as raised:
        update_data_in_table(cache, "users", ["x"], ["name"], writer=Counter(error=error))
    assert raised.value is error
    read(cache, "users", fetcher)
    assert fetcher.calls == 2


def test_update_without_writer_raises_naming_writer(cache: RedisCaching) -> None:
    """A missing writer is a TypeError naming it, and nothing is invalidated."""
    fetcher = Counter(ROWS)
    read(cache, "users", fetcher)
    with pytest.raises(TypeError, match="writer"):
        update_data_in_table(cache, "users", ["x"], ["name"])
    read(cache, "users", fetcher)
    assert fetcher.calls == 1


@pytest.mark.parametrize("table", ["logs_*", "log?", "lo[gs]"], ids=["star", "question", "class"])
def test_table_names_with_glob_characters_invalidate_only_themselves(
    cache: RedisCaching, table: str
) -> None:
    """Writing a table named like a glob never invalidates the tables that glob would match."""
    other, own = Counter(["other"]), Counter(["own"])
    read(cache, "logs", other)
    read(cache, table, own)
    update_data_in_table(cache, table, [], ["x"], writer=lambda: None)
    read(cache, "logs", other)
    read(cache, table, own)
    assert (other.calls, own.calls) == (1, 2)


# --- fail-open ---------------------------------------------------------------------------------


def test_reads_and_writes_fail_open_when_redis_is_down(server_factory: ServerFactory) -> None:
    """With the server killed, reads return the fetcher's rows and writes the writer's result."""
    server = server_factory()
    down = RedisCaching(server.args())
    try:
        fetcher = Counter(ROWS)
        assert read(down, "users", fetcher) == ROWS
        server.kill()
        assert read(down, "users", fetcher) == ROWS
        assert read(down, "users", fetcher) == ROWS
        assert fetcher.calls == 3
        writer = Counter("written")
        assert update_data_in_table(down, "users", ["x"], ["name"], writer=writer) == "written"
        assert writer.calls == 1
    finally:
        down.close()


def test_strict_cache_raises_cache_unavailable(server_factory: ServerFactory) -> None:
    """A strict cache surfaces the outage as CacheUnavailable instead of failing open."""
    server = server_factory()
    strict = RedisCaching(server.args(), strict=True)
    try:
        server.kill()
        with pytest.raises(CacheUnavailable):
            read(strict, "users", Counter(ROWS))
    finally:
        strict.close()


# --- orchestrator ------------------------------------------------------------------------------


class FakeSQL:
    """A stand-in for the seed's SQL layer (a plain object; Redis stays real)."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.size = 50

    def get_data_from_table(self, table: str, column: Any, where: Any, beautify: bool) -> Any:
        self.calls.append("data")
        return ROWS if beautify else [(1, "Felix"), (2, "Luna")]

    def get_table_size(self, table: str, column: Any, where: Any) -> int:
        self.calls.append("count")
        return self.size

    def get_database_version(self) -> tuple[int, int, int]:
        self.calls.append("version")
        return (10, 11, 6)

    def update_data_in_table(self, table: str, data: Any, column: Any, where: Any) -> int:
        self.calls.append("update")
        return 0

    def insert_data_into_table(self, table: str, data: Any, column: Any) -> int:
        self.calls.append("insert")
        self.size += 1
        return 0

    def remove_data_from_table(self, table: str, where: Any) -> int:
        self.calls.append("remove")
        self.size -= 1
        return 0


def test_orchestrator_row_count_key_and_ttl(cache: RedisCaching, raw: redis.Redis) -> None:
    """get_table_size is cached at sql:<table>:count: for the count TTL (60 s)."""
    sql = FakeSQL()
    orchestrator = SQLCacheOrchestrator(sql, cache)
    assert orchestrator.get_table_size("users") == orchestrator.get_table_size("users") == 50
    assert sql.calls == ["count"]
    assert 55_000 < raw.pttl("sql:users:count:") <= 60_000


def test_orchestrator_filtered_count_has_its_own_key(cache: RedisCaching, raw: redis.Redis) -> None:
    """A count with conditions is cached apart from the whole-table count."""
    sql = FakeSQL()
    orchestrator = SQLCacheOrchestrator(sql, cache)
    orchestrator.get_table_size("users")
    orchestrator.get_table_size("users", "id", ["active=1"])
    assert sql.calls == ["count", "count"]
    filtered = "sql:users:count:" + seed_digest("users", ["id"], ["active=1"])
    assert raw.exists("sql:users:count:", filtered) == 2


def test_orchestrator_version_key_and_ttl(cache: RedisCaching, raw: redis.Redis) -> None:
    """get_database_version is cached at sql:schema:version: for the schema TTL (3600 s)."""
    sql = FakeSQL()
    orchestrator = SQLCacheOrchestrator(sql, cache)
    assert orchestrator.get_database_version() == orchestrator.get_database_version()
    assert orchestrator.get_database_version() == (10, 11, 6)
    assert sql.calls == ["version"]
    assert 3_595_000 < raw.pttl("sql:schema:version:") <= 3_600_000


def test_orchestrator_ttls_follow_the_cache_defaults(
    server: EmbeddedServer, raw: redis.Redis
) -> None:
    """Count and version TTLs come from the cache's default_ttls."""
    cache = RedisCaching(server.args(), default_ttls={"count": 5, "schema": 7})
    try:
        orchestrator = SQLCacheOrchestrator(FakeSQL(), cache)
        orchestrator.get_table_size("users")
        orchestrator.get_database_version()
        assert 0 < raw.pttl("sql:users:count:") <= 5_000
        assert 5_000 < raw.pttl("sql:schema:version:") <= 7_000
    finally:
        cache.close()


def test_orchestrator_reads_use_the_seed_keys(cache: RedisCaching, raw: redis.Redis) -> None:
    """Rows go to the same keys as get_data_from_table, per beautify flavour."""
    sql = FakeSQL()
    orchestrator = SQLCacheOrchestrator(sql, cache)
    for _ in range(2):
        assert orchestrator.get_data_from_table("users", ["id", "name"]) == ROWS
        assert orchestrator.get_data_from_table("users", ["id", "name"], beautify=False) == [
            (1, "Felix"), (2, "Luna")]
    assert sql.calls == ["data", "data"]
    assert raw.exists(sql_cache_key("users", ["id", "name"])) == 1
    assert raw.exists(sql_cache_key("users", ["id", "name"], beautify=False)) == 1


@pytest.mark.parametrize(
    ("write", "expected_size"),
    [
        (lambda o: o.update_data_in_table("users", ["Tom"], ["name"], ["id=1"]), 50),
        (lambda o: o.insert_data_into_table("users", ["Tom"], ["name"]), 51),
        (lambda o: o.remove_data_from_table("users", ["id=1"]), 49),
    ],
    ids=["update", "insert", "remove"],
)
def test_orchestrator_writes_invalidate_the_table(
    cache: RedisCaching, write: Callable[[SQLCacheOrchestrator], Any], expected_size: int
) -> None:
    """Every write wrapper calls the SQL object, then drops the table's rows and counts."""
    sql = FakeSQL()
    orchestrator = SQLCacheOrchestrator(sql, cache)
    orchestrator.get_table_size("users")
    orchestrator.get_data_from_table("users", ["id"])
    assert write(orchestrator) == 0
    assert orchestrator.get_table_size("users") == expected_size
    orchestrator.get_data_from_table("users", ["id"])
    assert sql.calls.count("count") == 2 and sql.calls.count("data") == 2


def test_invalidate_table_cache_counts_deleted_keys(cache: RedisCaching, raw: redis.Redis) -> None:
    """invalidate_table_cache drops every entry of one table and returns how many it deleted."""
    orchestrator = SQLCacheOrchestrator(FakeSQL(), cache)
    orchestrator.get_table_size("users")
    orchestrator.get_data_from_table("users", ["id"])
    orchestrator.get_table_size("feeders")
    assert orchestrator.invalidate_table_cache("users") == 2
    assert raw.exists("sql:users:count:", "sql:feeders:count:") == 1


def test_orchestrator_rejects_a_non_cache() -> None:
    """The cache argument must be a RedisCaching (or None for the default cache)."""
    with pytest.raises(TypeError, match="RedisCaching"):
        SQLCacheOrchestrator(FakeSQL(), "redis://localhost")  # type: ignore[arg-type]
