"""Pure tests of memo_redis.statements: what one SQL statement reads and writes.

Pins, without any server:

* the table-driven cases: for statements in the sqlite, postgres, mysql and generic dialects,
  the kind and the exact sets of tables read and written (joins, subqueries, set operations,
  IN/EXISTS, lateral and derived tables, CTEs including shadowing and recursion, schema-qualified
  and quoted names, every write form: INSERT ... SELECT, upserts, UPDATE ... FROM, DELETE ...
  USING, MySQL multi-table writes, MERGE, TRUNCATE, DDL, RETURNING, data-modifying CTEs);
* the refusals: text whose tables cannot be determined raises UnsupportedStatement (a
  MemoRedisError and ValueError) with a reason, never a guess;
* the normalized text: insensitive to whitespace, comments and keyword case, sensitive to
  literals and parameters, placeholders kept exactly as written in every driver style;
* dialect names: the accepted names and aliases, and a ValueError naming an unknown one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

pytest.importorskip("sqlglot")

from memo_redis.exceptions import MemoRedisError
from memo_redis.statements import (
    Statement,
    StatementKind,
    UnsupportedStatement,
    analyze,
)

SELECT = StatementKind.SELECT
INSERT = StatementKind.INSERT
UPDATE = StatementKind.UPDATE
DELETE = StatementKind.DELETE
MERGE = StatementKind.MERGE
TRUNCATE = StatementKind.TRUNCATE
DDL = StatementKind.DDL
OTHER = StatementKind.OTHER


def case(
    name: str,
    dialect: str | None,
    sql: str,
    kind: StatementKind,
    reads: Iterable[str] = (),
    writes: Iterable[str] = (),
) -> Any:
    """One row of the table: the id reads ``<dialect>-<name>``."""
    return pytest.param(
        dialect, sql, kind, frozenset(reads), frozenset(writes),
        id=f"{dialect or 'generic'}-{name}",
    )


CASES = [
    # ---- reads: joins, subqueries, set operations
    case("select-qmark", "sqlite", "SELECT id, email FROM users WHERE id = ?", SELECT, ["users"]),
    case("join-pyformat", "postgres",
         "select u.name, o.total from users u join orders o on o.user_id = u.id "
         "where u.id = %s", SELECT, ["users", "orders"]),
    case("left-join-backticks", "mysql",
         "SELECT * FROM `users` LEFT JOIN `orders` ON orders.user_id = users.id",
         SELECT, ["users", "orders"]),
    case("three-joins-named", "sqlite",
         "SELECT * FROM a JOIN b ON a.id = b.a_id LEFT JOIN c ON c.id = b.c_id "
         "CROSS JOIN d WHERE a.x = :x", SELECT, ["a", "b", "c", "d"]),
    case("in-subquery", "postgres",
         "SELECT * FROM users WHERE id IN (SELECT user_id FROM orders WHERE total > $1)",
         SELECT, ["users", "orders"]),
    case("not-in-subquery", "mysql",
         "SELECT * FROM users WHERE id NOT IN (SELECT user_id FROM bans)", SELECT,
         ["users", "bans"]),
    case("exists-correlated", "postgres",
         "SELECT * FROM users u WHERE EXISTS (SELECT 1 FROM orders o WHERE o.user_id = u.id)",
         SELECT, ["users", "orders"]),
    case("scalar-subquery-in-select", "sqlite",
         "SELECT name, (SELECT count(*) FROM orders WHERE orders.user_id = users.id) AS n "
         "FROM users", SELECT, ["users", "orders"]),
    case("derived-table", "sqlite",
         "SELECT t.n FROM (SELECT user_id, count(*) AS n FROM orders GROUP BY user_id) AS t "
         "WHERE t.n > ?", SELECT, ["orders"]),
    case("nested-derived-tables", "mysql",
         "SELECT * FROM (SELECT * FROM (SELECT id FROM payments) AS p1) AS p2", SELECT,
         ["payments"]),
    case("having-subquery", "postgres",
         "SELECT user_id FROM orders GROUP BY user_id "
         "HAVING sum(total) > (SELECT avg(limit_amount) FROM plans)", SELECT,
         ["orders", "plans"]),
    case("union", "postgres", "SELECT id FROM customers UNION SELECT id FROM suppliers",
         SELECT, ["customers", "suppliers"]),
    case("union-all-named-params", "mysql",
         "SELECT id FROM a WHERE x = %(x)s UNION ALL SELECT id FROM b WHERE y = %(y)s",
         SELECT, ["a", "b"]),
    case("intersect", "postgres", "SELECT id FROM a INTERSECT SELECT id FROM b", SELECT,
         ["a", "b"]),
    case("except", "sqlite", "SELECT id FROM a EXCEPT SELECT id FROM b", SELECT, ["a", "b"]),
    case("lateral-subquery", "postgres",
         "SELECT u.id, last.total FROM users u CROSS JOIN LATERAL "
         "(SELECT total FROM orders o WHERE o.user_id = u.id ORDER BY id DESC LIMIT 1) last",
         SELECT, ["users", "orders"]),
    case("lateral-derived", "mysql",
         "SELECT * FROM users u JOIN LATERAL (SELECT * FROM orders o WHERE o.user_id = u.id) "
         "AS x ON TRUE", SELECT, ["users", "orders"]),
    case("window-and-builtins", "postgres",
         "SELECT id, row_number() OVER (PARTITION BY team ORDER BY score DESC), "
         "coalesce(nick, lower(name)), now() FROM players", SELECT, ["players"]),
    case("table-command", "postgres", "TABLE users", SELECT, ["users"]),
    case("no-table", "postgres", "SELECT 1 + 1", SELECT),
    case("values", "postgres", "VALUES (1, 'a'), (2, 'b')", SELECT),
    case("builtin-not-modelled", "sqlite", "SELECT datetime('now'), printf('%d', 3)", SELECT),
    case("table-function", "postgres", "SELECT g FROM generate_series(1, 10) AS g", SELECT),
    case("for-update", "postgres",
         "SELECT balance FROM accounts WHERE id = %s FOR UPDATE", SELECT, ["accounts"]),
    case("for-update-skip-locked", "mysql",
         "SELECT * FROM jobs WHERE state = 'ready' LIMIT 1 FOR UPDATE SKIP LOCKED", SELECT,
         ["jobs"]),
    case("escaped-backslash", "mysql", r"SELECT * FROM t WHERE path = 'C:\\' AND a = %s",
         SELECT, ["t"]),
    case("lock-in-share-mode", "mysql", "SELECT * FROM t LOCK IN SHARE MODE", SELECT, ["t"]),
    case("limit-offset-params", "mysql", "SELECT * FROM posts ORDER BY id LIMIT %s, %s",
         SELECT, ["posts"]),
    case("index-hints", "mysql",
         "SELECT * FROM t USE INDEX (i) STRAIGHT_JOIN u ON t.id = u.id", SELECT, ["t", "u"]),
    case("indexed-by-is-not-a-table", "sqlite", "SELECT * FROM t INDEXED BY t_idx", SELECT,
         ["t"]),
    case("subquery-in-order-by", "postgres",
         "SELECT * FROM t ORDER BY (SELECT max(v) FROM u)", SELECT, ["t", "u"]),
    case("dollar-quoted-string", "postgres",
         "SELECT * FROM notes WHERE body = $q$it's %s$q$ AND id = %s", SELECT, ["notes"]),
    case("generic-mixed-params", None,
         "SELECT * FROM t WHERE a = %s AND b = ? AND c = :c", SELECT, ["t"]),
    # ---- CTEs
    case("cte", "postgres",
         "WITH recent AS (SELECT * FROM orders WHERE created > now() - interval '1 day') "
         "SELECT * FROM recent JOIN users ON users.id = recent.user_id", SELECT,
         ["orders", "users"]),
    case("cte-shadows-table", "postgres",
         "WITH users AS (SELECT * FROM accounts WHERE active) SELECT * FROM users", SELECT,
         ["accounts"]),
    case("cte-self-name-not-recursive", "postgres",
         "WITH users AS (SELECT * FROM users WHERE active) SELECT * FROM users", SELECT,
         ["users"]),
    case("cte-chain", "sqlite",
         "WITH a AS (SELECT * FROM t1), b AS (SELECT * FROM a JOIN t2 USING (id)) "
         "SELECT * FROM b", SELECT, ["t1", "t2"]),
    case("cte-recursive", "postgres",
         "WITH RECURSIVE tree AS (SELECT id, parent FROM nodes WHERE id = $1 UNION ALL "
         "SELECT n.id, n.parent FROM nodes n JOIN tree ON n.parent = tree.id) "
         "SELECT * FROM tree", SELECT, ["nodes"]),
    case("cte-recursive-sqlite", "sqlite",
         "WITH RECURSIVE cnt(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM cnt WHERE x < 10) "
         "SELECT x FROM cnt", SELECT),
    case("cte-scoped-to-subquery", "postgres",
         "SELECT * FROM (WITH x AS (SELECT * FROM a) SELECT * FROM x) AS s JOIN x ON s.id = x.id",
         SELECT, ["a", "x"]),
    case("cte-in-union-and-in", "mysql",
         "WITH vip AS (SELECT id FROM customers WHERE tier = 'gold') "
         "SELECT * FROM orders WHERE customer_id IN (SELECT id FROM vip) "
         "UNION SELECT * FROM archived_orders", SELECT,
         ["customers", "orders", "archived_orders"]),
    case("cte-forward-reference-is-a-table", "postgres",
         "WITH a AS (SELECT * FROM b), b AS (SELECT * FROM t) SELECT * FROM a JOIN b ON TRUE",
         SELECT, ["b", "t"]),
    case("cte-nested-in-cte", "postgres",
         "WITH a AS (WITH b AS (SELECT * FROM c) SELECT * FROM b) SELECT * FROM a, b", SELECT,
         ["c", "b"]),
    # ---- names
    case("schema-qualified", "postgres",
         "SELECT * FROM public.users JOIN users ON TRUE JOIN billing.invoices ON TRUE", SELECT,
         ["public.users", "users", "billing.invoices"]),
    case("quoted-keeps-case", "postgres",
         'SELECT * FROM "Users" JOIN USERS ON TRUE JOIN "Audit"."Log" ON TRUE', SELECT,
         ["Users", "users", "Audit.Log"]),
    case("quoted-keeps-case-generic", None, 'SELECT * FROM "Users", Orders', SELECT,
         ["Users", "orders"]),
    case("mysql-folds-quoted", "mysql", "SELECT * FROM `Users` JOIN Shop.ORDERS ON TRUE",
         SELECT, ["users", "shop.orders"]),
    case("sqlite-folds-quoted", "sqlite", 'SELECT * FROM "Users", main.Orders', SELECT,
         ["users", "main.orders"]),
    # PostgreSQL folds only ASCII letters of unquoted names (UTF-8): ÄPFEL is "Äpfel".
    case("postgres-folds-ascii-only", "postgres", 'SELECT * FROM ÄPFEL JOIN "Äpfel" ON TRUE',
         SELECT, ["Äpfel"]),
    case("catalog-schema-table", "postgres", "SELECT * FROM db.sales.orders", SELECT,
         ["db.sales.orders"]),
    # ---- INSERT
    case("insert-values", "sqlite", "INSERT INTO users (email) VALUES (?)", INSERT,
         writes=["users"]),
    case("insert-select", "postgres",
         "INSERT INTO archive (id, total) SELECT o.id, o.total FROM orders o "
         "JOIN users u ON u.id = o.user_id WHERE o.created < %s", INSERT,
         ["orders", "users"], ["archive"]),
    case("insert-on-conflict-returning", "postgres",
         "INSERT INTO counters (name, n) VALUES (%(name)s, 1) ON CONFLICT (name) "
         "DO UPDATE SET n = counters.n + 1 RETURNING n", INSERT, writes=["counters"]),
    case("insert-on-conflict-nothing", "postgres",
         "INSERT INTO tags (name) VALUES ($1) ON CONFLICT DO NOTHING", INSERT, writes=["tags"]),
    case("upsert", "sqlite",
         "INSERT INTO kv (k, v) VALUES (:k, :v) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
         INSERT, writes=["kv"]),
    case("insert-or-replace", "sqlite", "INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)",
         INSERT, writes=["kv"]),
    case("replace-into", "sqlite", "REPLACE INTO kv (k, v) VALUES (?, ?)", INSERT,
         writes=["kv"]),
    case("on-duplicate-key-update", "mysql",
         "INSERT INTO stock (sku, qty) VALUES (%s, %s) "
         "ON DUPLICATE KEY UPDATE qty = qty + VALUES(qty)", INSERT, writes=["stock"]),
    case("replace-into", "mysql", "REPLACE INTO sessions (id, data) VALUES (%s, %s)", INSERT,
         writes=["sessions"]),
    case("insert-ignore-set", "mysql", "INSERT IGNORE INTO seen SET url = %s", INSERT,
         writes=["seen"]),
    case("insert-select-with-cte", "postgres",
         "WITH src AS (SELECT * FROM staging WHERE ok) INSERT INTO facts SELECT * FROM src",
         INSERT, ["staging"], ["facts"]),
    case("insert-select-on-duplicate-key", "mysql",
         "INSERT INTO totals (k, n) SELECT k, count(*) FROM hits GROUP BY k "
         "ON DUPLICATE KEY UPDATE n = VALUES(n)", INSERT, ["hits"], ["totals"]),
    case("insert-scalar-subquery", "sqlite",
         "INSERT INTO t (id) VALUES ((SELECT max(id) + 1 FROM t))", INSERT, ["t"], ["t"]),
    case("insert-qualified", "postgres", "INSERT INTO audit.log (msg) VALUES (%s)", INSERT,
         writes=["audit.log"]),
    case("insert-select-itself", "sqlite", "INSERT INTO t SELECT * FROM t", INSERT, ["t"],
         ["t"]),
    # ---- UPDATE
    case("update", "sqlite", "UPDATE users SET email = ? WHERE id = ?", UPDATE,
         writes=["users"]),
    case("update-from", "postgres",
         "UPDATE orders o SET status = 'vip' FROM users u WHERE u.id = o.user_id AND u.vip",
         UPDATE, ["users"], ["orders"]),
    case("update-from", "sqlite",
         "UPDATE inventory SET qty = qty - d.n FROM (SELECT sku, count(*) AS n FROM sales "
         "GROUP BY sku) AS d WHERE inventory.sku = d.sku", UPDATE, ["sales"], ["inventory"]),
    case("update-subquery", "postgres",
         "UPDATE accounts SET total = (SELECT sum(amount) FROM payments "
         "WHERE payments.account_id = accounts.id) RETURNING id", UPDATE, ["payments"],
         ["accounts"]),
    case("update-from-cte", "postgres",
         "WITH x AS (SELECT * FROM src) UPDATE t SET v = x.v FROM x WHERE t.id = x.id",
         UPDATE, ["src"], ["t"]),
    case("update-join", "mysql",
         "UPDATE orders o JOIN users u ON u.id = o.user_id SET o.status = u.tier "
         "WHERE u.id = %s", UPDATE, ["users"], ["orders"]),
    case("update-two-tables", "mysql",
         "UPDATE a, b SET a.x = 1, b.y = 2 WHERE a.id = b.id", UPDATE, writes=["a", "b"]),
    case("update-join-unqualified-set", "mysql",
         "UPDATE a JOIN b ON a.id = b.id SET x = 1", UPDATE, writes=["a", "b"]),
    # ---- DELETE
    case("delete", "sqlite", "DELETE FROM sessions WHERE expires < ?", DELETE,
         writes=["sessions"]),
    case("delete-using", "postgres",
         "DELETE FROM orders o USING users u WHERE u.id = o.user_id AND u.banned", DELETE,
         ["users"], ["orders"]),
    case("delete-in-subquery", "sqlite",
         "DELETE FROM carts WHERE user_id IN (SELECT id FROM users WHERE deleted)", DELETE,
         ["users"], ["carts"]),
    case("delete-returning", "postgres", "DELETE FROM queue WHERE id = $1 RETURNING payload",
         DELETE, writes=["queue"]),
    case("delete-join", "mysql",
         "DELETE o FROM orders AS o JOIN users AS u ON u.id = o.user_id WHERE u.banned",
         DELETE, ["users"], ["orders"]),
    case("delete-two-tables", "mysql",
         "DELETE a, b FROM a JOIN b ON a.id = b.id JOIN c ON c.id = a.id", DELETE, ["c"],
         ["a", "b"]),
    case("data-modifying-cte", "postgres",
         "WITH moved AS (DELETE FROM queue WHERE done RETURNING *) "
         "INSERT INTO finished SELECT * FROM moved", INSERT, writes=["queue", "finished"]),
    case("select-over-delete-cte", "postgres",
         "WITH gone AS (DELETE FROM sessions WHERE expires < now() RETURNING id) "
         "SELECT count(*) FROM gone", DELETE, writes=["sessions"]),
    # ---- MERGE, TRUNCATE
    case("merge", "postgres",
         "MERGE INTO stock s USING deliveries d ON s.sku = d.sku "
         "WHEN MATCHED THEN UPDATE SET qty = s.qty + d.qty "
         "WHEN NOT MATCHED THEN INSERT (sku, qty) VALUES (d.sku, d.qty)", MERGE,
         ["deliveries"], ["stock"]),
    case("merge-subquery-source", "postgres",
         "MERGE INTO totals t USING (SELECT user_id, sum(total) AS s FROM orders "
         "JOIN users ON users.id = orders.user_id GROUP BY user_id) src "
         "ON t.user_id = src.user_id WHEN MATCHED THEN DELETE", MERGE, ["orders", "users"],
         ["totals"]),
    case("merge", None,
         "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET t.v = s.v",
         MERGE, ["s"], ["t"]),
    case("truncate-many", "postgres", "TRUNCATE a, public.b RESTART IDENTITY", TRUNCATE,
         writes=["a", "public.b"]),
    case("truncate-table", "mysql", "TRUNCATE TABLE logs", TRUNCATE, writes=["logs"]),
    # ---- DDL
    case("create-table", "sqlite",
         "CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT)", DDL,
         writes=["notes"]),
    case("create-table-as", "postgres",
         "CREATE TABLE summary AS SELECT user_id, count(*) FROM orders GROUP BY user_id",
         DDL, ["orders"], ["summary"]),
    case("create-view", "sqlite", "CREATE VIEW active AS SELECT * FROM users WHERE active",
         DDL, ["users"], ["active"]),
    case("create-materialized-view", "postgres",
         "CREATE MATERIALIZED VIEW totals AS SELECT sum(total) FROM orders", DDL, ["orders"],
         ["totals"]),
    case("add-foreign-key", "postgres",
         "ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (user_id) REFERENCES users (id)",
         DDL, ["users"], ["orders"]),
    case("create-index-unnamed", "postgres", "CREATE INDEX ON events (created)", DDL,
         writes=["events"]),
    case("drop-view", "postgres", "DROP VIEW IF EXISTS active", DDL, writes=["active"]),
    case("alter-add-column", "mysql", "ALTER TABLE users ADD COLUMN age INT", DDL,
         writes=["users"]),
    case("alter-rename", "postgres", "ALTER TABLE old_name RENAME TO new_name", DDL,
         writes=["old_name", "new_name"]),
    case("alter-rename", "sqlite", "ALTER TABLE a RENAME TO b", DDL, writes=["a", "b"]),
    case("rename-table", "mysql", "RENAME TABLE a TO b, shop.c TO shop.d", DDL,
         writes=["a", "b", "shop.c", "shop.d"]),
    case("drop-tables", "postgres", "DROP TABLE IF EXISTS a, s.b CASCADE", DDL,
         writes=["a", "s.b"]),
    case("create-index", "postgres", "CREATE UNIQUE INDEX idx_email ON app.users (email)",
         DDL, writes=["app.users"]),
    case("create-index", "sqlite", "CREATE INDEX idx ON t (a, b)", DDL, writes=["t"]),
    case("drop-index-on-table", "mysql", "DROP INDEX idx_email ON users", DDL,
         writes=["users"]),
    case("select-into", "postgres", "SELECT * INTO backup FROM users", DDL, ["users"],
         ["backup"]),
    # ---- OTHER
    case("begin", "postgres", "BEGIN", OTHER),
    case("commit", "sqlite", "COMMIT", OTHER),
    case("set-variable", "postgres", "SET search_path TO app", OTHER),
    case("set-from-subquery", "mysql", "SET @n = (SELECT count(*) FROM users)", OTHER,
         ["users"]),
]


@pytest.mark.parametrize(("dialect", "sql", "kind", "reads", "writes"), CASES)
def test_reads_and_writes(
    dialect: str | None, sql: str, kind: StatementKind, reads: frozenset[str],
    writes: frozenset[str],
) -> None:
    statement = analyze(sql, dialect=dialect)
    assert (statement.kind, statement.reads, statement.writes) == (kind, reads, writes)
    assert statement.is_write is bool(writes)
    assert statement.is_write is kind.is_write


def test_enough_cases_in_every_dialect() -> None:
    """The table stays the size the issue asks for, across all three dialects."""
    dialects = [p.values[0] for p in CASES]
    assert len(CASES) >= 60
    assert all(dialects.count(d) >= 15 for d in ("sqlite", "postgres", "mysql"))


def refused(name: str, dialect: str | None, sql: str, reason: str) -> Any:
    """A statement that must raise UnsupportedStatement whose message contains ``reason``."""
    return pytest.param(dialect, sql, reason, id=f"{dialect or 'generic'}-{name}")


REFUSED = [
    refused("garbage", "postgres", "SELEC * FROM users", "cannot be parsed"),
    refused("unterminated-string", "sqlite", "SELECT * FROM t WHERE a = 'x", "cannot be"),
    refused("two-statements", "sqlite", "SELECT 1; SELECT 2", "2 statements"),
    refused("two-statements-write", "mysql",
            "UPDATE a SET x = 1; DELETE FROM b", "2 statements"),
    refused("empty", "postgres", "", "empty"),
    refused("only-semicolon", "sqlite", " ; ", "empty"),
    refused("only-comment", "mysql", "-- nothing here", "empty"),
    refused("call", "postgres", "CALL refresh_totals()", "CALL statements"),
    refused("call", "mysql", "CALL refresh_totals(%s)", "CALL statements"),
    refused("execute", "postgres", "EXECUTE fetch_user(1)", "EXECUTE statements"),
    refused("do-block", "postgres", "DO $$ BEGIN DELETE FROM t; END $$", "DO statements"),
    refused("copy-from", "postgres", "COPY users FROM STDIN", "COPY"),
    refused("copy-to", "postgres", "COPY (SELECT * FROM users) TO STDOUT", "COPY"),
    refused("explain", "postgres", "EXPLAIN ANALYZE DELETE FROM users", "EXPLAIN"),
    refused("lock", "postgres", "LOCK TABLE users IN EXCLUSIVE MODE", "LOCK"),
    refused("pragma", "sqlite", "PRAGMA table_info(users)", "PRAGMA"),
    refused("show", "mysql", "SHOW TABLES", "SHOW"),
    refused("user-function", "postgres", "SELECT my_func()", "my_func()"),
    refused("user-function-in-where", "mysql",
            "SELECT * FROM users WHERE id = next_user_id(%s)", "next_user_id()"),
    refused("schema-qualified-function", "postgres", "SELECT app.now()", "app.now()"),
    refused("schema-qualified-builtin", "mysql", "SELECT * FROM t WHERE a = db.lower(%s)",
            "db.lower()"),
    refused("table-function", "postgres", "SELECT * FROM active_users($1)", "active_users()"),
    refused("function-in-insert", "sqlite", "INSERT INTO t VALUES (my_hash(?))", "my_hash()"),
    refused("nextval", "postgres", "SELECT nextval('orders_id_seq')", "nextval()"),
    refused("next-value-for", "mysql", "SELECT NEXT VALUE FOR seq", "cannot be parsed"),
    refused("last-insert-id", "mysql", "SELECT last_insert_id()", "last_insert_id()"),
    refused("select-into-variable", "mysql", "SELECT count(*) INTO @n FROM users",
            "INTO a variable"),
    refused("drop-index-without-table", "postgres", "DROP INDEX idx_email",
            "does not name the table"),
    refused("create-function", "postgres",
            "CREATE FUNCTION f() RETURNS int AS $$ SELECT 1 $$ LANGUAGE sql", "FUNCTION"),
    refused("drop-schema", "postgres", "DROP SCHEMA app CASCADE", "SCHEMA"),
    refused("executable-comment", "mysql", "SELECT * FROM a /*! JOIN b ON TRUE */",
            "executable comment"),
    refused("mysql-versioned-executable-comment", "mysql",
            "SELECT * FROM a /* note */ /*!50000 JOIN b ON TRUE */", "executable comment"),
    refused("backslash-quote", "mysql",
            r"SELECT * FROM a WHERE x = 'a\' OR y IN (SELECT 1 FROM b) -- '", "NO_BACKSLASH"),
    refused("dash-dash-without-space", None,
            "SELECT * FROM a WHERE x = 1--(SELECT max(id) FROM b)", "'--'"),
    refused("nested-comment", None, "SELECT * FROM a /* x /* y */ JOIN c ON TRUE */",
            "nested comment"),
    refused("table-placeholder", "postgres", "SELECT * FROM %s", "placeholder"),
    refused("table-placeholder", "sqlite", "DELETE FROM ? WHERE id = 1", "placeholder"),
    refused("delete-unknown-target", "mysql", "DELETE x FROM a JOIN b ON a.id = b.id",
            "not one of the tables"),
    refused("rename-user", "mysql", "RENAME USER a TO b", "RENAME TABLE"),
    refused("refresh-materialized-view", "postgres", "REFRESH MATERIALIZED VIEW totals",
            "REFRESH"),
    refused("alter-index", "postgres", "ALTER INDEX i RENAME TO j", "ALTER INDEX"),
    refused("grant", "postgres", "GRANT SELECT ON users TO bob", "Grant"),
    refused("savepoint", "postgres", "SAVEPOINT s1", "SAVEPOINT"),
    refused("pyformat-percent", "postgres", "SELECT a %% 2 FROM t", "cannot be parsed"),
]


@pytest.mark.parametrize(("dialect", "sql", "reason"), REFUSED)
def test_refused(dialect: str | None, sql: str, reason: str) -> None:
    with pytest.raises(UnsupportedStatement) as info:
        analyze(sql, dialect=dialect)
    assert reason in str(info.value)
    assert str(info.value).startswith("cannot analyse ")


def test_unsupported_is_a_value_error_of_the_package() -> None:
    assert issubclass(UnsupportedStatement, MemoRedisError)
    assert issubclass(UnsupportedStatement, ValueError)


def test_postgres_does_not_apply_executable_comments() -> None:
    """``/*! ... */`` is only a comment outside MySQL: nothing is hidden in it there."""
    assert analyze("SELECT * FROM a /*! JOIN b */", dialect="postgres").reads == {"a"}


@pytest.mark.parametrize(
    ("dialect", "reads"),
    [("mysql", {"a", "b"}), ("sqlite", {"a"}), ("postgres", {"a"})],
)
def test_dash_dash_follows_the_dialect(dialect: str, reads: set[str]) -> None:
    """MySQL needs a space after ``--`` for a comment: there ``1--(SELECT ...)`` subtracts."""
    sql = "SELECT * FROM a WHERE x = 1--(SELECT max(id) FROM b)"
    assert analyze(sql, dialect=dialect).reads == reads


def test_refusal_logs_nothing_from_sqlglot(caplog: pytest.LogCaptureFixture) -> None:
    """The caller warns once; sqlglot's own "falling back to a Command" record is dropped."""
    with caplog.at_level("DEBUG"), pytest.raises(UnsupportedStatement):
        analyze("CALL refresh_everything()", dialect="sqlite")
    assert [r for r in caplog.records if r.name.startswith("sqlglot")] == []


def test_sqlglot_logging_outside_analyze_is_untouched(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    analyze("SELECT 1", dialect="sqlite")
    with caplog.at_level("WARNING"):
        logging.getLogger("sqlglot").warning("still visible")
    assert [r.message for r in caplog.records] == ["still visible"]


def test_refusals_are_remembered_and_raised_each_time() -> None:
    for _ in range(2):
        with pytest.raises(UnsupportedStatement, match="my_func"):
            analyze("SELECT my_func()", dialect="sqlite")


# --------------------------------------------------------------------------- normalization


def norm(sql: str, dialect: str | None) -> str:
    return analyze(sql, dialect=dialect).normalized


@pytest.mark.parametrize(
    ("dialect", "one", "other"),
    [
        pytest.param("postgres", "SELECT * FROM users WHERE id = %s",
                     "select *\n  from   users\twhere id=%s", id="postgres-whitespace-case"),
        pytest.param("mysql", "SELECT a, b FROM t WHERE a IN (%s, %s) ORDER BY b",
                     "select a,b from t where a in (%s,%s) order by b", id="mysql-commas"),
        pytest.param("sqlite", "SELECT * FROM t WHERE a = :a AND b = ?1",
                     "SELECT * -- all columns\nFROM t /* the table */ WHERE a=:a and b=?1",
                     id="sqlite-comments"),
        pytest.param("postgres", "SELECT count(*) FROM t WHERE d > $1",
                     "SELECT COUNT( * ) FROM t WHERE d>$1", id="postgres-function-case"),
        pytest.param(None, "SELECT * FROM t WHERE a = ?", "select * from t where a = ?;",
                     id="generic-trailing-semicolon"),
    ],
)
def test_normalized_ignores_layout(dialect: str | None, one: str, other: str) -> None:
    assert norm(one, dialect) == norm(other, dialect)


@pytest.mark.parametrize(
    ("dialect", "one", "other"),
    [
        pytest.param("postgres", "SELECT * FROM t WHERE a = 1", "SELECT * FROM t WHERE a = 2",
                     id="literal"),
        pytest.param("sqlite", "SELECT * FROM t WHERE a = 'x'",
                     "SELECT * FROM t WHERE a = 'X'", id="string-case"),
        pytest.param("postgres", "SELECT * FROM t WHERE a = %s",
                     "SELECT * FROM t WHERE a = %(a)s", id="pyformat-style"),
        pytest.param("sqlite", "SELECT * FROM t WHERE a = ?", "SELECT * FROM t WHERE a = :a",
                     id="qmark-vs-named"),
        pytest.param("sqlite", "SELECT * FROM t WHERE a = :a", "SELECT * FROM t WHERE a = :b",
                     id="named"),
        pytest.param("postgres", "SELECT * FROM t WHERE a = $1 AND b = $2",
                     "SELECT * FROM t WHERE a = $2 AND b = $1", id="numbered"),
        pytest.param("postgres", 'SELECT * FROM "Users"', "SELECT * FROM Users",
                     id="quoted-name"),
        pytest.param("mysql", "SELECT * FROM posts LIMIT %s, %s",
                     "SELECT * FROM posts LIMIT %s OFFSET %s", id="mysql-limit-forms"),
        pytest.param("postgres", "SELECT * FROM jobs FOR UPDATE",
                     "SELECT * FROM jobs FOR UPDATE SKIP LOCKED", id="locking"),
    ],
)
def test_normalized_keeps_meaning(dialect: str | None, one: str, other: str) -> None:
    assert norm(one, dialect) != norm(other, dialect)


@pytest.mark.parametrize(
    ("dialect", "sql", "normalized"),
    [
        pytest.param("postgres", "select * from t where a = %s and b = %(b)s",
                     "SELECT * FROM t WHERE a = %s AND b = %(b)s", id="postgres-pyformat"),
        pytest.param("mysql", "select * from t where a = %s and b = %(b)s",
                     "SELECT * FROM t WHERE a = %s AND b = %(b)s", id="mysql-pyformat"),
        pytest.param("mysql", "select * from t where a = ?",
                     "SELECT * FROM t WHERE a = ?", id="mysql-qmark"),
        pytest.param("sqlite", "select * from t where a = ? and b = :b and c = ?3",
                     "SELECT * FROM t WHERE a = ? AND b = :b AND c = ?3", id="sqlite-styles"),
        pytest.param("postgres", "select * from t where a = $1",
                     "SELECT * FROM t WHERE a = $1", id="postgres-numbered"),
        pytest.param(None, "select * from t where a = %s and b = ? and c = :c",
                     "SELECT * FROM t WHERE a = %s AND b = ? AND c = :c", id="generic"),
        pytest.param("postgres", "select * from t where a like 'x%s' and b = %s",
                     "SELECT * FROM t WHERE a LIKE 'x%s' AND b = %s", id="not-inside-strings"),
        pytest.param("postgres", "select a::int from t where b = %s",
                     "SELECT CAST(a AS INT) FROM t WHERE b = %s", id="postgres-cast"),
        pytest.param("mysql", "select * from posts limit %s, %s",
                     "SELECT * FROM posts LIMIT %s /* 2 */ OFFSET %s /* 1 */",
                     id="mysql-moved-positional"),
        pytest.param("mysql", "replace into kv (k, v) values (%s, %s)",
                     "REPLACE INTO kv (k, v) VALUES (%s, %s)", id="mysql-replace"),
        pytest.param("mysql", "rename table a to b", "RENAME TABLE a TO b", id="mysql-rename"),
    ],
)
def test_normalized_text(dialect: str | None, sql: str, normalized: str) -> None:
    assert norm(sql, dialect) == normalized


@pytest.mark.parametrize(("dialect", "sql"), [(p.values[0], p.values[1]) for p in CASES])
def test_normalized_is_stable(dialect: str | None, sql: str) -> None:
    """Analysing the normalized text again gives the same kind and tables, and the same text
    (except where moved positional placeholders were annotated with their rank)."""
    first = analyze(sql, dialect=dialect)
    again = analyze(first.normalized, dialect=dialect)
    assert (again.kind, again.reads, again.writes) == (first.kind, first.reads, first.writes)
    if "/*" not in first.normalized:
        assert again.normalized == first.normalized


# --------------------------------------------------------------------------- dialects


@pytest.mark.parametrize(
    ("alias", "name"),
    [("postgresql", "postgres"), ("PostgreSQL", "postgres"), ("mariadb", "mysql"),
     ("SQLite", "sqlite")],
)
def test_dialect_aliases(alias: str, name: str) -> None:
    sql = "SELECT * FROM t WHERE a = %s" if name != "sqlite" else "SELECT * FROM t WHERE a = ?"
    assert analyze(sql, dialect=alias) == analyze(sql, dialect=name)


@pytest.mark.parametrize("dialect", ["oracle", "tsql", "", "postgres "])
def test_unknown_dialect(dialect: str) -> None:
    with pytest.raises(ValueError, match=repr(dialect)) as info:
        analyze("SELECT 1", dialect=dialect)
    assert not isinstance(info.value, UnsupportedStatement)
    assert "postgres" in str(info.value)


def test_sql_must_be_text() -> None:
    with pytest.raises(TypeError, match="bytes"):
        analyze(b"SELECT 1")  # type: ignore[arg-type]


def test_statement_is_frozen() -> None:
    statement = analyze("SELECT * FROM t", dialect="sqlite")
    assert isinstance(statement, Statement)
    with pytest.raises(AttributeError):
        statement.kind = INSERT  # type: ignore[misc]
