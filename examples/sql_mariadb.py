"""The cat-feeder flow against MariaDB / MySQL (PyMySQL), cached in Redis.

    MEMO_REDIS_MYSQL_DSN=mysql://root@127.0.0.1:3306/test python examples/sql_mariadb.py

Creates its own tables (``memo_feeding_events_<random>`` and so on, so concurrent runs never
collide), fills them with 50,000 feeding events, runs the demo flow and drops the tables again.
Redis comes from REDIS_URL / REDIS_SOCKET_PATH / REDIS_HOST when set, else from a private
embedded server.
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from typing import Any
from urllib.parse import unquote, urlsplit

import pymysql
from _feeder import Tables, describe_counts, fill, open_cache, redact_dsn, run_flow, schema

from memo_redis import cached, invalidates

DSN = os.environ.get("MEMO_REDIS_MYSQL_DSN") or "mysql://root@127.0.0.1:3306/test"
TABLES = Tables.named("memo_", f"_{secrets.token_hex(3)}")
db: pymysql.connections.Connection  # opened in main()


def connect(dsn: str) -> pymysql.connections.Connection:
    """Open ``mysql://user:password@host:port/database`` with autocommit."""
    parts = urlsplit(dsn)
    if parts.scheme not in ("mysql", "mariadb"):
        raise ValueError(f"MEMO_REDIS_MYSQL_DSN must be a mysql:// URL, got {redact_dsn(dsn)!r}")
    return pymysql.connect(
        host=parts.hostname or "127.0.0.1", port=parts.port or 3306,
        user=unquote(parts.username or "root"), password=unquote(parts.password or ""),
        database=parts.path.lstrip("/") or None, autocommit=True, connect_timeout=5,
    )


def execute(sql: str, params: tuple[Any, ...] = ()) -> pymysql.cursors.Cursor:
    cursor = db.cursor()
    cursor.execute(sql, params)
    return cursor


@cached(prefix="sql:{table}", ttl=300)
def top_feeders(table: str, limit: int = 5) -> list[dict[str, Any]]:
    """The feeders that dispensed the most food (a full scan of the feeding events)."""
    rows = execute(
        f"SELECT feeder_id, COUNT(*), SUM(portion_grams), MAX(fed_at) FROM {table}"
        " GROUP BY feeder_id ORDER BY SUM(portion_grams) DESC, feeder_id LIMIT %s",
        (limit,),
    ).fetchall()
    return [{"feeder_id": f, "events": n, "grams": int(g), "last_fed_at": last}
            for f, n, g, last in rows]


@invalidates("sql:{table}:*")
def record_feeding(table: str, feeder_id: int, grams: int) -> int:
    """Log one feeding; every cached read of ``table`` is invalidated afterwards."""
    return execute(
        f"INSERT INTO {table} (feeder_id, fed_at, portion_grams) VALUES (%s, %s, %s)",
        (feeder_id, time.strftime("%Y-%m-%d %H:%M:%S"), grams),
    ).rowcount


def insert_many(table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    """PyMySQL turns executemany of one INSERT ... VALUES into multi-row INSERTs."""
    marks = ", ".join(["%s"] * len(columns))
    with db.cursor() as cursor:
        cursor.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)


def main() -> None:
    global db
    print("== memo_redis: MariaDB cat-feeder example ==")
    try:
        db = connect(DSN)
    except pymysql.MySQLError as exc:
        sys.exit(f"MariaDB not reachable at {redact_dsn(DSN)}: {exc}; set MEMO_REDIS_MYSQL_DSN")
    with open_cache() as cache:
        try:
            started = time.perf_counter()
            for table in TABLES.all():
                execute(f"DROP TABLE IF EXISTS {table}")
            for statement in schema(TABLES, "BIGINT AUTO_INCREMENT PRIMARY KEY"):
                execute(statement)
            counts = fill(insert_many, TABLES)
            version = execute("SELECT VERSION()").fetchone()
            print(f"database:     MariaDB {version[0] if version else '?'} at {redact_dsn(DSN)} "
                  f"with {describe_counts(counts)} "
                  f"(built in {time.perf_counter() - started:.2f} s)")
            run_flow(cache, top_feeders, record_feeding, TABLES.events)
        finally:
            for table in TABLES.all():
                execute(f"DROP TABLE IF EXISTS {table}")
            db.close()
            print(f"cleanup:      dropped {', '.join(TABLES.all())}")


if __name__ == "__main__":
    main()
