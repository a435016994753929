"""``transaction()``: invalidations that survive a SQL transaction committing later.

An invalidation issued inside an open transaction runs at once, but the old row is still the
committed one until the commit: another process missing meanwhile reads it and caches it. Inside
``with transaction(conn):`` every invalidation this thread or task issues is applied at once *and
again after the commit or rollback*, and this thread's cached calls whose key an invalidation in
the block matches skip the cache (they see the transaction's own writes, and never publish
uncommitted rows to other processes). See :mod:`memo_redis.transaction_state`.
"""

from __future__ import annotations

import sqlite3
import sys
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..transaction_state import Invalidation, close_scope, open_scope

if TYPE_CHECKING:
    import contextvars

    from ..facade import RedisCaching
    from ..transaction_state import TransactionScope

__all__ = ["Transaction", "transaction"]

_SUPPORTED = ("sqlite3.Connection, psycopg.Connection, psycopg.AsyncConnection or "
              "pymysql.connections.Connection")


def _kind_of(conn: object) -> str:
    """"sqlite", "psycopg", "psycopg-async" or "pymysql"; TypeError for anything else."""
    if isinstance(conn, sqlite3.Connection):
        return "sqlite"
    psycopg = sys.modules.get("psycopg")
    if psycopg is not None:
        if isinstance(conn, psycopg.AsyncConnection):
            return "psycopg-async"
        if isinstance(conn, psycopg.Connection):
            return "psycopg"
    pymysql = sys.modules.get("pymysql.connections")
    if pymysql is not None and isinstance(conn, pymysql.Connection):
        return "pymysql"
    raise TypeError(
        f"transaction(conn) takes a {_SUPPORTED} (or conn=None to manage the transaction "
        f"yourself), got {type(conn).__module__}.{type(conn).__qualname__}"
    )


def reapply(invalidations: list[Invalidation]) -> None:
    """Apply recorded invalidations again; a failure is kept and logged like any failed
    invalidation (never raised: the transaction already ended)."""
    for cache, kind, target in invalidations:
        if kind == "key":
            cache.invalidate_key(target, strict=False)
        else:
            cache.invalidate(target, strict=False)


async def areapply(invalidations: list[Invalidation]) -> None:
    """Async :func:`reapply`."""
    for cache, kind, target in invalidations:
        if kind == "key":
            await cache.ainvalidate_key(target, strict=False)
        else:
            await cache.ainvalidate(target, strict=False)


class Transaction:
    """The context manager :func:`transaction` returns (for ``with`` and ``async with``)."""

    def __init__(self, conn: Any = None, *, cache: RedisCaching | None = None) -> None:
        self.conn = conn
        self.cache = cache
        self._kind = None if conn is None else _kind_of(conn)
        self._scope: TransactionScope | None = None
        self._token: contextvars.Token[TransactionScope | None] | None = None
        self._native: Any = None  # psycopg's own transaction context manager

    @property
    def outermost(self) -> bool:
        """Does this block own the transaction (not nested in another block)?"""
        return self._token is not None

    # -- with ----------------------------------------------------------------------------------

    def __enter__(self) -> Any:
        if self._kind == "psycopg-async":
            raise TypeError("a psycopg.AsyncConnection needs `async with transaction(conn)`")
        self._scope, self._token = open_scope()
        if self.outermost and self.conn is not None:
            try:
                self._begin()
            except BaseException:
                close_scope(self._scope, self._token)
                raise
        return self.conn

    def _begin(self) -> None:
        conn = self.conn
        if self._kind == "sqlite":
            if not conn.in_transaction:
                conn.execute("BEGIN")
        elif self._kind == "psycopg":
            self._native = conn.transaction()
            self._native.__enter__()
        else:  # pymysql
            conn.begin()

    def _end(self, failed: BaseException | None) -> None:
        conn = self.conn
        if self._kind == "psycopg":
            native, self._native = self._native, None
            if failed is None:
                native.__exit__(None, None, None)
            else:
                native.__exit__(type(failed), failed, failed.__traceback__)
        elif failed is None:
            conn.commit()
        else:
            conn.rollback()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        assert self._scope is not None
        try:
            if self.outermost and self.conn is not None:
                self._end(exc)
        finally:
            reapply(close_scope(self._scope, self._token))

    # -- async with ----------------------------------------------------------------------------

    async def __aenter__(self) -> Any:
        self._scope, self._token = open_scope()
        if self.outermost and self.conn is not None:
            try:
                if self._kind == "psycopg-async":
                    self._native = self.conn.transaction()
                    await self._native.__aenter__()
                else:
                    self._begin()
            except BaseException:
                close_scope(self._scope, self._token)
                raise
        return self.conn

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        assert self._scope is not None
        try:
            if self.outermost and self.conn is not None:
                if self._kind == "psycopg-async":
                    native, self._native = self._native, None
                    await native.__aexit__(exc_type, exc, tb)
                else:
                    self._end(exc)
        finally:
            await areapply(close_scope(self._scope, self._token))


def transaction(conn: Any = None, *, cache: RedisCaching | None = None) -> Transaction:
    """A transaction block whose invalidations survive the commit.

    ``with transaction(conn):`` (sqlite3, psycopg 3, PyMySQL; ``async with`` for psycopg's
    ``AsyncConnection``) begins a transaction on ``conn``, commits when the block ends normally
    and rolls back when it raises (the exception propagates). ``transaction()`` without ``conn``
    is the cache side only: begin and commit your own transaction inside the block.

    Every invalidation this thread or asyncio task issues inside the block (``@invalidates``,
    ``cache.invalidate``, ``fn.invalidate``, ``invalidate_key``, ``update_data_in_table``) is
    applied at once and again after the commit or rollback; cached calls of keys it matches run
    their body inside the block, neither reading nor storing the cache. Nested blocks join the
    outermost one. A re-application that fails is kept and logged, like any failed
    invalidation, and applied before this process's next cache use. ``cache`` is accepted for
    symmetry with the other SQL helpers: invalidations are recorded on whichever cache runs them.

    >>> import sqlite3
    >>> conn = sqlite3.connect(":memory:")
    >>> with transaction(conn):                 # doctest: +SKIP
    ...     conn.execute("UPDATE users SET email = ? WHERE id = ?", (email, 7))
    ...     read_email.invalidate(7)
    """
    return Transaction(conn, cache=cache)
