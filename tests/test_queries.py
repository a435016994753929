"""cache.query / cache.execute: SELECTs cached under every table they read, writes that
invalidate every table they touch, on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import protocol
from test_transactions import available, connect
from test_transactions import query as run_sql

from memo_redis import RedisCaching
from memo_redis.sql import table_pattern_of, transaction
from memo_redis.sql.queries import table_keys


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.db),
                        pytest.param("mariadb", marks=pytest.mark.db)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Any, Any, str]]:
    """(kind, app connection, side connection writing behind the cache's back, suffix)."""
    kind: str = request.param
    target = str(tmp_path / "q.db") if kind == "sqlite" else available(kind)
    suffix = uuid.uuid4().hex[:6]
    app = connect(kind, target, autocommit=True)
    side = connect(kind, target, autocommit=True)
    run_sql(side, kind, f"CREATE TABLE users_{suffix} (id INTEGER PRIMARY KEY, name VARCHAR(32))")
    run_sql(side, kind, f"CREATE TABLE orders_{suffix} (id INTEGER PRIMARY KEY, "
                        f"user_id INTEGER, total INTEGER)")
    run_sql(side, kind, f"INSERT INTO users_{suffix} VALUES (1, 'ann'), (2, 'bob')")
    run_sql(side, kind, f"INSERT INTO orders_{suffix} VALUES (10, 1, 5), (11, 2, 7)")
    try:
        yield kind, app, side, suffix
    finally:
        for table in (f"users_{suffix}", f"orders_{suffix}"):
            run_sql(side, kind, f"DROP TABLE {table}")
        app.close()
        side.close()


def ph(kind: str) -> str:
    return "?" if kind == "sqlite" else "%s"


def test_query_is_cached_until_execute_writes_its_table(cache: RedisCaching,
                                                        db: tuple[str, Any, Any, str]) -> None:
    """A SELECT is served from the cache (a change behind its back is not seen) until
    cache.execute writes its table."""
    kind, app, side, s = db
    sql = f"SELECT name FROM users_{s} WHERE id = {ph(kind)}"
    assert cache.query(app, sql, (1,)) == [("ann",)]
    run_sql(side, kind, f"UPDATE users_{s} SET name = 'behind' WHERE id = 1")
    assert cache.query(app, sql, (1,)) == [("ann",)]  # cached
    assert cache.query(app, sql, (2,)) == [("bob",)]  # other parameters: another entry
    assert cache.execute(app, f"UPDATE users_{s} SET name = {ph(kind)} WHERE id = 1",
                         ("cat",)) == 1
    assert cache.query(app, sql, (1,)) == [("cat",)]


@pytest.mark.parametrize("shape", ["join", "subquery", "cte", "union"])
def test_a_write_to_any_table_read_is_a_miss(cache: RedisCaching, db: tuple[str, Any, Any, str],
                                             shape: str) -> None:
    """A query reading two tables (join, subquery, CTE, UNION) misses after a write to the
    second one, not only the first."""
    kind, app, side, s = db
    sql = {
        "join": f"SELECT u.name, o.total FROM users_{s} u JOIN orders_{s} o "
                f"ON o.user_id = u.id ORDER BY o.id",
        "subquery": f"SELECT name FROM users_{s} WHERE id IN "
                    f"(SELECT user_id FROM orders_{s} WHERE total > 6)",
        "cte": f"WITH big AS (SELECT user_id FROM orders_{s} WHERE total > 6) "
               f"SELECT name FROM users_{s} JOIN big ON big.user_id = users_{s}.id",
        "union": f"SELECT id FROM users_{s} UNION SELECT user_id FROM orders_{s} ORDER BY 1",
    }[shape]
    first = cache.query(app, sql)
    run_sql(side, kind, f"INSERT INTO orders_{s} VALUES (12, 1, 9)")
    assert cache.query(app, sql) == first  # cached: the insert went behind its back
    cache.execute(app, f"UPDATE orders_{s} SET total = total WHERE id = 12")
    assert cache.query(app, sql) == [tuple(r) for r in run_sql(side, kind, sql)]


def test_invalidating_the_table_pattern_is_a_miss(cache: RedisCaching,
                                                  db: tuple[str, Any, Any, str]) -> None:
    """cache.invalidate(table_pattern_of(table)) (as @invalidates("sql:{table}:*") does)
    reaches queries that read the table."""
    kind, app, side, s = db
    sql = f"SELECT count(*) FROM orders_{s}"
    assert cache.query(app, sql) == [(2,)]
    run_sql(side, kind, f"DELETE FROM orders_{s}")
    cache.invalidate(table_pattern_of(f"orders_{s}"))
    assert cache.query(app, sql) == [(0,)]


def test_guard_from_another_computation_is_a_miss(cache: RedisCaching, raw: Any) -> None:
    """A result whose guard under its second table holds another computation's id is never
    served (a store that raced an invalidation cannot pair with a later one)."""
    import sqlite3

    from memo_redis.statements import analyze

    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE a (x INTEGER)")
    conn.execute("CREATE TABLE b (y INTEGER)")
    conn.execute("INSERT INTO a VALUES (1)")
    conn.execute("INSERT INTO b VALUES (1)")
    sql = "SELECT x FROM a JOIN b ON a.x = b.y"
    assert cache.query(conn, sql) == [(1,)]
    normalized = analyze(sql, dialect="sqlite").normalized
    [first, guard], fingerprint = table_keys(["a", "b"], ("query", "sqlite", normalized, None))
    assert raw.exists(first) == raw.exists(guard) == 1
    proto = protocol(cache)
    look = proto.arm(guard)
    assert proto.store(guard, b"another-computation", 60_000, seen=look,
                       fingerprint=fingerprint) is True
    conn.execute("DELETE FROM a")  # behind the cache's back: only a recomputation sees it
    assert cache.query(conn, sql) == []


def test_write_given_to_query_and_select_given_to_execute(cache: RedisCaching) -> None:
    """cache.query refuses a write and cache.execute a SELECT, each naming the other."""
    import sqlite3

    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (x INTEGER)")
    with pytest.raises(ValueError, match=r"cache\.execute"):
        cache.query(conn, "DELETE FROM t")
    with pytest.raises(ValueError, match=r"cache\.query"):
        cache.execute(conn, "SELECT x FROM t")
    with pytest.raises(TypeError, match=r"builtins\.object"):
        cache.query(object(), "SELECT 1")


def test_unparseable_statement_runs_uncached_with_one_warning(
    cache: RedisCaching, caplog: pytest.LogCaptureFixture,
) -> None:
    """A statement sqlglot cannot analyse runs uncached, with one warning for repeats."""
    import sqlite3

    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (x INTEGER)")
    conn.execute("INSERT INTO t VALUES (1)")
    caplog.set_level(logging.WARNING, logger="memo_redis")
    calls: list[int] = []
    conn.create_function("f", 1, lambda x: calls.append(x) or x)
    sql = "SELECT f(x) FROM t"  # a user-defined function may read any table: not analysed
    for _ in range(3):
        assert cache.query(conn, sql) == [(1,)]
    assert calls == [1, 1, 1]
    assert sum("cannot be analysed" in r.getMessage() for r in caplog.records) == 1
    assert not list(cache.client.scan_iter(match="sql:*"))


def test_execute_inside_a_transaction_block(cache: RedisCaching, tmp_path: Path) -> None:
    """cache.execute in transaction(conn): the writer reads its own write through
    cache.query, a reader's fill during the window is undone after the commit."""
    path = str(tmp_path / "tx.db")
    writer = connect("sqlite", path, autocommit=True)
    reader = connect("sqlite", path, autocommit=True)
    writer.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    writer.execute("INSERT INTO t VALUES (1, 'old')")
    sql = "SELECT v FROM t WHERE id = 1"
    assert cache.query(reader, sql) == [("old",)]
    with transaction(writer):
        cache.execute(writer, "UPDATE t SET v = 'new' WHERE id = 1")
        assert cache.query(writer, sql) == [("new",)]  # bypasses the cache: own write
        assert cache.query(reader, sql) == [("old",)]  # another reader fills the old row
    assert cache.query(reader, sql) == [("new",)]
    writer.close()
    reader.close()


@pytest.mark.db
def test_aquery_and_aexecute_with_psycopg_async(cache: RedisCaching) -> None:
    """The async forms cache and invalidate like the sync ones."""
    import psycopg

    target = available("postgres")
    table = f"aq_{uuid.uuid4().hex[:6]}"

    async def main() -> list[Any]:
        conn = await psycopg.AsyncConnection.connect(target, autocommit=True)
        try:
            await conn.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, v TEXT)")
            await conn.execute(f"INSERT INTO {table} VALUES (1, 'a')")
            sql = f"SELECT v FROM {table} WHERE id = %s"
            seen = [await cache.aquery(conn, sql, (1,))]
            await conn.execute(f"UPDATE {table} SET v = 'behind' WHERE id = 1")
            seen.append(await cache.aquery(conn, sql, (1,)))
            seen.append(await cache.aexecute(conn, f"UPDATE {table} SET v = 'b' WHERE id = 1"))
            seen.append(await cache.aquery(conn, sql, (1,)))
            await conn.execute(f"DROP TABLE {table}")
            return seen
        finally:
            await conn.close()
            await cache.aclose()

    assert asyncio.run(main()) == [[("a",)], [("a",)], 1, [("b",)]]

