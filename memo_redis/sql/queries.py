"""Queries cached under every table they read, and writes that invalidate every table they touch.

``cache.query(conn, sql, params)`` caches a SELECT by its normalized text (sqlglot, the
``sqlglot`` extra) and parameters; ``cache.execute(conn, sql, params)`` runs a write and
invalidates ``sql:<table>:*`` for each table it writes.

How a result that depends on several tables stays correct: it is stored at
``sql:<t1>:query:<digest>`` for its first table (sorted) together with a *guard* entry at
``sql:<tN>:query:<digest>`` under each other table. Each key is an ordinary entry: claimed before
the query runs, stored with the race-free check against its own table's generations, listed in
its own table's index. The stored value is ``(computation id, rows)`` and each guard holds the
same computation id. A lookup reads all of them in one round trip and is a hit only when every
one is present, valid and from the same computation. So a write to any of the tables (which
bumps that table's generation and unlinks its index, O(matches)) makes the result a miss, and a
store that raced an invalidation of any table is refused or left unmatched.
"""

from __future__ import annotations

import logging
import sqlite3
import sys
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from .. import envelope
from ..context import caching_disabled
from ..decorators.invalidates import arun_invalidations, run_invalidations
from ..exceptions import CacheUnavailable
from ..keys import canonical_bytes, fingerprint_of, glob_escape, segment_escape
from ..protocol import operations
from ..protocol.entries import MISS, Lookup
from ..protocol.steps import Body, Flow
from ..statements import StatementKind, UnsupportedStatement, analyze
from ..transaction_state import bypasses
from ..ttl import CATEGORY_DEFAULT, TTL, to_milliseconds

if TYPE_CHECKING:
    from ..facade import RedisCaching

__all__ = ["aread_tables", "read_tables", "table_pattern_of"]

log = logging.getLogger("memo_redis")
T = TypeVar("T")
_DIGEST = 16
_warned: set[str] = set()


def table_pattern_of(table: str) -> str:
    """The pattern of every entry of ``table`` (any name: special characters are escaped)."""
    return f"sql:{glob_escape(segment_escape(table))}:*"


def table_keys(tables: Collection[str], identity: object) -> tuple[list[str], bytes]:
    """The keys (first table's entry first, then the guards) and the fingerprint of a result
    identified by ``identity`` that reads ``tables``."""
    if not tables:
        raise ValueError("a cached query must read at least one table")
    digest, fingerprint = fingerprint_of(canonical_bytes([("identity", identity)]))
    names = sorted({segment_escape(t) for t in tables})
    return [f"sql:{name}:query:{digest[:_DIGEST]}" for name in names], fingerprint


def _hit(looks: Sequence[Lookup]) -> tuple[bool, Any]:
    """(hit, rows) of the lookups of a result's keys."""
    first = looks[0].value
    if first is MISS or not isinstance(first, tuple) or len(first) != 2:
        return False, None
    computation, rows = first
    if any(look.value != computation for look in looks[1:]):
        return False, None
    return True, rows


def _flow(cache: RedisCaching, keys: list[str], fingerprint: bytes, body: Body,
          ttl: TTL) -> Flow[Any]:
    engine = cache.engine
    items = [(key, fingerprint) for key in keys]
    try:
        hit, rows = _hit((yield from operations.lookup_many(engine, items)))
        if hit:
            return rows
        armed: list[Lookup] | None = yield from operations.arm_many(engine, items)
    except CacheUnavailable:
        if cache.strict:
            raise
        armed = None
    rows = yield body
    if armed is None:
        return rows
    ttl_ms = to_milliseconds(engine.ttl_for("data") if ttl is CATEGORY_DEFAULT else ttl)
    computation = envelope.new_token()
    values: list[Any] = [(computation, rows)] + [computation] * (len(keys) - 1)
    entries = [(key, value, ttl_ms, look, fingerprint)
               for key, value, look in zip(keys, values, armed, strict=True)]
    try:
        yield from operations.store_many(engine, entries)
    except CacheUnavailable:
        if cache.strict:
            raise
    return rows


def read_tables(cache: RedisCaching, tables: Collection[str], identity: object,
                creator: Callable[[], T], *, ttl: TTL = CATEGORY_DEFAULT) -> T:
    """``creator()``'s result, cached under every table in ``tables`` (see the module
    docstring): a write to any of them makes it a miss. ``identity`` names the request (any
    value memo_redis's key encoding accepts). Inside a transaction block that invalidated one
    of the tables, and while caching is disabled, ``creator`` runs uncached."""
    keys, fingerprint = table_keys(tables, identity)
    if caching_disabled.get() or any(bypasses(key) for key in keys):
        return creator()
    result: T = cache.engine.sync.run(_flow(cache, keys, fingerprint, Body(creator, (), {}),
                                            ttl))
    return result


async def aread_tables(cache: RedisCaching, tables: Collection[str], identity: object,
                       creator: Callable[[], Awaitable[T]], *, ttl: TTL = CATEGORY_DEFAULT) -> T:
    """Async :func:`read_tables` (``creator`` returns an awaitable)."""
    keys, fingerprint = table_keys(tables, identity)
    if caching_disabled.get() or any(bypasses(key) for key in keys):
        return await creator()
    result: T = await cache.engine.aio.run(_flow(cache, keys, fingerprint,
                                                 Body(creator, (), {}), ttl))
    return result


# --- DB-API statements -------------------------------------------------------------------------


def dialect_of(conn: object) -> str:
    """The SQL dialect of a DB-API connection (sqlite3, psycopg 3, PyMySQL)."""
    if isinstance(conn, sqlite3.Connection):
        return "sqlite"
    psycopg = sys.modules.get("psycopg")
    if psycopg is not None and isinstance(conn, (psycopg.Connection, psycopg.AsyncConnection)):
        return "postgres"
    pymysql = sys.modules.get("pymysql.connections")
    if pymysql is not None and isinstance(conn, pymysql.Connection):
        return "mysql"
    raise TypeError(
        "conn must be a sqlite3.Connection, psycopg.Connection, psycopg.AsyncConnection or "
        f"pymysql.connections.Connection, got {type(conn).__module__}.{type(conn).__qualname__}"
    )


def _warn_once(sql: str, reason: str) -> None:
    if sql not in _warned and len(_warned) < 1024:
        _warned.add(sql)
        log.warning("memo_redis: %s; it runs uncached: %.200s", reason, sql)


def analyse(sql: str, dialect: str, *, want_write: bool) -> Any:
    """The statement, checked to be a read (``want_write=False``) or a write; None when it
    cannot be analysed (logged once)."""
    try:
        statement = analyze(sql, dialect=dialect)
    except UnsupportedStatement as exc:
        _warn_once(sql, f"this statement cannot be analysed ({exc})")
        return None
    if want_write and statement.kind is StatementKind.SELECT:
        raise ValueError("cache.execute() runs statements that write; this one is a SELECT: "
                         "use cache.query() to cache it")
    if not want_write and statement.kind is not StatementKind.SELECT:
        raise ValueError(f"cache.query() caches SELECT statements; this one is "
                         f"{statement.kind.value}: use cache.execute() to run it")
    return statement


def _identity(dialect: str, normalized: str, params: Any) -> object:
    return ("query", dialect, normalized,
            list(params) if isinstance(params, (list, tuple)) else params)


def fetch_rows(conn: Any, sql: str, params: Any) -> list[tuple[Any, ...]]:
    """Run a SELECT on a DB-API connection; its rows as tuples."""
    cursor = conn.cursor()
    try:
        cursor.execute(sql, params) if params is not None else cursor.execute(sql)
        return [tuple(row) for row in cursor.fetchall()]
    finally:
        cursor.close()


async def afetch_rows(conn: Any, sql: str, params: Any) -> list[tuple[Any, ...]]:
    """Async :func:`fetch_rows` (psycopg's ``AsyncConnection``)."""
    async with conn.cursor() as cursor:
        await cursor.execute(sql, params)
        return [tuple(row) for row in await cursor.fetchall()]


def query(cache: RedisCaching, conn: Any, sql: str, params: Any = None, *,
          ttl: TTL = CATEGORY_DEFAULT) -> list[tuple[Any, ...]]:
    """Rows of a SELECT, cached under every table it reads; see
    :meth:`~memo_redis.RedisCaching.query`."""
    dialect = dialect_of(conn)
    statement = analyse(sql, dialect, want_write=False)
    if statement is None or not statement.reads:
        return fetch_rows(conn, sql, params)
    return read_tables(cache, statement.reads, _identity(dialect, statement.normalized, params),
                       lambda: fetch_rows(conn, sql, params), ttl=ttl)


async def aquery(cache: RedisCaching, conn: Any, sql: str, params: Any = None, *,
                 ttl: TTL = CATEGORY_DEFAULT) -> list[tuple[Any, ...]]:
    """Async :func:`query` (psycopg's ``AsyncConnection``)."""
    dialect = dialect_of(conn)
    statement = analyse(sql, dialect, want_write=False)
    if statement is None or not statement.reads:
        return await afetch_rows(conn, sql, params)
    return await aread_tables(cache, statement.reads,
                              _identity(dialect, statement.normalized, params),
                              lambda: afetch_rows(conn, sql, params), ttl=ttl)


def _written(statement: Any) -> list[str]:
    """The patterns a write invalidates (every SQL entry when it could not be analysed)."""
    if statement is None:
        return ["sql:*"]
    return [table_pattern_of(t) for t in sorted(statement.writes)]


def execute(cache: RedisCaching, conn: Any, sql: str, params: Any = None) -> int:
    """Run a write and invalidate every table it touches; see
    :meth:`~memo_redis.RedisCaching.execute`."""
    statement = analyse(sql, dialect_of(conn), want_write=True)
    patterns = _written(statement)
    cursor = conn.cursor()
    try:
        cursor.execute(sql, params) if params is not None else cursor.execute(sql)
        count = int(cursor.rowcount)
    except BaseException as exc:
        run_invalidations(cache, patterns, None, exc)
        raise
    finally:
        cursor.close()
    run_invalidations(cache, patterns, None, None)
    return count


async def aexecute(cache: RedisCaching, conn: Any, sql: str, params: Any = None) -> int:
    """Async :func:`execute` (psycopg's ``AsyncConnection``)."""
    statement = analyse(sql, dialect_of(conn), want_write=True)
    patterns = _written(statement)
    try:
        async with conn.cursor() as cursor:
            await cursor.execute(sql, params)
            count = int(cursor.rowcount)
    except BaseException as exc:
        await arun_invalidations(cache, patterns, None, exc)
        raise
    await arun_invalidations(cache, patterns, None, None)
    return count
