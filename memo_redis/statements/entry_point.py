"""The public entry point, :func:`analyze`: argument checks, memoized results (refusals
included), and sqlglot's log records silenced while it runs."""

from __future__ import annotations

import contextvars
import functools
import logging

from .analysis import Analysis
from .dialects import dialect_name
from .model import Statement, UnsupportedStatement
from .parsing import Refused

__all__ = ["analyze"]


def analyze(sql: str, *, dialect: str | None = None) -> Statement:
    """Parse one SQL statement and say what it reads and writes.

    Args:
        sql: one statement (a single trailing ``;`` is allowed). Parameter placeholders as the
            drivers write them are accepted: ``%s`` and ``%(name)s`` (psycopg, PyMySQL; in the
            postgres, mysql and generic dialects, where ``%s`` is always read as a
            placeholder), ``?``, ``?NNN`` and ``:name`` (sqlite3; ``?`` also in mysql and
            generic, ``:name`` also in generic) and ``$1`` (postgres).
        dialect: ``"sqlite"``, ``"postgres"`` (or ``"postgresql"``), ``"mysql"`` (or
            ``"mariadb"``), case-insensitive, or None for sqlglot's generic SQL (quoted names
            then keep their case, as in PostgreSQL; pass the dialect when you know it).

    Returns:
        A :class:`Statement`. Results are memoized per ``(sql, dialect)``, so analysing the
        same text again is cheap.

    Raises:
        UnsupportedStatement: the statement cannot be analysed with certainty (see the module
            docstring); the message says why.
        ValueError: ``dialect`` is not one of the above (the message names it).
        TypeError: ``sql`` is not a str.
        ImportError: sqlglot is not installed.
    """
    if not isinstance(sql, str):
        raise TypeError(f"sql must be a str, got {type(sql).__name__}")
    name = dialect_name(dialect)
    try:
        import sqlglot  # noqa: F401
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            "memo_redis.statements needs sqlglot: pip install 'memo_redis[sqlglot]'"
        ) from exc
    result = _analyze_cached(sql, name)
    if isinstance(result, str):
        raise UnsupportedStatement(f"cannot analyse {_excerpt(sql)}: {result}")
    return result


def _excerpt(sql: str, limit: int = 80) -> str:
    text = " ".join(sql.split())
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


@functools.lru_cache(maxsize=1024)
def _analyze_cached(sql: str, dialect: str | None) -> Statement | str:
    # Refusals are memoized too (as their reason), so a statement run often is parsed once.
    try:
        with _QuietSqlglot():
            return Analysis(sql, dialect).run()
    except Refused as refused:
        return str(refused)


# sqlglot logs a warning when it falls back to an opaque Command; the caller already reports
# the refusal once, so the records logged while analyze() runs (in this context) are dropped.
_QUIET: contextvars.ContextVar[bool] = contextvars.ContextVar("memo_redis_quiet", default=False)


class _QuietFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not _QUIET.get()


_FILTER = _QuietFilter()


class _QuietSqlglot:
    """While analyze() runs in this context, drop the records sqlglot logs."""

    def __enter__(self) -> None:
        logger = logging.getLogger("sqlglot")
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
        self._token = _QUIET.set(True)

    def __exit__(self, *exc: object) -> None:
        _QUIET.reset(self._token)
