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

The package's modules, one concern each: :mod:`.model` (the result types),
:mod:`.entry_point` (:func:`analyze`), :mod:`.analysis` (one run, text to statement),
:mod:`.effects` (kind, reads and writes), :mod:`.tables` (naming tables), :mod:`.state`,
:mod:`.dialects`, :mod:`.placeholders` and :mod:`.parsing` (what is used of sqlglot).
"""

from __future__ import annotations

from .entry_point import analyze
from .model import Statement, StatementKind, UnsupportedStatement

__all__ = ["Statement", "StatementKind", "UnsupportedStatement", "analyze"]
