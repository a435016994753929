"""The SQL methods of :class:`~memo_redis.RedisCaching`: the seed's read-through and
write-through, and statements cached or invalidated by the tables they name."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from ..ttl import CATEGORY_DEFAULT, TTL
from . import queries, seed

if TYPE_CHECKING:
    from ..facade import RedisCaching

Names = list[str] | tuple[str, ...] | str


class SQLMethods:
    """Mixed into :class:`~memo_redis.RedisCaching`."""

    def _cache(self) -> RedisCaching:
        return cast("RedisCaching", self)

    def get_data_from_table(self, table: str, column: Names, where: Names = (),
                            beautify: bool = True, fetcher: Callable[[], Any] | None = None,
                            ttl_seconds: TTL = CATEGORY_DEFAULT) -> Any:
        """Read-through cache of a SQL fetch; see :func:`memo_redis.sql.get_data_from_table`."""
        return seed.get_data_from_table(self._cache(), table, column, where, beautify=beautify,
                                        fetcher=fetcher, ttl_seconds=ttl_seconds)

    def update_data_in_table(self, table: str, data: Any, column: Names, where: Names = (),
                             writer: Callable[[], Any] | None = None) -> Any:
        """Write-through: run ``writer`` then invalidate ``sql:<table>:*`` (also when it raises);
        see :func:`memo_redis.sql.update_data_in_table`."""
        return seed.update_data_in_table(self._cache(), table, data, column, where,
                                         writer=writer)

    def query(self, conn: Any, sql: str, params: Any = None, *,
              ttl: TTL = CATEGORY_DEFAULT) -> list[tuple[Any, ...]]:
        """The rows of a SELECT, cached by its normalized text and ``params`` under every table
        it reads (joins, subqueries, CTEs, UNION; found by sqlglot, the ``sqlglot`` extra).

        ``conn`` is a sqlite3, psycopg 3 or PyMySQL connection (its dialect is used to parse).
        A write to any of the tables (``cache.execute``, ``@invalidates("sql:{table}:*")``,
        ``cache.invalidate("sql:users:*")``) makes the result a miss. A statement that cannot be
        analysed runs uncached with one warning; a statement that writes is a ``ValueError``.
        Transaction-aware like every read-through (:func:`memo_redis.sql.transaction`).
        """
        return queries.query(self._cache(), conn, sql, params, ttl=ttl)

    async def aquery(self, conn: Any, sql: str, params: Any = None, *,
                     ttl: TTL = CATEGORY_DEFAULT) -> list[tuple[Any, ...]]:
        """Async :meth:`query` (psycopg's ``AsyncConnection``)."""
        return await queries.aquery(self._cache(), conn, sql, params, ttl=ttl)

    def execute(self, conn: Any, sql: str, params: Any = None) -> int:
        """Run a statement that writes and invalidate ``sql:<table>:*`` for every table it
        writes (INSERT, UPDATE, DELETE, upserts, MERGE, TRUNCATE, DDL); returns the row count.

        The invalidation also runs when the statement raises. A statement that cannot be
        analysed runs with one warning and invalidates every ``sql:*`` entry (never too
        little); a SELECT is a ``ValueError`` (use :meth:`query`). Inside
        :func:`memo_redis.sql.transaction` the invalidations are applied again after the commit.
        """
        return queries.execute(self._cache(), conn, sql, params)

    async def aexecute(self, conn: Any, sql: str, params: Any = None) -> int:
        """Async :meth:`execute` (psycopg's ``AsyncConnection``)."""
        return await queries.aexecute(self._cache(), conn, sql, params)
