"""The seed's SQL caching API: read-through reads, write-through writes, and an orchestrator.

Keys, as in the seed design::

    sql:users:data:2dd67780          get_data_from_table("users", ["id", "name"])  (beautify=True)
    sql:users:raw:7c1e5f0a9b3d2e64   the same read with beautify=False (rows as tuples)
    sql:users:count:                 SQLCacheOrchestrator.get_table_size("users")
    sql:schema:version:              SQLCacheOrchestrator.get_database_version()

The beautified key is :func:`memo_redis.build_cache_key`'s, byte for byte, so entries written by
the seed deployment (plain JSON) are read as hits. Every entry also carries a fingerprint of the
full normalized request, so a collision of the 8-hex-digit seed digest is a miss, never another
query's rows.

Reads run through the same machinery as ``@cached``: one lookup, single-flight across threads
and processes, and a store refused when the table was invalidated meanwhile. A write runs the
caller's writer and then invalidates ``sql:<table>:*`` (also when the writer raises). Redis
failures never reach the caller unless the cache is strict: reads run the fetcher, writes still
run the writer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ..context import get_default_cache, is_cache
from ..decorators.invalidates import run_invalidations
from ..keys import (
    build_cache_key,
    canonical_bytes,
    fingerprint_of,
    glob_escape,
    seed_digest,
    segment_escape,
)
from ..protocol.entries import SeedFingerprint
from ..ttl import CATEGORY_DEFAULT, TTL, to_milliseconds

if TYPE_CHECKING:
    from ..facade import RedisCaching

__all__ = [
    "SQLCacheOrchestrator",
    "get_data_from_table",
    "sql_cache_key",
    "table_pattern",
    "update_data_in_table",
]

T = TypeVar("T")
Names = list[str] | tuple[str, ...] | str

_RAW_DIGEST_LENGTH = 16
_VERSION_KEY = "sql:schema:version:"


# --- keys ------------------------------------------------------------------------------------


def _check_table(table: object) -> str:
    if not isinstance(table, str) or not table:
        raise TypeError(f"table must be a non-empty str, got {table!r}")
    if segment_escape(table) != table:
        # The seed's key format puts the name in one segment as is: a ':' would add segments
        # (table "users:data" would share table "users"'s entries and invalidations).
        raise ValueError(
            f"table {table!r}: a table name cannot contain ':', '%', '{{', '}}' or control "
            f"characters (it is one segment of the key sql:<table>:...)"
        )
    return table


def _names(value: object, param: str) -> list[str]:
    """``column`` / ``where`` as a list: a str is one item (``""`` is none), as in the seed."""
    if isinstance(value, str):
        return [value] if value else []
    if not isinstance(value, (list, tuple)):
        raise TypeError(
            f"{param} must be a str or a list/tuple of str, got {type(value).__name__} {value!r}"
        )
    for item in value:
        if not isinstance(item, str):
            raise TypeError(f"{param} items must be str, got {type(item).__name__} {item!r}")
    return list(value)


def _request(kind: str, table: str, columns: list[str], where: list[str],
             beautify: bool) -> tuple[str, bytes]:
    """The hex digest and 16-byte fingerprint of one normalized request."""
    if not isinstance(beautify, bool):
        raise TypeError(f"beautify must be a bool, got {type(beautify).__name__} {beautify!r}")
    digest, fingerprint = fingerprint_of(canonical_bytes([
        ("kind", kind), ("table", table), ("columns", sorted(columns)),
        ("where", sorted(where)), ("beautify", beautify),
    ]))
    # The seed's deployments wrote these keys as plain JSON text: the lookup may serve it.
    return digest, SeedFingerprint(fingerprint)


def _data_key(table: object, column: object, where: object, beautify: bool) -> tuple[str, bytes]:
    name = _check_table(table)
    columns, conditions = _names(column, "column"), _names(where, "where")
    digest, fingerprint = _request("data", name, columns, conditions, beautify)
    if beautify:
        return build_cache_key(name, columns, conditions), fingerprint
    return f"sql:{name}:raw:{digest[:_RAW_DIGEST_LENGTH]}", fingerprint


def sql_cache_key(table: str, column: Names, where: Names = (), *, beautify: bool = True) -> str:
    """The key :func:`get_data_from_table` uses for this request.

    >>> sql_cache_key("users", ["id", "name"])
    'sql:users:data:2dd67780'

    ``beautify=False`` gives ``sql:<table>:raw:<16 hex>``, so beautified rows (dicts) and raw
    rows (tuples) of one query never share an entry. ``column`` and ``where`` may be a list,
    a tuple or one str; their order does not matter.
    """
    return _data_key(table, column, where, beautify)[0]


def table_pattern(table: str) -> str:
    """The pattern matching every entry of ``table``, with the name glob-escaped.

    >>> table_pattern("users"), table_pattern("logs_*")
    ('sql:users:*', 'sql:logs_\\\\*:*')
    """
    return f"sql:{glob_escape(_check_table(table))}:*"


# --- read-through ----------------------------------------------------------------------------


def _read_through(cache: RedisCaching, key: str, fingerprint: bytes, fetcher: Callable[[], T],
                  ttl: TTL) -> T:
    return cache.get_or_create(key, fetcher, ttl, fingerprint=fingerprint)


def _check_callable(value: object, param: str) -> None:
    if value is None or not callable(value):
        raise TypeError(
            f"{param} must be a callable taking no arguments, got {type(value).__name__} {value!r}"
        )


def get_data_from_table(
    cache: RedisCaching,
    table: str,
    column: Names,
    where: Names = (),
    *,
    beautify: bool = True,
    fetcher: Callable[[], T] | None = None,
    ttl_seconds: TTL = CATEGORY_DEFAULT,
) -> T:
    """Return the cached rows of this request, calling ``fetcher()`` on a miss.

    The key is :func:`sql_cache_key` (``sql:users:data:2dd67780`` for
    ``("users", ["id", "name"])``). ``ttl_seconds`` defaults to the cache's ``data`` TTL
    (300 s); ``None`` stores without expiry. Concurrent misses of one key call ``fetcher``
    once; exceptions are never cached; a result computed while the table was invalidated is
    returned but not stored. When Redis fails, ``fetcher()``'s result is returned (unless the
    cache is strict). Also available as ``cache.get_data_from_table(...)``.

    Raises:
        TypeError: ``fetcher`` is missing or not callable, or ``table``/``column``/``where``
            have the wrong type.
        ValueError: ``ttl_seconds`` is zero or negative.
    """
    _check_callable(fetcher, "fetcher")
    assert fetcher is not None
    key, fingerprint = _data_key(table, column, where, beautify)
    if ttl_seconds is not CATEGORY_DEFAULT:
        to_milliseconds(ttl_seconds, "ttl_seconds")
    return _read_through(cache, key, fingerprint, fetcher, ttl_seconds)


# --- write-through ---------------------------------------------------------------------------


def _write_through(cache: RedisCaching, table: str, writer: Callable[[], T]) -> T:
    patterns = [table_pattern(table)]
    try:
        result = writer()
    except BaseException as exc:
        run_invalidations(cache, patterns, None, exc)
        raise
    run_invalidations(cache, patterns, None, None)
    return result


def update_data_in_table(
    cache: RedisCaching,
    table: str,
    data: Any,
    column: Names,
    where: Names = (),
    *,
    writer: Callable[[], T] | None = None,
) -> T:
    """Run ``writer()``, then invalidate every entry of the table (``sql:<table>:*``).

    The invalidation also runs when ``writer`` raises; the exception then propagates
    unchanged. Returns the writer's result. ``data``, ``column`` and ``where`` describe the
    write (as in the seed) and are only checked here; ``writer`` performs it. The table name
    is glob-escaped, so ``update_data_in_table(cache, "logs_*", ...)`` never touches other
    tables. A failed invalidation is logged at error level (unless the cache is strict, which
    raises :class:`CacheUnavailable` after a successful write). Also available as
    ``cache.update_data_in_table(...)``.
    """
    _check_callable(writer, "writer")
    assert writer is not None
    _check_table(table)
    _names(column, "column")
    _names(where, "where")
    return _write_through(cache, table, writer)


# --- orchestrator ----------------------------------------------------------------------------


class SQLCacheOrchestrator:
    """Read-through and write-through caching around a SQL object, as in the seed.

    ``sql`` is any object with some of these methods (those of the seed's SQL layer); each
    wrapper calls the one of the same name::

        get_data_from_table(table, column, where, beautify)   cached at sql:<table>:data:...
        get_table_size(table, column, where)                  cached at sql:<table>:count:
        get_database_version()                                cached at sql:schema:version:
        update_data_in_table(table, data, column, where)      then invalidates sql:<table>:*
        insert_data_into_table(table, data, column)           then invalidates sql:<table>:*
        remove_data_from_table(table, where)                  then invalidates sql:<table>:*

    Row counts use the ``count`` TTL (60 s), the version the ``schema`` TTL (3600 s), rows the
    ``data`` TTL (300 s) of ``cache``; ``cache=None`` uses the default cache.
    """

    def __init__(self, sql: Any, cache: RedisCaching | None = None) -> None:
        if cache is not None and not is_cache(cache):
            raise TypeError(f"cache must be a RedisCaching or None, got {type(cache).__name__}")
        self.sql = sql
        self._cache = cache

    @property
    def cache(self) -> RedisCaching:
        """The cache in use (the default cache when none was given)."""
        return self._cache if self._cache is not None else get_default_cache()

    def __repr__(self) -> str:
        return f"SQLCacheOrchestrator({self.sql!r}, {self.cache!r})"

    def invalidate_table_cache(self, table: str) -> int:
        """Invalidate every entry of ``table`` (race-free); returns the number of keys deleted."""
        return self.cache.invalidate(table_pattern(table))

    def get_data_from_table(self, table: str, column: Names, where: Names = (),
                            beautify: bool = True, ttl_seconds: TTL = CATEGORY_DEFAULT) -> Any:
        """Cached ``sql.get_data_from_table(table, column, where, beautify)``."""
        return get_data_from_table(
            self.cache, table, column, where, beautify=beautify, ttl_seconds=ttl_seconds,
            fetcher=lambda: self.sql.get_data_from_table(table, column, where, beautify),
        )

    def get_table_size(self, table: str, column: Names = "*", where: Names = ()) -> Any:
        """Cached ``sql.get_table_size(table, column, where)``.

        The whole-table count (``column="*"``, no ``where``) is at ``sql:<table>:count:``;
        other counts add the seed digest of their columns and conditions.
        """
        name = _check_table(table)
        columns, conditions = _names(column, "column"), _names(where, "where")
        _, fingerprint = _request("count", name, columns, conditions, True)
        whole = columns == ["*"] and not conditions
        key = f"sql:{name}:count:" + ("" if whole else seed_digest(name, columns, conditions))
        cache = self.cache
        return _read_through(cache, key, fingerprint,
                             lambda: self.sql.get_table_size(table, column, where),
                             cache.ttl_for("count"))

    def get_database_version(self) -> Any:
        """Cached ``sql.get_database_version()``, at ``sql:schema:version:``."""
        cache = self.cache
        _, fingerprint = _request("version", "", [], [], True)
        return _read_through(cache, _VERSION_KEY, fingerprint, self.sql.get_database_version,
                             cache.ttl_for("schema"))

    def update_data_in_table(self, table: str, data: Any, column: Names,
                             where: Names = ()) -> Any:
        """``sql.update_data_in_table(table, data, column, where)``, then invalidate the table."""
        return update_data_in_table(
            self.cache, table, data, column, where,
            writer=lambda: self.sql.update_data_in_table(table, data, column, where),
        )

    def insert_data_into_table(self, table: str, data: Any, column: Names | None = None) -> Any:
        """``sql.insert_data_into_table(table, data, column)``, then invalidate the table."""
        _check_table(table)
        return _write_through(self.cache, table,
                              lambda: self.sql.insert_data_into_table(table, data, column))

    def remove_data_from_table(self, table: str, where: Names = ()) -> Any:
        """``sql.remove_data_from_table(table, where)``, then invalidate the table."""
        _check_table(table)
        return _write_through(self.cache, table,
                              lambda: self.sql.remove_data_from_table(table, where))
