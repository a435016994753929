"""What one SQL statement reads and writes, found with a real SQL parser (sqlglot).

This module is pure: no Redis, no database connection. :func:`analyze` parses one statement
and returns a :class:`Statement`: its kind, the tables it reads, the tables it writes, and a
normalized text for use in a cache key. It is the building block of SQL-aware caching: a SELECT
is cached under every table in ``reads``; a write invalidates every table in ``writes``.

    >>> s = analyze("select * from users u join orders o on o.user_id = u.id where u.id = %s",
    ...             dialect="postgres")
    >>> s.kind, sorted(s.reads), sorted(s.writes), s.is_write
    (<StatementKind.SELECT: 'SELECT'>, ['orders', 'users'], [], False)
    >>> s.normalized
    'SELECT * FROM users AS u JOIN orders AS o ON o.user_id = u.id WHERE u.id = %s'

sqlglot is an optional dependency (``pip install 'memo_redis[sqlglot]'``), imported the first
time :func:`analyze` runs.

Table names
    Unquoted identifiers are folded to lower case, quoted ones keep their case
    (``Users`` and ``users`` are ``"users"``, ``"Users"`` is ``"Users"``), as PostgreSQL and
    the SQL standard do. SQLite and MySQL compare table names without regard to case whether
    quoted or not (MySQL: depending on the server's ``lower_case_table_names``), so in those
    dialects every name is folded to lower case: two names the server might treat as one table
    always give one string. A schema- (or database-) qualified name is written
    ``schema.table`` and is a different string from the bare name: ``public.users`` and
    ``users`` are two names, because which table a bare name means depends on the connection
    (PostgreSQL's ``search_path``, MySQL's current database). Spell tables the same way in reads
    and writes, or invalidate both spellings.

What it cannot see
    The analysis sees the SQL text only, not the schema. A view is reported as a table of its
    own name (a write to a base table is not a write to the views over it); rows changed by
    triggers, by ``ON DELETE/UPDATE CASCADE`` foreign keys, or in an inheritance child or
    partition of a table read through its parent, are not seen either. A function named like
    a built-in (``lower``, ``now``, ``json_extract``...) is taken to be the built-in.

Refused (:class:`UnsupportedStatement`, never a guess)
    text that cannot be parsed; an empty string or several statements; statements that may
    touch tables not named in the text (``EXECUTE``, ``CALL``, ``DO``, ``COPY``, ``EXPLAIN``,
    ``LOCK``, ``PRAGMA``, ``SHOW``, ``REFRESH``, ``GRANT``...); a call to a function that is not
    a known built-in, or to any function named with its schema (a user-defined function may
    read or write any table, so ``SELECT my_func()`` is refused rather than reported as
    reading nothing); sequence calls (``nextval``); ``SELECT ... INTO`` a MySQL variable or
    file; DDL on objects other than tables, views and indexes; ``DROP INDEX`` that does not
    name the table; a table named by a parameter. Text a server could read differently from
    the parser, in the mysql and generic dialects: executable comments (``/*! ... */``) and
    strings holding ``\\'`` (their end depends on MySQL's ``NO_BACKSLASH_ESCAPES``); in the
    generic dialect also ``--`` not followed by a space and nested comments.
"""

from __future__ import annotations

import contextvars
import enum
import functools
import logging
import re
import string
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from memo_redis.exceptions import MemoRedisError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlglot import exp

__all__ = ["Statement", "StatementKind", "UnsupportedStatement", "analyze"]


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
            the module docstring. For a write, the tables read besides its targets (INSERT ...
            SELECT's sources, UPDATE ... FROM and DELETE ... USING's extra tables, MERGE's
            source); a target also appears here when a subquery reads it.
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


class _Named(Protocol):
    @property
    def name(self) -> str: ...


class _Token(Protocol):
    """What is used of a sqlglot token (its class moved between sqlglot versions)."""

    @property
    def token_type(self) -> _Named: ...
    @property
    def text(self) -> str: ...
    @property
    def start(self) -> int: ...
    @property
    def end(self) -> int: ...


# --------------------------------------------------------------------------- dialects

_DIALECTS: dict[str, str] = {
    "sqlite": "sqlite",
    "postgres": "postgres",
    "postgresql": "postgres",
    "mysql": "mysql",
    "mariadb": "mysql",
}


def _dialect_name(dialect: object) -> str | None:
    if dialect is None:
        return None
    if isinstance(dialect, str) and dialect.lower() in _DIALECTS:
        return _DIALECTS[dialect.lower()]
    raise ValueError(
        f"unknown SQL dialect {dialect!r}: use one of {', '.join(sorted(_DIALECTS))} or None"
    )


# --------------------------------------------------------------------------- public entry


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
    name = _dialect_name(dialect)
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


class _Refused(Exception):
    """Internal: the reason a statement is refused (becomes UnsupportedStatement)."""


@functools.lru_cache(maxsize=1024)
def _analyze_cached(sql: str, dialect: str | None) -> Statement | str:
    # Refusals are memoized too (as their reason), so a statement run often is parsed once.
    try:
        with _QuietSqlglot():
            return _Analysis(sql, dialect).run()
    except _Refused as refused:
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


# --------------------------------------------------------------------------- names

_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def _fold(ident: exp.Identifier, dialect: str | None) -> str:
    """A table (or CTE) name part as reported: see "Table names" in the module docstring."""
    name: str = ident.this
    if dialect == "mysql":
        return name.lower()
    if dialect == "sqlite":
        return name.translate(_ASCII_LOWER)  # SQLite folds ASCII letters only
    return name if ident.quoted else name.translate(_ASCII_LOWER)  # PostgreSQL: ASCII only


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Built-in functions sqlglot may not model (it parses them as "anonymous" calls) whose result
# depends on their arguments (or the clock, or chance) and never on a table. Any other unknown
# function is refused: it may be user-defined and read or write any table. Deliberately absent:
# nextval/currval/setval/lastval, pg_*, txid_*, set_config, current_setting, query_to_xml,
# dblink, last_insert_id, found_rows, row_count, get_lock, sleep, benchmark, database, user,
# connection_id, changes, last_insert_rowid, total_changes, load_extension, sqlite_*.
_COMMON_FUNCTIONS = _words(
    """
    abs avg ceil ceiling char_length character_length coalesce concat concat_ws count
    cume_dist date dense_rank exp first_value floor greatest lag last_value lead least left
    length ln log lower ltrim max md5 min mod nth_value ntile nullif octet_length percent_rank
    position power rank repeat replace reverse right round row_number rtrim sign sqrt stddev
    substr substring sum trim trunc upper variance random rand now current_date current_time
    current_timestamp localtime localtimestamp cast lpad rpad hex ifnull instr format
    """
)

_DIALECT_FUNCTIONS: dict[str, frozenset[str]] = {
    "postgres": _words(
        """
        age array_agg array_append array_cat array_length array_lower array_position
        array_positions array_prepend array_remove array_replace array_to_json array_to_string
        array_upper ascii bit_length bool_and bool_or btrim cardinality chr clock_timestamp
        date_bin date_part date_trunc decode encode every extract gen_random_uuid initcap
        isfinite json_agg json_array_elements json_array_elements_text json_array_length
        json_build_array json_build_object json_each json_each_text json_extract_path
        json_extract_path_text json_object json_object_agg json_object_keys json_populate_record
        json_strip_nulls json_typeof jsonb_agg jsonb_array_elements jsonb_array_elements_text
        jsonb_array_length jsonb_build_array jsonb_build_object jsonb_each jsonb_each_text
        jsonb_extract_path jsonb_extract_path_text jsonb_insert jsonb_object jsonb_object_agg
        jsonb_object_keys jsonb_path_exists jsonb_path_query jsonb_path_query_array
        jsonb_path_query_first jsonb_pretty jsonb_set jsonb_strip_nulls jsonb_typeof
        justify_days justify_hours justify_interval make_date make_interval make_time
        make_timestamp make_timestamptz mode num_nonnulls num_nulls percentile_cont
        percentile_disc quote_ident quote_literal quote_nullable regexp_count regexp_instr
        regexp_like regexp_match regexp_matches regexp_replace regexp_split_to_array
        regexp_split_to_table regexp_substr row_to_json sha224 sha256 sha384 sha512 split_part
        starts_with statement_timestamp string_agg string_to_array strpos timeofday to_char
        to_date to_hex to_json to_jsonb to_number to_timestamp transaction_timestamp translate
        unnest uuid_generate_v4 width_bucket generate_series
        """
    ),
    "mysql": _words(
        """
        any_value bin bit_count char conv convert_tz crc32 curdate curtime date_add date_format
        date_sub datediff day dayname dayofmonth dayofweek dayofyear elt export_set field
        find_in_set from_days from_unixtime group_concat hour if inet6_aton inet6_ntoa inet_aton
        inet_ntoa insert json_array json_arrayagg json_contains json_contains_path json_depth
        json_extract json_keys json_length json_merge_patch json_merge_preserve json_object
        json_objectagg json_overlaps json_quote json_remove json_replace json_search json_set
        json_type json_unquote json_valid last_day lcase locate make_set makedate maketime
        microsecond minute month monthname oct ord period_add period_diff quarter regexp_instr
        regexp_like regexp_replace regexp_substr sec_to_time second sha1 sha2 soundex space
        str_to_date strcmp subdate substring_index sysdate time time_format time_to_sec
        timediff timestamp timestampadd timestampdiff to_days to_seconds truncate ucase unhex
        unix_timestamp utc_date utc_time utc_timestamp uuid values week weekday weekofyear year
        yearweek
        """
    ),
    "sqlite": _words(
        """
        char datetime glob group_concat iif json json_array json_array_length json_each
        json_extract json_group_array json_group_object json_insert json_object json_patch
        json_quote json_remove json_replace json_set json_tree json_type json_valid jsonb
        julianday like likelihood likely printf quote randomblob soundex strftime time timediff
        total typeof unhex unicode unixepoch unlikely zeroblob
        """
    ),
}
_DIALECT_FUNCTIONS[""] = frozenset().union(*_DIALECT_FUNCTIONS.values())

# Expression types (sqlglot "keys") that are calls with side effects on sequences.
_REFUSED_FUNCTION_KEYS = frozenset({"nextvaluefor"})

# Statement types (sqlglot keys) and how they are refused.
_TOP_LEVEL_REFUSALS: dict[str, str] = {
    "copy": "COPY moves rows between a table and a file or stream; it is not analysed",
    "pragma": "PRAGMA statements are not analysed",
    "show": "SHOW statements are not analysed",
    "describe": "DESCRIBE statements are not analysed",
}


# --------------------------------------------------------------------------- placeholders

# One alternative per parameter style; which are active depends on the dialect.
_STYLE_PATTERNS: dict[str, str] = {
    "pyformat": r"(?P<pct>%%)|%\((?P<pyname>\w+)\)s|(?P<pyseq>%s)(?!\w)",
    "qmark": r"(?P<qmark>\?)(?!\d)",
    "numeric": r"\?(?P<qnum>\d+)",
    "named": r"(?<![:\w]):(?P<colon>[A-Za-z_]\w*)",
}
_STYLES: dict[str | None, tuple[str, ...]] = {
    "postgres": ("pyformat",),  # $1 is native to sqlglot's postgres dialect; ? is an operator
    "mysql": ("pyformat", "qmark"),
    "sqlite": ("numeric", "qmark", "named"),
    None: ("pyformat", "qmark", "named"),
}
_PLACEHOLDER_RE: dict[str | None, re.Pattern[str]] = {
    d: re.compile("|".join(_STYLE_PATTERNS[s] for s in styles)) for d, styles in _STYLES.items()
}


# An odd number of backslashes, then a quote: escaped in MySQL's default mode, not with
# NO_BACKSLASH_ESCAPES (nor in standard SQL), so the string's extent depends on the server.
_ESCAPED_QUOTE = re.compile(r"(?<!\\)(?:\\\\)*\\['\"]")


@dataclass(frozen=True)
class _Placeholder:
    text: str
    positional: bool  # %s or ? : its meaning is its position


def _is_opaque(token: _Token, sql: str) -> bool:
    """Strings, quoted identifiers: text a placeholder scan must not look into."""
    kind = token.token_type.name
    if kind.endswith("STRING") or kind == "IDENTIFIER":
        return True
    return sql[token.start : token.end + 1] != token.text


# --------------------------------------------------------------------------- the analysis


class _Analysis:
    """One run of :func:`analyze` (the state shared by its steps)."""

    def __init__(self, sql: str, dialect: str | None) -> None:
        self.text = sql  # the text analysed (REPLACE INTO is read as INSERT INTO)
        self.dialect = dialect
        self.functions = _COMMON_FUNCTIONS | _DIALECT_FUNCTIONS[dialect or ""]
        self.prefix = "memo_redis_param_"
        while self.prefix in sql.lower():
            self.prefix += "x_"
        self.placeholders: list[_Placeholder] = []
        self.replace_into = False

    # ---- text -> tree

    def run(self) -> Statement:
        tokens = self._tokenize(self.text)
        first = tokens[0]
        verb = first.text.upper()
        # sqlglot keeps MySQL/SQLite's REPLACE INTO and MySQL's RENAME TABLE as opaque
        # commands. REPLACE INTO has an INSERT's tables: it is parsed as one (the word is
        # swapped for "INSERT " of the same length, so positions in the text do not move).
        if verb == "REPLACE" and self.dialect != "postgres":
            self.text = self.text[: first.start] + "INSERT " + self.text[first.end + 1 :]
            self.replace_into = True
            tokens = self._tokenize(self.text)
        elif verb == "RENAME" and self.dialect in ("mysql", None):
            blank = " " * len(first.text)
            tokens = self._tokenize(self.text[: first.start] + blank + self.text[first.end + 1 :])
            return self._rename(tokens)
        self._check_comments(tokens)
        tree = self._parse(self._substitute(tokens))
        self._check_placeholders(tree)
        kind, reads, writes = self._classify(tree)
        return Statement(kind=kind, reads=reads, writes=writes, normalized=self._normalize(tree))

    def _tokenize(self, text: str) -> Sequence[_Token]:
        from sqlglot.dialects.dialect import Dialect

        try:
            tokens = Dialect.get_or_raise(self.dialect).tokenize(text)
        except Exception as exc:  # TokenError, or a tokenizer bug: never guess
            raise _Refused(f"it cannot be tokenized ({_first_line(exc)})") from None
        if not tokens:
            raise _Refused("it is empty")
        return tokens

    def _check_comments(self, tokens: Sequence[_Token]) -> None:
        """Refuse comments and strings that a server could read differently from the parser.

        MySQL runs the SQL inside ``/*! ... */``, and whether ``\\'`` ends a string depends on
        its sql_mode (``NO_BACKSLASH_ESCAPES``). In the generic dialect the server is unknown,
        so comments whose extent differs between servers are refused too: ``--`` not followed
        by a space (not a comment in MySQL: ``1--(SELECT ...)`` subtracts), and nested
        ``/* /* */ */`` (PostgreSQL nests them, MySQL and SQLite do not).
        """
        if self.dialect not in ("mysql", None):
            return
        for token in tokens:
            if token.token_type.name.endswith("STRING") and _ESCAPED_QUOTE.search(
                self.text, token.start, token.end + 1
            ):
                raise _Refused(
                    "a string holds a backslash before a quote, which ends the string or not "
                    "depending on the server's sql_mode (NO_BACKSLASH_ESCAPES); double the "
                    "quote or pass the value as a parameter"
                )
        gaps: list[str] = []
        covered = 0
        for token in tokens:
            gaps.append(self.text[covered : token.start])
            covered = max(covered, token.end + 1)
        gaps.append(self.text[covered:])
        for gap in gaps:
            i = 0
            while i < len(gap):
                if gap.startswith("--", i):
                    if self.dialect is None and gap[i + 2 : i + 3].strip():
                        raise _Refused(
                            "it holds '--' not followed by a space, a comment in some "
                            "databases and not in MySQL; pass the dialect"
                        )
                    newline = gap.find("\n", i)
                    i = len(gap) if newline < 0 else newline + 1
                elif gap.startswith("/*", i):
                    close = gap.find("*/", i + 2)
                    inner = gap[i + 2 : len(gap) if close < 0 else close]
                    if inner.startswith("!"):
                        raise _Refused(
                            "it holds a MySQL executable comment (/*! ... */), which MySQL "
                            "runs but the parser reads as a comment"
                        )
                    if self.dialect is None and "/*" in inner:
                        raise _Refused(
                            "it holds a nested comment, whose extent differs between "
                            "databases; pass the dialect"
                        )
                    i = len(gap) if close < 0 else close + 2
                else:
                    i += 1

    def _substitute(self, tokens: Sequence[_Token]) -> str:
        """Replace each placeholder with a neutral name sqlglot parses in any dialect.

        Placeholders are looked for only in code (never in strings, quoted names or comments),
        then restored in the normalized text, so they are kept exactly as written.
        """
        sql = self.text
        code = bytearray(len(sql))
        for token in tokens:
            if not _is_opaque(token, sql):
                code[token.start : token.end + 1] = b"\x01" * (token.end + 1 - token.start)
        pieces: list[str] = []
        last = 0
        for match in _PLACEHOLDER_RE[self.dialect].finditer(sql):
            if match.groupdict().get("pct"):
                continue  # %% is a literal % in pyformat, not a placeholder
            if 0 in code[match.start() : match.end()]:
                continue
            positional = bool(match.groupdict().get("pyseq") or match.groupdict().get("qmark"))
            self.placeholders.append(_Placeholder(match.group(0), positional))
            pieces.append(sql[last : match.start()])
            pieces.append(f" {self.prefix}{len(self.placeholders) - 1} ")
            last = match.end()
        pieces.append(sql[last:])
        return "".join(pieces)

    def _parse(self, text: str) -> exp.Expr:
        try:
            statements = _parse_all(text, self.dialect)
        except Exception as exc:  # ParseError, TokenError, or a parser bug: never guess
            raise _Refused(f"it cannot be parsed ({_first_line(exc)})") from None
        if not statements:
            raise _Refused("it is empty")
        if len(statements) > 1:
            raise _Refused(
                f"it holds {len(statements)} statements; analyse one statement at a time"
            )
        return statements[0]

    def _check_placeholders(self, tree: exp.Expr) -> None:
        from sqlglot import exp

        if not self.placeholders:
            return
        for ident in tree.find_all(exp.Identifier):
            if not str(ident.this).startswith(self.prefix):
                continue
            parent = ident.parent
            if (
                not isinstance(parent, exp.Column)
                or ident.arg_key != "this"
                or parent.args.get("table") is not None
            ):
                raise _Refused("a parameter placeholder stands where a name is expected")

    # ---- tree -> kind, reads, writes

    def _classify(
        self, tree: exp.Expr
    ) -> tuple[StatementKind, frozenset[str], frozenset[str]]:
        from sqlglot import exp

        key = tree.key
        if key == "command":
            verb = str(tree.this).upper()
            raise _Refused(
                f"{verb} statements are not analysed: procedures, dynamic SQL and utility "
                "commands may read or write tables not named in their text"
            )
        if key in _TOP_LEVEL_REFUSALS:
            raise _Refused(_TOP_LEVEL_REFUSALS[key])
        if self.replace_into and not isinstance(tree, exp.Insert):
            raise _Refused("it cannot be parsed as REPLACE INTO")
        self._check_functions(tree)

        kind: StatementKind
        targets: list[exp.Table] = []
        excluded: list[exp.Table] = []  # Table nodes that name no table read (index names...)
        if isinstance(
            tree,
            (exp.Select, exp.Union, exp.Intersect, exp.Except, exp.Subquery, exp.Values),
        ):
            kind = StatementKind.SELECT
        elif isinstance(tree, exp.Insert):
            kind = StatementKind.INSERT
        elif isinstance(tree, exp.Update):
            kind = StatementKind.UPDATE
        elif isinstance(tree, exp.Delete):
            kind = StatementKind.DELETE
        elif isinstance(tree, exp.Merge):
            kind = StatementKind.MERGE
        elif key == "truncatetable":
            kind = StatementKind.TRUNCATE
            targets += [t for t in tree.expressions if isinstance(t, exp.Table)]
        elif isinstance(tree, (exp.Create, exp.Drop)) or key in ("alter", "altertable"):
            kind = StatementKind.DDL
            self._ddl(tree, targets, excluded)
        elif key in ("transaction", "commit", "rollback", "set", "use"):
            return StatementKind.OTHER, self._reads_in_queries(tree), frozenset()
        else:
            raise _Refused(
                f"it is not a statement this module analyses (sqlglot reads it as "
                f"{type(tree).__name__})"
            )

        # Every INSERT/UPDATE/DELETE/MERGE/SELECT INTO in the tree, including PostgreSQL's
        # data-modifying WITH clauses, in document order.
        first_write: StatementKind | None = None
        for node in tree.walk():
            write = self._dml(node, targets, excluded)
            if write is not None and first_write is None:
                first_write = write
        if kind is StatementKind.SELECT and first_write is not None:
            kind = first_write

        writes = frozenset(self._written_name(t) for t in targets)
        if kind.is_write and not writes:
            raise _Refused("the table it writes cannot be determined")
        skip = {id(t) for t in targets} | {id(t) for t in excluded}
        reads = frozenset(
            name
            for table in tree.find_all(exp.Table)
            if id(table) not in skip
            and not isinstance(table.parent, exp.Table)  # SQLite's INDEXED BY <index>
            and not self._is_cte_reference(table)
            for name in [self._table_name(table, role="read")]
            if name is not None
        )
        return kind, reads, writes

    def _check_functions(self, tree: exp.Expr) -> None:
        from sqlglot import exp

        for node in tree.walk():
            if node.key in ("anonymous", "anonymousaggfunc"):
                name = node.name.lower()
                if isinstance(node.parent, exp.Dot):
                    schema = node.parent.this.sql(dialect=self.dialect)
                    raise _Refused(
                        f"it calls {schema}.{node.name}(), a function named with its schema, "
                        "which may read or write any table"
                    )
                if name not in self.functions:
                    raise _Refused(
                        f"it calls {node.name}(), which is not a built-in function known to "
                        "read no table: a user-defined function may read or write any table"
                    )
            elif node.key in _REFUSED_FUNCTION_KEYS:
                raise _Refused("it takes the next value of a sequence")

    def _reads_in_queries(self, tree: exp.Expr) -> frozenset[str]:
        """Tables read by subqueries of an OTHER statement (``SET @n = (SELECT ...)``)."""
        from sqlglot import exp

        names: set[str] = set()
        for table in tree.find_all(exp.Table):
            if table.find_ancestor(exp.Select) is None or self._is_cte_reference(table):
                continue
            name = self._table_name(table, role="read")
            if name is not None:
                names.add(name)
        return frozenset(names)

    def _ddl(self, tree: exp.Expr, targets: list[exp.Table], excluded: list[exp.Table]
             ) -> None:
        from sqlglot import exp

        key = tree.key
        kind = str(tree.args.get("kind") or ("TABLE" if key == "altertable" else "")).upper()
        verb = {"create": "CREATE", "drop": "DROP"}.get(key, "ALTER")
        if kind == "INDEX" and verb == "CREATE":
            index = tree.this
            table = index.args.get("table") if isinstance(index, exp.Index) else None
            if not isinstance(table, exp.Table):
                raise _Refused("CREATE INDEX does not name the table of the index")
            targets.append(table)
            return
        if kind == "INDEX" and verb == "DROP":
            on = tree.args.get("cluster")
            table = on.this if isinstance(on, exp.OnProperty) else None
            if not isinstance(table, exp.Table):
                raise _Refused("DROP INDEX does not name the table of the index")
            targets.append(table)
            excluded.extend(self._drop_names(tree))
            return
        if kind not in ("TABLE", "VIEW"):
            raise _Refused(
                f"{verb} {kind or key.upper()} is not analysed: only DDL on tables, views "
                "and indexes names the tables it changes"
            )
        if verb == "DROP":
            targets.extend(self._drop_names(tree))
            return
        this = tree.this
        if isinstance(this, exp.Schema):
            this = this.this
        if not isinstance(this, exp.Table):
            raise _Refused(f"{verb} {kind} does not name a table")
        targets.append(this)
        for action in tree.args.get("actions") or ():
            if action.key in ("renametable", "alterrename") and isinstance(action.this, exp.Table):
                targets.append(action.this)

    @staticmethod
    def _drop_names(tree: exp.Expr) -> list[exp.Table]:
        from sqlglot import exp

        names = [t for t in tree.args.get("tables") or () if isinstance(t, exp.Table)]
        if isinstance(tree.this, exp.Table):
            names.append(tree.this)
        return names

    def _dml(
        self, node: exp.Expr, targets: list[exp.Table], excluded: list[exp.Table]
    ) -> StatementKind | None:
        """Record the targets of one write node; return its kind (None if not a write)."""
        from sqlglot import exp

        if isinstance(node, exp.Select):
            into = node.args.get("into")
            if into is None:
                return None
            if self.dialect == "mysql" or not isinstance(into.this, exp.Table):
                raise _Refused("SELECT ... INTO a variable or file is not analysed")
            targets.append(into.this)
            return StatementKind.DDL
        if not isinstance(node, (exp.Insert, exp.Update, exp.Delete, exp.Merge)):
            return None
        if _in_merge_clause(node):
            return None  # WHEN MATCHED THEN UPDATE ...: writes the MERGE's target
        if isinstance(node, exp.Insert):
            this = node.this
            if isinstance(this, exp.Schema):
                this = this.this
            if not isinstance(this, exp.Table):
                raise _Refused("the table INSERT writes cannot be determined")
            targets.append(this)
            return StatementKind.INSERT
        if isinstance(node, exp.Merge):
            if not isinstance(node.this, exp.Table):
                raise _Refused("the table MERGE writes cannot be determined")
            targets.append(node.this)
            return StatementKind.MERGE
        this = node.this
        if not isinstance(this, exp.Table):
            raise _Refused(f"the table {node.key.upper()} writes cannot be determined")
        joined = [this] + [j.this for j in this.args.get("joins") or ()]
        if isinstance(node, exp.Update):
            targets.extend(self._update_targets(node, joined))
            return StatementKind.UPDATE
        refs = [t for t in node.args.get("tables") or () if isinstance(t, exp.Table)]
        if refs:  # MySQL: DELETE t1, t2 FROM t1 JOIN t2 ...
            excluded.extend(refs)
            using = [t for t in node.args.get("using") or () if isinstance(t, exp.Table)]
            candidates = joined + [
                x for u in using for x in [u, *(j.this for j in u.args.get("joins") or ())]
            ]
            for ref in refs:
                targets.append(self._resolve(ref, candidates, "DELETE"))
        else:  # DELETE FROM t ... / MySQL DELETE FROM t1, t2 USING ...
            targets.extend(t for t in joined if isinstance(t, exp.Table))
        return StatementKind.DELETE

    def _update_targets(self, node: exp.Update, joined: list[exp.Expr]) -> list[exp.Table]:
        """The tables an UPDATE changes: its target, or for MySQL's multi-table UPDATE the
        tables its SET clause assigns (all of them if a column is not qualified)."""
        from sqlglot import exp

        tables = [t for t in joined if isinstance(t, exp.Table)]
        if len(joined) == 1:
            return tables
        found: list[exp.Table] = []
        for assignment in node.expressions:
            column = assignment.this if isinstance(assignment, exp.EQ) else None
            if not isinstance(column, exp.Column) or not column.table:
                return tables
            ref = exp.Table(
                this=column.args["table"], db=column.args.get("db"),
                catalog=column.args.get("catalog"),
            )
            found.append(self._resolve(ref, joined, "UPDATE"))
        return found

    def _resolve(self, ref: exp.Table, candidates: list[exp.Expr], verb: str
                 ) -> exp.Table:
        """The table of ``candidates`` that ``ref`` (an alias or a name) designates."""
        from sqlglot import exp

        wanted = self._written_name(ref)
        for candidate in candidates:
            alias = candidate.args.get("alias")
            if (
                alias is not None and isinstance(alias.this, exp.Identifier)
                and not ref.db and wanted == _fold(alias.this, self.dialect)
            ):
                if not isinstance(candidate, exp.Table):
                    raise _Refused(f"{verb} writes {wanted}, which is not a table")
                return candidate
        for candidate in candidates:
            if (
                isinstance(candidate, exp.Table) and candidate.args.get("alias") is None
                and self._written_name(candidate) == wanted
            ):
                return candidate
        raise _Refused(f"{verb} writes {wanted}, which is not one of the tables it joins")

    def _written_name(self, table: exp.Table) -> str:
        name = self._table_name(table, role="written")
        if name is None:
            raise _Refused("it writes through a function call")
        return name

    def _table_name(self, table: exp.Table, *, role: str) -> str | None:
        """``schema.table`` as reported, or None for a table-valued function call."""
        from sqlglot import exp

        this = table.this
        if isinstance(this, exp.Func):
            return None
        parts = [table.args.get("catalog"), table.args.get("db"), this]
        names: list[str] = []
        for part in parts:
            if part is None:
                continue
            if not isinstance(part, exp.Identifier):
                raise _Refused(
                    f"a table {role} is named by a parameter, variable or expression "
                    f"({table.sql(dialect=self.dialect)})"
                )
            if str(part.this).startswith(self.prefix):
                raise _Refused("a parameter placeholder stands where a table name is expected")
            names.append(_fold(part, self.dialect))
        return ".".join(names)

    def _is_cte_reference(self, table: exp.Table) -> bool:
        """Whether ``table`` names a common table expression in scope rather than a table.

        Inside a WITH list, a CTE sees the CTEs before it, and itself when the list is
        RECURSIVE; the statement body sees them all. A reference the dialects disagree on
        (a CTE naming itself without RECURSIVE, or one defined later) is taken as the table:
        at worst a needless read, never a missed one.
        """
        from sqlglot import exp

        if table.args.get("db") is not None or not isinstance(table.this, exp.Identifier):
            return False
        name = _fold(table.this, self.dialect)
        child: exp.Expr = table
        node = table.parent
        owner: exp.Expr | None = None
        while node is not None:
            if isinstance(node, exp.With):
                ctes = node.expressions
                position = next((i for i, c in enumerate(ctes) if c is child), len(ctes))
                if node.args.get("recursive"):
                    position += 1
                if name in self._cte_names(ctes[:position]):
                    return True
                owner = node.parent
            elif node is not owner:
                with_ = _with_of(node)
                if with_ is not None and name in self._cte_names(with_.expressions):
                    return True
            child, node = node, node.parent
        return False

    def _cte_names(self, ctes: list[exp.Expr]) -> set[str]:
        from sqlglot import exp

        names: set[str] = set()
        for cte in ctes:
            alias = cte.args.get("alias")
            ident = alias.this if alias is not None else None
            if isinstance(ident, exp.Identifier):
                names.add(_fold(ident, self.dialect))
        return names

    # ---- RENAME TABLE a TO b, c TO d (MySQL), which sqlglot keeps as an opaque command

    def _rename(self, tokens: Sequence[_Token]) -> Statement:
        import sqlglot
        from sqlglot import exp

        groups: list[list[_Token]] = [[]]
        if tokens[0].text.upper() != "TABLE":
            raise _Refused("RENAME statements other than RENAME TABLE are not analysed")
        for token in tokens[1:]:
            if token.token_type.name == "SEMICOLON":
                continue
            if token.token_type.name == "COMMA":
                groups.append([])
            else:
                groups[-1].append(token)
        names: list[str] = []
        pairs: list[str] = []
        for group in groups:
            split = [i for i, t in enumerate(group) if t.text.upper() == "TO"]
            if len(split) != 1 or split[0] in (0, len(group) - 1):
                raise _Refused("RENAME TABLE must list pairs of names: old TO new")
            pair: list[str] = []
            for side in (group[: split[0]], group[split[0] + 1 :]):
                text = self.text[side[0].start : side[-1].end + 1]
                try:
                    table = sqlglot.parse_one(text, read=self.dialect, into=exp.Table)
                except Exception as exc:
                    raise _Refused(f"RENAME TABLE names {text!r} ({_first_line(exc)})") from None
                if not isinstance(table, exp.Table):
                    raise _Refused(f"RENAME TABLE names {text!r}, which is not a table")
                names.append(self._written_name(table))
                pair.append(table.sql(dialect=self.dialect))
            pairs.append(" TO ".join(pair))
        return Statement(
            kind=StatementKind.DDL,
            reads=frozenset(),
            writes=frozenset(names),
            normalized="RENAME TABLE " + ", ".join(pairs),
        )

    # ---- normalized text

    def _normalize(self, tree: exp.Expr) -> str:
        from sqlglot import exp
        from sqlglot.errors import ErrorLevel

        # PostgreSQL's dollar-quoted $$text$$ is generated as 'text': make the tree say so, so
        # the round trip below compares like with like (it still checks the quoting).
        for raw in list(tree.find_all(exp.RawString)):
            raw.replace(exp.Literal.string(raw.this))
        try:
            text = tree.sql(
                dialect=self.dialect, comments=False, unsupported_level=ErrorLevel.RAISE
            )
            # Round trip: the text must parse back to the same tree, so two statements that
            # mean different things never share a normalized text through a generator slip.
            same = _parse_all(text, self.dialect) == [tree]
        except Exception as exc:
            raise _Refused(f"it cannot be normalized ({_first_line(exc)})") from None
        if not same:
            raise _Refused("its normalized text would not parse back to the same statement")
        if self.replace_into:
            if not text.startswith("INSERT "):
                raise _Refused("it cannot be normalized as REPLACE INTO")
            text = "REPLACE " + text[len("INSERT ") :]
        if not self.placeholders:
            return text
        sentinel = re.compile(re.escape(self.prefix) + r"(\d+)\b")
        order = [int(m.group(1)) for m in sentinel.finditer(text)]
        if sorted(order) != list(range(len(self.placeholders))):
            raise _Refused("normalizing it would drop or repeat a parameter placeholder")
        positional = [i for i in order if self.placeholders[i].positional]
        # A positional placeholder's meaning is its rank. If generation moved one (MySQL's
        # LIMIT %s, %s becomes LIMIT %s OFFSET %s), each positional placeholder is followed
        # by its original rank in a comment, so the text stays unambiguous with the params.
        ranks = {i: r for r, i in enumerate(sorted(positional), start=1)}
        moved = positional != sorted(positional)

        def restore(match: re.Match[str]) -> str:
            index = int(match.group(1))
            placeholder = self.placeholders[index]
            if moved and placeholder.positional:
                return f"{placeholder.text} /* {ranks[index]} */"
            return placeholder.text

        return sentinel.sub(restore, text)


def _parse_all(text: str, dialect: str | None) -> list[exp.Expr]:
    """The statements of ``text`` (empty ones dropped); raises on any parse error."""
    import sqlglot
    from sqlglot.errors import ErrorLevel

    trees = sqlglot.parse(text, read=dialect, error_level=ErrorLevel.RAISE)
    return [t for t in trees if t is not None]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _with_of(node: exp.Expr) -> exp.With | None:
    from sqlglot import exp

    for value in node.args.values():
        if isinstance(value, exp.With):
            return value
    return None


def _in_merge_clause(node: exp.Expr) -> bool:
    from sqlglot import exp

    parent = node.parent
    while parent is not None:
        if parent.key == "when":
            return True
        if isinstance(parent, exp.Merge):
            return False
        parent = parent.parent
    return False
