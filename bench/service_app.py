"""The ASGI app of the service benchmark (:mod:`bench.service` runs it under uvicorn).

A small Starlette service over PostgreSQL (psycopg 3 async, a ``psycopg_pool`` connection pool,
autocommit) with three endpoints:

* ``GET /cat/{id}``: one row by primary key;
* ``GET /report/{owner}``: a join + aggregate over the owner's cats and their visits (a few ms);
* ``POST /cat/{id}``: ``version = version + 1`` on one row, then ``@invalidates`` of that row's
  entry and of its owner's report (row-level scopes ``sql:cats:{cat_id}`` and
  ``sql:report:{owner}``, so a write never empties the whole table).

The mode is fixed when the app is built: ``off`` (plain functions: no cache at all), ``redis``
(``@cached``) or ``local`` (``@cached(local=True)``: an in-process L1 in front of Redis).

Every response carries the version it read (for a report: the sum of the owner's cats' versions,
read in the same statement). The app records, in memory, ``(start_ns, end_ns, id, version)`` of
every read and ``(start_ns, end_ns, id, owner, new_version)`` of every write (``time.monotonic_ns``,
a write's end taken after its invalidation returned) and serves them at ``GET /_log``; the driver
checks them for stale reads afterwards. ``GET /_stats`` returns ``cache_info()`` of both cached
functions and the process id. Run alone: ``python -m bench.service_app --help``.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the ``bench`` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from memo_redis import RedisCaching, cached, invalidates

MODES = ("off", "redis", "local")
TTL_SECONDS = 300
LOG_LIMIT = 2_000_000
"""Entries kept per log (reads by primary key, report reads, writes); later ones are counted."""

CAT_SQL = "SELECT id, owner_id, name, color, weight, version FROM {s}.cats WHERE id = %s"
REPORT_SQL = """
WITH owned AS MATERIALIZED (SELECT id, color, version FROM {s}.cats WHERE owner_id = %s)
SELECT o.color, count(*), round(sum(v.cost)::numeric, 2)::float8, max(v.visited_on)::text,
       count(DISTINCT v.vet), (SELECT sum(version) FROM owned)::bigint
FROM owned o JOIN {s}.visits v ON v.cat_id = o.id
GROUP BY o.color ORDER BY o.color
"""
WRITE_SQL = ("UPDATE {s}.cats SET version = version + 1, weight = weight + 0.01 WHERE id = %s "
             "RETURNING version, owner_id")


@dataclass(frozen=True)
class Settings:
    """What the app is built with."""

    mode: str
    dsn: str
    schema: str
    redis_url: str
    cats_per_owner: int
    pool_size: int = 8
    scan_threshold: int | None = None
    """``RedisCaching(scan_threshold=...)``; None keeps memo_redis's default."""


def owner_of(cat_id: int, cats_per_owner: int) -> int:
    """The owner the seed gave cat ``cat_id`` (cats 1..n of owner 1, n+1..2n of owner 2, ...)."""
    return (cat_id - 1) // cats_per_owner + 1


class Log:
    """Bounded in-memory logs of reads and writes."""

    def __init__(self, limit: int = LOG_LIMIT) -> None:
        self.limit = limit
        self.cat: list[tuple[int, int, int, int]] = []
        self.report: list[tuple[int, int, int, int]] = []
        self.writes: list[tuple[int, int, int, int, int]] = []
        self.dropped = 0

    def add(self, entries: list[Any], entry: tuple[int, ...]) -> None:
        """Append ``entry`` unless ``entries`` is full (then count it as dropped)."""
        if len(entries) < self.limit:
            entries.append(entry)
        else:
            self.dropped += 1


def create_app(settings: Settings) -> Starlette:
    """The service in ``settings.mode``; the pool and the cache open and close with its
    lifespan."""
    if settings.mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {settings.mode!r}")
    schema = settings.schema
    if not schema.isidentifier():
        raise ValueError(f"schema must be a plain identifier, got {schema!r}")
    pool = AsyncConnectionPool(settings.dsn, min_size=settings.pool_size,
                               max_size=settings.pool_size, kwargs={"autocommit": True},
                               open=False)
    cat_sql, report_sql, write_sql = (q.format(s=schema) for q in (CAT_SQL, REPORT_SQL, WRITE_SQL))
    log = Log()
    clock = time.monotonic_ns

    async def read_cat(cat_id: int) -> dict[str, Any] | None:
        async with pool.connection() as conn:
            cur = await conn.execute(cat_sql, (cat_id,))
            row = await cur.fetchone()
        if row is None:
            return None
        return {"id": row[0], "owner": row[1], "name": row[2], "color": row[3],
                "weight": row[4], "version": row[5]}

    async def read_report(owner: int) -> dict[str, Any] | None:
        async with pool.connection() as conn:
            cur = await conn.execute(report_sql, (owner,))
            rows = await cur.fetchall()
        if not rows:
            return None
        return {"owner": owner, "version": rows[0][5],
                "colors": [{"color": r[0], "visits": r[1], "cost": r[2], "last_visit": r[3],
                            "vets": r[4]} for r in rows]}

    async def write_cat(cat_id: int, owner: int) -> int:
        async with pool.connection() as conn:  # autocommit: committed when execute returns
            cur = await conn.execute(write_sql, (cat_id,))
            row = await cur.fetchone()
        if row is None:
            raise LookupError(f"no cat {cat_id}")
        if row[1] != owner:
            raise AssertionError(f"cat {cat_id} belongs to owner {row[1]}, not {owner}")
        return int(row[0])

    cache: RedisCaching | None = None
    get_cat: Callable[[int], Awaitable[dict[str, Any] | None]] = read_cat
    get_report: Callable[[int], Awaitable[dict[str, Any] | None]] = read_report
    put_cat: Callable[[int, int], Awaitable[int]] = write_cat
    if settings.mode != "off":
        options: dict[str, Any] = ({} if settings.scan_threshold is None
                                   else {"scan_threshold": settings.scan_threshold})
        cache = RedisCaching(settings.redis_url, **options)
        local = settings.mode == "local"
        get_cat = cached(prefix="sql:cats:{cat_id}", cache=cache, ttl=TTL_SECONDS,
                         local=local)(read_cat)
        get_report = cached(prefix="sql:report:{owner}", cache=cache, ttl=TTL_SECONDS,
                            local=local)(read_report)
        put_cat = invalidates("sql:cats:{cat_id}:*", "sql:report:{owner}:*",
                              cache=cache)(write_cat)

    async def cat(request: Request) -> Response:
        start = clock()
        cat_id: int = request.path_params["id"]
        row = await get_cat(cat_id)
        if row is None:
            return JSONResponse({"error": "no such cat"}, status_code=404)
        log.add(log.cat, (start, clock(), cat_id, row["version"]))
        return JSONResponse(row)

    async def report(request: Request) -> Response:
        start = clock()
        owner: int = request.path_params["owner"]
        result = await get_report(owner)
        if result is None:
            return JSONResponse({"error": "no such owner"}, status_code=404)
        log.add(log.report, (start, clock(), owner, result["version"]))
        return JSONResponse(result)

    async def update(request: Request) -> Response:
        start = clock()
        cat_id: int = request.path_params["id"]
        owner = owner_of(cat_id, settings.cats_per_owner)
        version = await put_cat(cat_id, owner)  # returns after the invalidation returned
        log.add(log.writes, (start, clock(), cat_id, owner, version))
        return JSONResponse({"id": cat_id, "version": version})

    async def get_log(request: Request) -> Response:
        return JSONResponse({"cat": log.cat, "report": log.report, "writes": log.writes,
                             "dropped": log.dropped})

    async def stats(request: Request) -> Response:
        info: dict[str, Any] = {"mode": settings.mode, "pid": os.getpid()}
        for name, fn in (("cat", get_cat), ("report", get_report)):
            counters = getattr(fn, "cache_info", None)
            info[name] = counters()._asdict() if counters is not None else None
        info["log_entries"] = len(log.cat) + len(log.report) + len(log.writes)
        return JSONResponse(info)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await pool.open(wait=True, timeout=30)
        try:
            yield
        finally:
            await pool.close()
            if cache is not None:
                await cache.aclose()
                cache.close()

    return Starlette(routes=[
        Route("/cat/{id:int}", cat, methods=["GET"]),
        Route("/cat/{id:int}", update, methods=["POST"]),
        Route("/report/{owner:int}", report, methods=["GET"]),
        Route("/_log", get_log, methods=["GET"]),
        Route("/_stats", stats, methods=["GET"]),
    ], lifespan=lifespan)


def _die_with_parent(parent: int) -> None:
    """Ask Linux for SIGTERM when the driver dies (even by SIGKILL), so no server is left."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if parent and os.getppid() != parent:
        sys.exit("bench.service_app: the driver is gone")


def main(argv: list[str] | None = None) -> None:
    """Serve the app with uvicorn, one worker, on a loopback port."""
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m bench.service_app",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=MODES, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--schema", required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--cats-per-owner", type=int, required=True)
    parser.add_argument("--pool-size", type=int, default=8)
    parser.add_argument("--scan-threshold", type=int, default=None)
    parser.add_argument("--loop", default="asyncio", help="uvicorn --loop (default asyncio)")
    parser.add_argument("--http", default="h11", help="uvicorn --http (default h11)")
    parser.add_argument("--parent", type=int, default=0, help="exit when this process is gone")
    opts = parser.parse_args(argv)
    _die_with_parent(opts.parent)
    app = create_app(Settings(opts.mode, opts.dsn, opts.schema, opts.redis_url,
                              opts.cats_per_owner, opts.pool_size, opts.scan_threshold))
    # 127.0.0.1 only; one worker; no access log (it would cost more than a cache hit)
    uvicorn.run(app, host="127.0.0.1", port=opts.port, workers=1, loop=opts.loop,
                http=opts.http, access_log=False, log_level="warning", lifespan="on")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
