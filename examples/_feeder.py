"""Shared pieces of the examples: the cat-feeder schema and data, the Redis set-up, the demo flow.

The domain is the connected cat feeder of the seed design: users own feeders, feeders follow
feeding schedules and log feeding events. Everything here is plain DB-API and works unchanged
with sqlite3, psycopg 3 and PyMySQL; only the bulk-insert function and the auto-increment id
type differ per database.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from memo_redis import RedisCaching, set_default_cache
from memo_redis.keys import glob_escape
from memo_redis.servers import serve_from_env_or_embedded

N_USERS = 200
FEEDERS_PER_USER = 2.5
SCHEDULES_PER_FEEDER = 3
N_EVENTS = 50_000
REPEAT = 50  # calls per side of the latency comparison
_REDIS_VARIABLES = ("REDIS_URL", "REDIS_SOCKET_PATH", "REDIS_HOST", "REDIS_CLUSTER_NODES",
                    "REDIS_SENTINELS")
_GONE = object()


@dataclass(frozen=True)
class Tables:
    """The four table names (prefixed/suffixed on shared database servers)."""

    users: str = "users"
    feeders: str = "feeders"
    schedules: str = "feeding_schedules"
    events: str = "feeding_events"

    @classmethod
    def named(cls, prefix: str = "", suffix: str = "") -> Tables:
        """Tables called ``{prefix}users{suffix}`` and so on."""
        return cls(*(prefix + name + suffix for name in (
            "users", "feeders", "feeding_schedules", "feeding_events")))

    def all(self) -> tuple[str, str, str, str]:
        """Every table, children first (the order to drop them in)."""
        return self.events, self.schedules, self.feeders, self.users


def schema(t: Tables, auto_id: str) -> list[str]:
    """CREATE TABLE statements; ``auto_id`` is the database's auto-increment primary key type."""
    return [
        f"CREATE TABLE {t.users} (id INTEGER PRIMARY KEY, name VARCHAR(64) NOT NULL,"
        " email VARCHAR(128) NOT NULL)",
        f"CREATE TABLE {t.feeders} (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL,"
        " name VARCHAR(64) NOT NULL, location VARCHAR(64) NOT NULL)",
        f"CREATE TABLE {t.schedules} (id INTEGER PRIMARY KEY, feeder_id INTEGER NOT NULL,"
        " time_of_day VARCHAR(5) NOT NULL, portion_grams INTEGER NOT NULL)",
        f"CREATE TABLE {t.events} (id {auto_id}, feeder_id INTEGER NOT NULL,"
        " fed_at VARCHAR(19) NOT NULL, portion_grams INTEGER NOT NULL)",
    ]


def generate(n_events: int = N_EVENTS, seed: int = 7) -> dict[str, list[tuple[Any, ...]]]:
    """Deterministic rows for each table (keyed by the default table names)."""
    rng = random.Random(seed)
    cats = ["Felix", "Luna", "Milo", "Nala", "Simba", "Cleo", "Oscar", "Tigger"]
    rooms = ["kitchen", "hallway", "garage", "balcony", "office"]
    users = [(i, f"{rng.choice(cats)} owner {i}", f"owner{i}@example.com")
             for i in range(1, N_USERS + 1)]
    n_feeders = int(N_USERS * FEEDERS_PER_USER)
    feeders = [(i, rng.randint(1, N_USERS), f"{rng.choice(cats)}'s feeder", rng.choice(rooms))
               for i in range(1, n_feeders + 1)]
    schedules = [
        (f * SCHEDULES_PER_FEEDER + k + 1, f + 1, f"{7 + 6 * k:02d}:{rng.choice((0, 30)):02d}",
         rng.randint(15, 40))
        for f in range(n_feeders) for k in range(SCHEDULES_PER_FEEDER)
    ]
    start = datetime(2025, 1, 1)
    events = [
        (rng.randint(1, n_feeders),
         (start + timedelta(minutes=rng.randint(0, 60 * 24 * 300))).isoformat(sep=" "),
         rng.randint(10, 45))
        for _ in range(n_events)
    ]
    return {"users": users, "feeders": feeders, "feeding_schedules": schedules,
            "feeding_events": events}


InsertMany = Callable[[str, tuple[str, ...], list[tuple[Any, ...]]], None]


def fill(insert_many: InsertMany, t: Tables, n_events: int = N_EVENTS) -> dict[str, int]:
    """Insert the generated rows with ``insert_many(table, columns, rows)``; return row counts."""
    rows = generate(n_events)
    plan = [
        (t.users, ("id", "name", "email"), rows["users"]),
        (t.feeders, ("id", "user_id", "name", "location"), rows["feeders"]),
        (t.schedules, ("id", "feeder_id", "time_of_day", "portion_grams"),
         rows["feeding_schedules"]),
        (t.events, ("feeder_id", "fed_at", "portion_grams"), rows["feeding_events"]),
    ]
    for table, columns, data in plan:
        insert_many(table, columns, data)
    return {table: len(data) for table, _, data in plan}


def describe_counts(counts: dict[str, int]) -> str:
    """``"200 users, 500 feeders, ..."``."""
    return ", ".join(f"{n:,} {table}" for table, n in counts.items())


def redact_dsn(dsn: str) -> str:
    """The DSN with its password replaced by ``***`` (URL or ``key=value`` form)."""
    if "://" not in dsn:
        return re.sub(r"(password\s*=\s*)\S+", r"\1***", dsn)
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


@contextlib.contextmanager
def open_cache() -> Iterator[RedisCaching]:
    """The Redis named by ``REDIS_URL``/``REDIS_SOCKET_PATH``/``REDIS_HOST``, else a private one.

    The cache becomes the default cache of ``@cached``/``@invalidates`` for the block.
    """
    source = ("from the environment" if any(os.environ.get(v) for v in _REDIS_VARIABLES)
              else "embedded private server, removed on exit")
    with serve_from_env_or_embedded() as args:
        cache = RedisCaching(args)
        set_default_cache(cache)
        try:
            version = cache.client.info("server").get("redis_version", "?")
            print(f"redis:        {args.describe()} (version {version}, {source})")
            yield cache
        finally:
            set_default_cache(None)
            cache.close()


def timed(fn: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    """``(fn(*args), elapsed milliseconds)``."""
    started = time.perf_counter()
    result = fn(*args)
    return result, (time.perf_counter() - started) * 1000


def median_ms(fn: Callable[..., Any], *args: Any, repeat: int = REPEAT) -> float:
    """Median wall time of ``repeat`` calls, in milliseconds."""
    return statistics.median(timed(fn, *args)[1] for _ in range(repeat))


def show(row: dict[str, Any]) -> str:
    """One line for a top-feeders row."""
    return (f"feeder {row['feeder_id']}: {row['events']} events, {row['grams']:,} g, "
            f"last fed {row['last_fed_at']}")


def run_flow(cache: RedisCaching, top_feeders: Any, record_feeding: Any, table: str) -> None:
    """Miss, hits, update, automatic invalidation, fresh value, latency and hit rate.

    ``top_feeders(table)`` is ``@cached(prefix="sql:{table}")``; ``record_feeding(table,
    feeder_id, grams)`` is ``@invalidates("sql:{table}:*")``. Exits non-zero if the fresh value
    does not show the update.
    """
    # Entries of an earlier run against the same Redis describe a database that is gone.
    cache.invalidate(f"sql:{glob_escape(table)}:*")
    key = top_feeders.cache_key(table)
    rows, ms = timed(top_feeders, table)
    print(f"miss:         top_feeders({table!r}) -> {show(rows[0])}  [database, {ms:.2f} ms]")
    print(f"              key {key}")
    for _ in range(3):
        again, ms = timed(top_feeders, table)
        assert again == rows
        print(f"hit:          top_feeders({table!r}) -> {show(again[0])}  [cache, {ms:.3f} ms]")

    best = rows[0]
    inserted = record_feeding(table, best["feeder_id"], 40)
    print(f"update:       record_feeding({table!r}, feeder_id={best['feeder_id']}, grams=40)"
          f" -> {inserted} row inserted")
    state = "still cached (BUG)" if cache.get(key, _GONE) is not _GONE else "gone"
    print(f"invalidation: @invalidates('sql:{{table}}:*') invalidated sql:{table}:* "
          f"automatically; {key} is {state}")

    fresh, ms = timed(top_feeders, table)
    top = next(r for r in fresh if r["feeder_id"] == best["feeder_id"])
    print(f"fresh:        top_feeders({table!r}) -> {show(top)}  [database, {ms:.2f} ms]")
    if (top["events"], top["grams"]) != (best["events"] + 1, best["grams"] + 40):
        raise SystemExit(f"stale value after the update: {show(top)}")

    db_ms = median_ms(top_feeders.__wrapped__, table)
    cache_ms = median_ms(top_feeders, table)
    print(f"latency:      database median {db_ms:.2f} ms vs cache median {cache_ms:.3f} ms "
          f"over {REPEAT} calls each ({db_ms / cache_ms:.0f}x faster)")
    info = top_feeders.cache_info()
    rate = 100.0 * info.hits / (info.hits + info.misses)
    print(f"hit rate:     {rate:.1f}% ({info.hits} hits, {info.misses} misses, "
          f"{info.errors} Redis errors)")
