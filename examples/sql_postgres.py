"""The cat-feeder flow against PostgreSQL (psycopg 3), cached in Redis.

    MEMO_REDIS_PG_DSN=postgresql://postgres@127.0.0.1:5432/test python examples/sql_postgres.py

Creates its own tables (``memo_feeding_events_<random>`` and so on, so concurrent runs never
collide), fills them with 50,000 feeding events through COPY, runs the demo flow and drops the
tables again. Redis comes from REDIS_URL / REDIS_SOCKET_PATH / REDIS_HOST when set, else from a
private embedded server.
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from typing import Any

import psycopg
from _feeder import Tables, describe_counts, fill, open_cache, redact_dsn, run_flow, schema

from memo_redis import cached, invalidates

DSN = os.environ.get("MEMO_REDIS_PG_DSN") or "postgresql://postgres@127.0.0.1:5432/test"
TABLES = Tables.named("memo_", f"_{secrets.token_hex(3)}")
db: psycopg.Connection[Any]  # opened in main()


@cached(prefix="sql:{table}", ttl=300)
def top_feeders(table: str, limit: int = 5) -> list[dict[str, Any]]:
    """The feeders that dispensed the most food (a full scan of the feeding events)."""
    rows = db.execute(
        f"SELECT feeder_id, COUNT(*), SUM(portion_grams), MAX(fed_at) FROM {table}"
        " GROUP BY feeder_id ORDER BY SUM(portion_grams) DESC, feeder_id LIMIT %s",
        (limit,),
    ).fetchall()
    return [{"feeder_id": f, "events": n, "grams": int(g), "last_fed_at": last}
            for f, n, g, last in rows]


@invalidates("sql:{table}:*")
def record_feeding(table: str, feeder_id: int, grams: int) -> int:
    """Log one feeding; every cached read of ``table`` is invalidated afterwards."""
    cursor = db.execute(
        f"INSERT INTO {table} (feeder_id, fed_at, portion_grams) VALUES (%s, %s, %s)",
        (feeder_id, time.strftime("%Y-%m-%d %H:%M:%S"), grams),
    )
    return cursor.rowcount


def insert_many(table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    """Bulk load with COPY (much faster than INSERTs)."""
    with db.cursor() as cursor, cursor.copy(
        f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    ) as copy:
        for row in rows:
            copy.write_row(row)


def main() -> None:
    global db
    print("== memo_redis: PostgreSQL cat-feeder example ==")
    try:
        db = psycopg.connect(DSN, autocommit=True, connect_timeout=5)
    except psycopg.Error as exc:
        sys.exit(f"PostgreSQL not reachable at {redact_dsn(DSN)}: {exc}; set MEMO_REDIS_PG_DSN")
    with db, open_cache() as cache:
        try:
            started = time.perf_counter()
            for table in TABLES.all():
                db.execute(f"DROP TABLE IF EXISTS {table}")
            for statement in schema(TABLES, "BIGSERIAL PRIMARY KEY"):
                db.execute(statement)
            counts = fill(insert_many, TABLES)
            version = db.execute("SHOW server_version").fetchone()
            print(f"database:     PostgreSQL {version[0] if version else '?'} at "
                  f"{redact_dsn(DSN)} with {describe_counts(counts)} "
                  f"(built in {time.perf_counter() - started:.2f} s)")
            run_flow(cache, top_feeders, record_feeding, TABLES.events)
        finally:
            for table in TABLES.all():
                db.execute(f"DROP TABLE IF EXISTS {table}")
            print(f"cleanup:      dropped {', '.join(TABLES.all())}")


if __name__ == "__main__":
    main()
