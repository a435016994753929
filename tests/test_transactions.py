"""transaction(): invalidations applied again after a later commit, on SQLite (WAL),
PostgreSQL and MariaDB, with readers in other threads and processes filling the cache during
the window between the invalidation and the commit."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

import memo_redis
from memo_redis import RedisCaching, cached, invalidates
from memo_redis.embedded import EmbeddedServer
from memo_redis.sql import transaction

TRIALS = 200
PG_DSN = os.environ.get("MEMO_REDIS_PG_DSN") or "postgresql://postgres@127.0.0.1:5432/test"
MYSQL_DSN = os.environ.get("MEMO_REDIS_MYSQL_DSN") or "mysql://root@127.0.0.1:3306/test"


# --- databases -------------------------------------------------------------------------------


def connect(kind: str, target: str, *, autocommit: bool) -> Any:
    """A connection of ``kind`` ("sqlite", "postgres", "mariadb") to ``target``."""
    if kind == "sqlite":
        conn = sqlite3.connect(target, timeout=10, check_same_thread=False,
                               isolation_level=None if autocommit else "")
        conn.execute("PRAGMA journal_mode=WAL")
        return conn
    if kind == "postgres":
        import psycopg

        return psycopg.connect(target, autocommit=autocommit, connect_timeout=3)
    import pymysql

    parts = urlsplit(target)
    return pymysql.connect(
        host=parts.hostname or "127.0.0.1", port=parts.port or 3306,
        user=unquote(parts.username or "root"), password=unquote(parts.password or ""),
        database=parts.path.lstrip("/") or None, connect_timeout=3, autocommit=autocommit,
    )


def placeholder(kind: str) -> str:
    return "?" if kind == "sqlite" else "%s"


def query(conn: Any, kind: str, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
    sql = sql.replace("?", placeholder(kind))
    cursor = conn.cursor()
    try:
        cursor.execute(sql, params)
        return list(cursor.fetchall()) if cursor.description else []
    finally:
        cursor.close()


# --- the cached read and the write, as an application would write them -----------------------

KIND: dict[str, str] = {}


@cached(prefix="sql:{table}", ttl=60, ignore=("conn",))
def read_email(conn: Any, table: str, pk: int) -> str:
    """The committed email (or, on the writer's own connection, its uncommitted one)."""
    rows = query(conn, KIND["kind"], f"SELECT email FROM {table} WHERE id = ?", (pk,))
    return str(rows[0][0])


@invalidates("sql:{table}:*")
def set_email(conn: Any, table: str, pk: int, email: str) -> None:
    query(conn, KIND["kind"], f"UPDATE {table} SET email = ? WHERE id = ?", (email, pk))


def _reader_process(url: str, kind: str, target: str, table: str, pipe: Any) -> None:
    """A reader in another process: reads through the cache whenever asked."""
    KIND["kind"] = kind
    cache = RedisCaching(url)
    memo_redis.set_default_cache(cache)
    conn = connect(kind, target, autocommit=True)
    while (message := pipe.recv()) is not None:
        pipe.send(read_email(conn, table, message))
    conn.close()
    cache.close()


class Readers:
    """One reader thread (its own connection) and one reader process."""

    def __init__(self, url: str, kind: str, target: str, table: str) -> None:
        self.thread_conn = connect(kind, target, autocommit=True)
        self.table = table
        context = multiprocessing.get_context("spawn")
        self.pipe, child = context.Pipe()
        self.process = context.Process(target=_reader_process,
                                       args=(url, kind, target, table, child), daemon=True)
        self.process.start()

    def read_in_thread(self, pk: int) -> str:
        result: list[str] = []
        thread = threading.Thread(target=lambda: result.append(
            read_email(self.thread_conn, self.table, pk)))
        thread.start()
        thread.join(30)
        return result[0]

    def read_in_process(self, pk: int) -> str:
        self.pipe.send(pk)
        assert self.pipe.poll(30), "the reader process did not answer"
        answer: str = self.pipe.recv()
        return answer

    def close(self) -> None:
        self.pipe.send(None)
        self.process.join(30)
        self.thread_conn.close()


def available(kind: str) -> str:
    """The target of ``kind`` on this machine; skips (fails in CI) when unreachable."""
    target = PG_DSN if kind == "postgres" else MYSQL_DSN
    try:
        connect(kind, target, autocommit=True).close()
    except Exception as exc:  # any driver or socket error means "not reachable"
        reason = f"{kind} not reachable ({type(exc).__name__}: {exc})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} -- the transaction tests must run in CI")
        pytest.skip(reason)
    return target


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.db),
                        pytest.param("mariadb", marks=pytest.mark.db)])
def database(request: pytest.FixtureRequest, tmp_path: Path,
             cache: RedisCaching) -> Iterator[tuple[str, str, str]]:
    """(kind, target, table): a table ``id, email`` with row 1, dropped afterwards."""
    kind: str = request.param
    target = str(tmp_path / "app.db") if kind == "sqlite" else available(kind)
    table = f"memo_tx_{uuid.uuid4().hex[:8]}"
    KIND["kind"] = kind
    memo_redis.set_default_cache(cache)
    admin = connect(kind, target, autocommit=True)
    query(admin, kind, f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, email VARCHAR(64))")
    query(admin, kind, f"INSERT INTO {table} (id, email) VALUES (?, ?)", (1, "v-start"))
    try:
        yield kind, target, table
    finally:
        query(admin, kind, f"DROP TABLE {table}")
        admin.close()
        memo_redis.set_default_cache(None)


def _trials(database: tuple[str, str, str], server: EmbeddedServer,
            block: Callable[[Any], Any]) -> tuple[int, int, int]:
    """Run TRIALS write/read/commit rounds; every 5th raises inside the block (rollback).
    Returns (stale reads after the end, rolled-back values seen, own writes missed)."""
    kind, target, table = database
    writer = connect(kind, target, autocommit=kind == "sqlite")
    readers = Readers(server.url, kind, target, table)
    main_conn = connect(kind, target, autocommit=True)
    stale = leaked = blind = 0
    committed = "v-start"
    try:
        for trial in range(TRIALS):
            new = f"v{trial}"
            rollback = trial % 5 == 4
            try:
                with block(writer):
                    set_email(writer, table, 1, new)
                    blind += read_email(writer, table, 1) != new  # reads its own write
                    # Readers elsewhere miss and fill the cache with the committed row.
                    seen = {readers.read_in_thread(1), readers.read_in_process(1)}
                    leaked += new in seen
                    if rollback:
                        raise RuntimeError("roll back")
            except RuntimeError:
                pass
            if not rollback:
                committed = new
            after = [read_email(main_conn, table, 1), readers.read_in_thread(1),
                     readers.read_in_process(1)]
            stale += sum(value != committed for value in after)
    finally:
        readers.close()
        main_conn.close()
        writer.close()
    return stale, leaked, blind


def test_invalidations_survive_the_commit(database: tuple[str, str, str],
                                          server: EmbeddedServer) -> None:
    """200 trials: no stale read after the commit, the writer reads its own writes, and no
    reader ever sees a value that was rolled back."""
    stale, leaked, blind = _trials(database, server, transaction)
    assert (stale, leaked, blind) == (0, 0, 0)


def test_without_the_block_the_old_row_is_served_after_the_commit(
    database: tuple[str, str, str], server: EmbeddedServer,
) -> None:
    """The race transaction() closes is real: with a plain transaction the readers' fill
    during the window outlives the commit (so the test above can fail)."""
    kind = database[0]

    class Plain:
        def __init__(self, conn: Any) -> None:
            self.conn = conn

        def __enter__(self) -> None:
            if kind == "sqlite":
                self.conn.execute("BEGIN")
            elif kind == "mariadb":
                self.conn.begin()

        def __exit__(self, exc_type: Any, *rest: Any) -> None:
            if exc_type is None:
                self.conn.commit()
            else:
                self.conn.rollback()

    stale, _, _ = _trials(database, server, Plain)
    assert stale > 0


def test_nested_blocks_join_the_outermost(tmp_path: Path, cache: RedisCaching) -> None:
    """An inner block neither commits nor re-applies; the outer block does both."""
    KIND["kind"] = "sqlite"
    memo_redis.set_default_cache(cache)
    path = str(tmp_path / "nested.db")
    admin = connect("sqlite", path, autocommit=True)
    admin.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, email TEXT)")
    admin.execute("INSERT INTO t VALUES (1, 'old')")
    writer = connect("sqlite", path, autocommit=True)
    try:
        with transaction(writer):
            with transaction(writer):
                set_email(writer, "t", 1, "new")
            assert writer.in_transaction  # the inner block did not commit
            assert read_email(admin, "t", 1) == "old"  # other connections: still old
            assert read_email(writer, "t", 1) == "new"  # still bypassing: own write
        assert read_email(admin, "t", 1) == "new"
    finally:
        memo_redis.set_default_cache(None)
        writer.close()
        admin.close()


def test_an_unsupported_connection_is_a_type_error() -> None:
    """transaction(conn) with a conn of another type raises TypeError naming that type."""
    with pytest.raises(TypeError, match=r"builtins\.object"):
        transaction(object())


def test_without_conn_the_block_is_the_cache_side_only(tmp_path: Path,
                                                       cache: RedisCaching) -> None:
    """transaction() without conn records and re-applies; the caller commits its own."""
    KIND["kind"] = "sqlite"
    memo_redis.set_default_cache(cache)
    path = str(tmp_path / "own.db")
    admin = connect("sqlite", path, autocommit=True)
    admin.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, email TEXT)")
    admin.execute("INSERT INTO t VALUES (1, 'old')")
    writer = connect("sqlite", path, autocommit=True)
    try:
        with transaction():
            writer.execute("BEGIN")
            set_email(writer, "t", 1, "new")
            assert read_email(admin, "t", 1) == "old"  # a reader fills the old row
            writer.execute("COMMIT")
        assert read_email(admin, "t", 1) == "new"
    finally:
        memo_redis.set_default_cache(None)
        writer.close()
        admin.close()


@pytest.mark.db
def test_async_with_a_psycopg_async_connection(server: EmbeddedServer,
                                               cache: RedisCaching) -> None:
    """async with transaction(AsyncConnection): commit re-applies; an exception rolls back."""
    import psycopg

    target = available("postgres")
    table = f"memo_tx_{uuid.uuid4().hex[:8]}"
    admin = connect("postgres", target, autocommit=True)
    query(admin, "postgres", f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, email TEXT)")
    query(admin, "postgres", f"INSERT INTO {table} VALUES (1, 'old')")

    @cached(cache=cache, prefix="sql:{table}", ttl=60, ignore=("conn",))
    async def aread(conn: Any, table: str, pk: int) -> str:
        async with conn.cursor() as cursor:
            await cursor.execute(f"SELECT email FROM {table} WHERE id = %s", (pk,))
            row = await cursor.fetchone()
        return str(row[0])

    async def main() -> list[str]:
        writer = await psycopg.AsyncConnection.connect(target)
        reader = await psycopg.AsyncConnection.connect(target, autocommit=True)
        seen = []
        try:
            async with transaction(writer):
                await writer.execute(f"UPDATE {table} SET email = 'new' WHERE id = 1")
                await cache.ainvalidate(f"sql:{table}:*")
                seen.append(await aread(writer, table, 1))  # own write, bypassing
                seen.append(await aread(reader, table, 1))  # a reader fills the old row
            seen.append(await aread(reader, table, 1))
            with pytest.raises(RuntimeError):
                async with transaction(writer):
                    await writer.execute(f"UPDATE {table} SET email = 'gone' WHERE id = 1")
                    await cache.ainvalidate(f"sql:{table}:*")
                    raise RuntimeError("roll back")
            seen.append(await aread(reader, table, 1))
        finally:
            await writer.close()
            await reader.close()
            await cache.aclose()
        return seen

    try:
        assert asyncio.run(main()) == ["new", "old", "new", "new"]
        with pytest.raises(TypeError, match="async with"), transaction(
                psycopg.AsyncConnection.__new__(psycopg.AsyncConnection)):
            pass
    finally:
        query(admin, "postgres", f"DROP TABLE {table}")
        admin.close()
