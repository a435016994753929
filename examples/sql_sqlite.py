"""The main job: a cat-feeder SQLite database with 50,000 feeding events, cached in Redis.

    python examples/sql_sqlite.py [DATABASE_FILE]

Builds a real SQLite file (in a temporary directory removed on exit, or at DATABASE_FILE /
$MEMO_REDIS_SQLITE_PATH), then shows a cache miss, hits, an update, the automatic invalidation,
the fresh value, the database-vs-cache latency and the hit rate. Redis comes from REDIS_URL /
REDIS_SOCKET_PATH / REDIS_HOST when set, else from a private embedded server.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _feeder import Tables, describe_counts, fill, open_cache, run_flow, schema

from memo_redis import RedisCaching, cached, invalidates
from memo_redis.sql import sql_cache_key, table_pattern, transaction

TABLES = Tables()
MARKER = "memo_redis_demo"  # a file holding this table may be rebuilt; any other is left alone
db: sqlite3.Connection  # opened in main()
db_path: Path  # set in main(): readers on other threads open their own connection to it
_readers = threading.local()


def reader_db() -> sqlite3.Connection:
    """This thread's own connection (another thread's reads see only committed rows)."""
    conn: sqlite3.Connection | None = getattr(_readers, "conn", None)
    if conn is None:
        conn = _readers.conn = sqlite3.connect(db_path)
    return conn


@cached(prefix="sql:{table}", ttl=300)
def grams_of(table: str, feeder_id: int) -> int:
    """All the food one feeder dispensed, read on the calling thread's own connection."""
    row = reader_db().execute(
        f"SELECT COALESCE(SUM(portion_grams), 0) FROM {table} WHERE feeder_id = ?", (feeder_id,)
    ).fetchone()
    return int(row[0])


@invalidates("sql:{table}:*")
def add_portion(conn: sqlite3.Connection, table: str, feeder_id: int, grams: int) -> None:
    """Log one feeding inside the caller's transaction (no commit here)."""
    conn.execute(f"INSERT INTO {table} (feeder_id, fed_at, portion_grams) VALUES (?, ?, ?)",
                 (feeder_id, time.strftime("%Y-%m-%d %H:%M:%S"), grams))


@cached(prefix="sql:{table}", ttl=300)
def top_feeders(table: str, limit: int = 5) -> list[dict[str, Any]]:
    """The feeders that dispensed the most food (a full scan of the feeding events)."""
    rows = db.execute(
        f"SELECT feeder_id, COUNT(*), SUM(portion_grams), MAX(fed_at) FROM {table}"
        " GROUP BY feeder_id ORDER BY SUM(portion_grams) DESC, feeder_id LIMIT ?",
        (limit,),
    ).fetchall()
    return [{"feeder_id": f, "events": n, "grams": g, "last_fed_at": last}
            for f, n, g, last in rows]


@invalidates("sql:{table}:*")
def record_feeding(table: str, feeder_id: int, grams: int) -> int:
    """Log one feeding; every cached read of ``table`` is invalidated afterwards."""
    with db:
        cursor = db.execute(
            f"INSERT INTO {table} (feeder_id, fed_at, portion_grams) VALUES (?, ?, ?)",
            (feeder_id, time.strftime("%Y-%m-%d %H:%M:%S"), grams),
        )
    return cursor.rowcount


@contextlib.contextmanager
def database_path() -> Iterator[Path]:
    """The path from the command line or $MEMO_REDIS_SQLITE_PATH, else one in a temp dir."""
    given = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("MEMO_REDIS_SQLITE_PATH")
    if not given:
        with tempfile.TemporaryDirectory(prefix="memo-redis-sqlite-") as tmp:
            yield Path(tmp) / "catfeeder.db"
        return
    path = Path(given)
    if path.exists():
        try:
            with contextlib.closing(sqlite3.connect(path)) as old:
                ours = old.execute("SELECT 1 FROM sqlite_master WHERE name = ?",
                                   (MARKER,)).fetchone()
        except sqlite3.DatabaseError:  # not an SQLite file at all
            ours = None
        if not ours:
            raise SystemExit(f"{path} exists and was not made by this example; pick another path")
        path.unlink()
    yield path


def build() -> dict[str, int]:
    """Create and fill the tables; return the row count of each."""
    with db:
        for statement in [*schema(TABLES, "INTEGER PRIMARY KEY"), f"CREATE TABLE {MARKER} (x)"]:
            db.execute(statement)

        def insert_many(table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
            marks = ", ".join("?" * len(columns))
            db.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)

        return fill(insert_many, TABLES)


def seed_api(cache: RedisCaching) -> None:
    """The seed's own API on the same data: read-through and write-through by table name."""
    table, columns, where = TABLES.users, ["id", "name", "email"], ["id = 7"]
    cache.invalidate(table_pattern(table))  # entries of an earlier run describe another file
    queries: list[str] = []

    def fetch() -> list[dict[str, Any]]:
        queries.append(table)
        row = db.execute(f"SELECT id, name, email FROM {table} WHERE id = 7").fetchone()
        return [dict(zip(columns, row, strict=True))]

    def read() -> Any:
        return cache.get_data_from_table(table, columns, where, fetcher=fetch)

    first, _ = read(), read()
    print(f"seed API:     cache.get_data_from_table({table!r}, {columns}, {where}) -> "
          f"{first[0]['email']}; 2 reads, {len(queries)} query, key "
          f"{sql_cache_key(table, columns, where)}")

    def write() -> int:
        with db:
            return db.execute(f"UPDATE {table} SET email = ? WHERE id = 7",
                              ("felix@catfeeder.example",)).rowcount

    cache.update_data_in_table(table, ["felix@catfeeder.example"], ["email"], where, writer=write)
    print(f"seed API:     cache.update_data_in_table({table!r}, ...) invalidated sql:{table}:* "
          f"-> {read()[0]['email']}")


def transaction_demo(table: str) -> None:
    """A write that commits after its @invalidates ran, inside transaction(db): a reader on
    another thread caches the old total during the window; the commit invalidates it again."""
    before = grams_of(table, 1)
    seen: list[int] = []
    with transaction(db):                      # BEGIN ... COMMIT
        add_portion(db, table, 1, 40)          # invalidated now, and again after the commit
        reader = threading.Thread(target=lambda: seen.append(grams_of(table, 1)))
        reader.start()
        reader.join()
    after = grams_of(table, 1)
    print(f"transaction:  inside the block another thread read {seen[0]:,} g (the committed "
          f"total) and cached it")
    print(f"transaction:  after the commit feeder 1 shows {after:,} g (was {before:,} g): "
          f"{'fresh' if after == before + 40 else 'STALE'}")
    if after != before + 40:
        raise SystemExit("the cache served a total from before the commit")


def main() -> None:
    global db, db_path
    print("== memo_redis: SQLite cat-feeder example ==")
    with database_path() as path, open_cache() as cache:
        started = time.perf_counter()
        db, db_path = sqlite3.connect(path, check_same_thread=False), path
        try:
            counts = build()
            print(f"database:     {path} with {describe_counts(counts)} "
                  f"(built in {time.perf_counter() - started:.2f} s)")
            run_flow(cache, top_feeders, record_feeding, TABLES.events)
            seed_api(cache)
            transaction_demo(TABLES.events)
        finally:
            db.close()


if __name__ == "__main__":
    main()
