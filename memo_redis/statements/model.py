"""The result of :func:`~memo_redis.statements.analyze`: :class:`Statement`, its
:class:`StatementKind`, and :class:`UnsupportedStatement` for what it refuses."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from memo_redis.exceptions import MemoRedisError

__all__ = ["Statement", "StatementKind", "UnsupportedStatement"]


class UnsupportedStatement(MemoRedisError, ValueError):
    """The statement's tables cannot be determined with certainty; the message says why.

    Raised for text that does not parse, several statements in one string, and statements
    that may read or write tables not named in their text. Run such a statement uncached.
    """


class StatementKind(enum.Enum):
    """The kind of an analysed statement."""

    SELECT = "SELECT"
    INSERT = "INSERT"
    UPDATE = "UPDATE"
    DELETE = "DELETE"
    MERGE = "MERGE"
    TRUNCATE = "TRUNCATE"
    DDL = "DDL"
    OTHER = "OTHER"

    @property
    def is_write(self) -> bool:
        """True for every kind but SELECT and OTHER."""
        return self not in (StatementKind.SELECT, StatementKind.OTHER)


@dataclass(frozen=True)
class Statement:
    """The result of :func:`analyze`.

    Attributes:
        kind: what the statement does. A SELECT carrying a data-modifying WITH clause
            (PostgreSQL's ``WITH d AS (DELETE ... RETURNING *) SELECT ...``) takes the kind of
            its first write, so ``kind is StatementKind.SELECT`` means the statement writes
            nothing. ``SELECT ... FOR UPDATE`` is a SELECT. ``SELECT ... INTO new_table``
            (PostgreSQL) and RENAME are DDL. OTHER is transaction control (BEGIN, COMMIT,
            ROLLBACK), SET and USE: they write no table.
        reads: the tables whose rows the statement's result depends on, named as described in
            the :mod:`memo_redis.statements` docstring. For a write, the tables read besides
            its targets (INSERT ... SELECT's sources, UPDATE ... FROM and DELETE ... USING's
            extra tables, MERGE's source); a target also appears here when a subquery reads it.
        writes: the tables the statement changes (empty exactly when ``is_write`` is false).
        normalized: sqlglot's canonical text of the statement in the dialect: whitespace,
            comments and keyword case do not matter, literals and parameter placeholders are
            kept as written. It parses back to the same statement (checked), so two
            statements that differ in meaning never share it. Meant for a cache key (with
            the parameters and the dialect), not for execution: run the original text. When
            generation moves positional placeholders (MySQL's ``LIMIT %s, %s`` becomes
            ``LIMIT %s /* 2 */ OFFSET %s /* 1 */``), each is followed by its original rank.
    """

    kind: StatementKind
    reads: frozenset[str]
    writes: frozenset[str]
    normalized: str

    @property
    def is_write(self) -> bool:
        """True when the statement changes a table (every kind but SELECT and OTHER)."""
        return self.kind.is_write


# Named by their public path, as before the package was split into modules: canonical keys
# (memo_redis.keys) and pickles name an Enum member's or a dataclass's class by its module.
StatementKind.__module__ = "memo_redis.statements"
Statement.__module__ = "memo_redis.statements"
