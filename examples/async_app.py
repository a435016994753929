"""The cat-feeder flow with ``async def`` functions (SQLite queries run in worker threads).

    python examples/async_app.py

Also shows stampede protection: 20 concurrent requests for an uncached report run the query once.
Redis comes from REDIS_URL / REDIS_SOCKET_PATH / REDIS_HOST when set, else from a private
embedded server.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from _feeder import Tables, describe_counts, fill, open_cache, schema, show

from memo_redis import cached, invalidates
from memo_redis.sql import table_pattern

TABLES = Tables()
DB_PATH: Path  # set in main()
QUERIES = {"count": 0}


def query(sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run one statement on a fresh connection (sqlite3 connections stay in their thread)."""
    with contextlib.closing(sqlite3.connect(DB_PATH)) as db, db:
        return db.execute(sql, params).fetchall()


@cached(prefix="sql:{table}", ttl=300)
async def top_feeders(table: str, limit: int = 5) -> list[dict[str, Any]]:
    """The feeders that dispensed the most food (a full scan of the feeding events)."""
    QUERIES["count"] += 1
    rows = await asyncio.to_thread(
        query,
        f"SELECT feeder_id, COUNT(*), SUM(portion_grams), MAX(fed_at) FROM {table}"
        " GROUP BY feeder_id ORDER BY SUM(portion_grams) DESC, feeder_id LIMIT ?",
        (limit,),
    )
    return [{"feeder_id": f, "events": n, "grams": g, "last_fed_at": last}
            for f, n, g, last in rows]


@invalidates("sql:{table}:*")
async def record_feeding(table: str, feeder_id: int, grams: int) -> None:
    """Log one feeding; every cached read of ``table`` is invalidated afterwards."""
    await asyncio.to_thread(
        query, f"INSERT INTO {table} (feeder_id, fed_at, portion_grams) VALUES (?, ?, ?)",
        (feeder_id, time.strftime("%Y-%m-%d %H:%M:%S"), grams),
    )


async def timed(coro: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    result = await coro
    return result, (time.perf_counter() - started) * 1000


async def flow() -> None:
    table = TABLES.events
    with open_cache() as cache:
        await cache.ainvalidate(table_pattern(table))  # entries of an earlier run's file
        rows, ms = await timed(top_feeders(table))
        print(f"miss:         await top_feeders({table!r}) -> {show(rows[0])}  "
              f"[database, {ms:.2f} ms]")
        for _ in range(2):
            again, ms = await timed(top_feeders(table))
            print(f"hit:          await top_feeders({table!r}) -> {show(again[0])}  "
                  f"[cache, {ms:.3f} ms]")

        best = rows[0]
        await record_feeding(table, best["feeder_id"], 40)
        print(f"update:       await record_feeding({table!r}, feeder_id={best['feeder_id']}, "
              f"grams=40)")
        key = top_feeders.cache_key(table)
        state = "gone" if await cache.aget(key) is None else "still cached"
        print(f"invalidation: @invalidates('sql:{{table}}:*') invalidated sql:{table}:* "
              f"automatically; {key} is {state}")

        before = QUERIES["count"]
        results = await asyncio.gather(*(top_feeders(table) for _ in range(20)))
        top = next(r for r in results[0] if r["feeder_id"] == best["feeder_id"])
        print(f"fresh:        20 concurrent requests -> {show(top)}; the query ran "
              f"{QUERIES['count'] - before} time(s) (single-flight)")
        if (top["events"], top["grams"]) != (best["events"] + 1, best["grams"] + 40):
            raise SystemExit(f"stale value after the update: {show(top)}")
        print(f"requests:     23 calls of top_feeders, {QUERIES['count']} database queries")
        await cache.aclose()


def main() -> None:
    global DB_PATH
    print("== memo_redis: async cat-feeder example ==")
    with tempfile.TemporaryDirectory(prefix="memo-redis-async-") as tmp:
        DB_PATH = Path(tmp) / "catfeeder.db"
        with contextlib.closing(sqlite3.connect(DB_PATH)) as db, db:
            for statement in schema(TABLES, "INTEGER PRIMARY KEY"):
                db.execute(statement)

            def insert_many(table: str, columns: tuple[str, ...],
                            rows: list[tuple[Any, ...]]) -> None:
                marks = ", ".join("?" * len(columns))
                db.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",
                               rows)

            counts = fill(insert_many, TABLES)
        print(f"database:     {DB_PATH} with {describe_counts(counts)}")
        asyncio.run(flow())


if __name__ == "__main__":
    main()
