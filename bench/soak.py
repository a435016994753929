"""Soak run: decorated reads and writes from several processes while the server is killed.

Starts a private server (:class:`memo_redis.servers.EmbeddedServer`, unix socket, kept across
restarts), and ``--processes`` worker processes that loop over random rows of a shared
"database" (shared-memory arrays holding a version number per row, independent of Redis):

* a read calls ``read_row(row)``, decorated with ``@cached``; it is **wrong** if the value does
  not belong to the row or is corrupt, and **stale** if its version is older than the last
  write of that row that completed before the read started;
* a write bumps the row's version, then invalidates: the whole table (``@invalidates``) or the
  one entry (``read_row.invalidate(row)``), at random.

Every ``--kill-every`` seconds the server is SIGKILLed, left down for ``--down`` seconds and
restarted; the time until every worker is served a cache hit again is the recovery time.
At the end it prints one line per restart and a summary line::

    soak: processes=4 seconds=20.0 calls=181234 reads=163101 writes=18133 hits=120512
      errors=0 stale=0 wrong=0 restarts=4 recovery_max=1.02s recovery_mean=0.88s ok

The exit status is 1 when a caller saw an exception, a read was stale or wrong, or caching did
not resume within ``--max-recovery`` seconds after a restart; else 0.

Usage: ``python bench/soak.py [--processes 4] [--seconds 20] [--kill-every 4] [--down 0.5]``.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import multiprocessing
import queue
import random
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from memo_redis import CachedFunction, RedisArgs, RedisCaching, cached, invalidates
from memo_redis.servers import EmbeddedServer

SPAWN = multiprocessing.get_context("spawn")
RECOVERY_WAIT = 5.0
JOIN_TIMEOUT = 30.0


@dataclass
class WorkerStats:
    """What one worker process counted."""

    calls: int = 0
    reads: int = 0
    writes: int = 0
    hits: int = 0
    errors: int = 0
    stale: int = 0
    wrong: int = 0
    log_errors: int = 0
    samples: list[str] = field(default_factory=list)


class _Counter(logging.Handler):
    """Counts memo_redis log records at error level (failed invalidations)."""

    def __init__(self, stats: WorkerStats) -> None:
        super().__init__(logging.ERROR)
        self.stats = stats

    def emit(self, record: logging.LogRecord) -> None:
        self.stats.log_errors += 1


def checksum(row: int, version: int) -> str:
    """A digest tying a cached value to its row and version, to detect wrong values."""
    return hashlib.sha1(f"{row}:{version}".encode()).hexdigest()[:12]


def worker(index: int, socket_path: str, options: dict[str, Any], versions: Any,
           completed: Any, last_hit: Any, ready: Any, stop: Any, results: Any) -> None:
    """Loop reads and writes until ``stop`` is set, then put a WorkerStats dict on ``results``.

    ``options``: rows, write_ratio, seed and race_protection.
    """
    stats = WorkerStats()
    logger = logging.getLogger("memo_redis")
    logger.addHandler(_Counter(stats))
    logger.propagate = False  # the parent prints the summary; outages are expected here
    rows, write_ratio = options["rows"], options["write_ratio"]
    rng = random.Random(options["seed"] * 1000 + index)
    cache = RedisCaching(RedisArgs(socket_path=socket_path, socket_timeout=0.5,
                                   socket_connect_timeout=0.5), lock_wait=2.0, lock_timeout=5.0)
    cache.race_protection = options["race_protection"]

    def fetch(row: int) -> dict[str, Any]:
        with versions.get_lock():
            version = versions[row]
        return {"row": row, "version": version, "check": checksum(row, version)}

    read_row: CachedFunction[[int], dict[str, Any]] = cached(
        cache=cache, prefix="soak:rows", ttl=30)(fetch)

    def bump(row: int) -> int:
        with versions.get_lock():
            versions[row] += 1
            version: int = versions[row]
        return version

    write_table: Callable[[int], int] = invalidates("soak:rows:*", cache=cache)(bump)

    def write_entry(row: int) -> int:
        version = bump(row)
        read_row.invalidate(row)
        return version

    def read(row: int) -> None:
        with completed.get_lock():
            floor = completed[row]
        hits = read_row.cache_info().hits
        value = read_row(row)
        stats.reads += 1
        if read_row.cache_info().hits > hits:
            stats.hits += 1
            last_hit[index] = time.monotonic()
        if (not isinstance(value, dict) or value.get("row") != row
                or value.get("check") != checksum(row, value.get("version", -1))):
            stats.wrong += 1
            _sample(stats, f"wrong value for row {row}: {value!r}")
        elif value["version"] < floor:
            stats.stale += 1
            _sample(stats, f"stale read of row {row}: version {value['version']} < {floor}")

    def write(row: int) -> None:
        version = (write_table if rng.random() < 0.5 else write_entry)(row)
        with completed.get_lock():
            completed[row] = max(completed[row], version)
        stats.writes += 1

    ready.wait(60)
    while not stop.is_set():
        for _ in range(50):
            row = rng.randrange(rows)
            stats.calls += 1
            try:
                if rng.random() < write_ratio:
                    write(row)
                else:
                    read(row)
            except Exception:
                stats.errors += 1
                _sample(stats, traceback.format_exc())
    cache.close()
    results.put((index, asdict(stats)))


def _sample(stats: WorkerStats, text: str) -> None:
    if len(stats.samples) < 5:
        stats.samples.append(text)


def _positive(kind: type[int] | type[float], allow_zero: bool = False) -> Any:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if value < 0 or (value == 0 and not allow_zero):
            raise argparse.ArgumentTypeError(
                f"must be {'>= 0' if allow_zero else '> 0'}, got {text!r}"
            )
        return value

    return parse


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=_positive(int), default=4,
                        help="worker processes (default 4)")
    parser.add_argument("--seconds", type=_positive(float), default=20.0,
                        help="duration of the run (default 20)")
    parser.add_argument("--kill-every", type=_positive(float, allow_zero=True), default=4.0,
                        help="seconds between server kills, 0 = never (default 4)")
    parser.add_argument("--down", type=_positive(float, allow_zero=True), default=0.5,
                        help="seconds the server stays down after a kill (default 0.5)")
    parser.add_argument("--rows", type=_positive(int), default=20,
                        help="rows in the shared database (default 20)")
    parser.add_argument("--write-ratio", type=_positive(float, allow_zero=True), default=0.1,
                        help="fraction of calls that write (default 0.1)")
    parser.add_argument("--max-recovery", type=_positive(float), default=2.0,
                        help="seconds within which caching must resume (default 2)")
    parser.add_argument("--server", default=None,
                        help="redis-server / valkey-server binary (default: auto-detect)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--no-race-protection", action="store_true",
                        help="turn race protection off, to see the checker catch stale reads")
    args = parser.parse_args(argv)
    if args.write_ratio > 1:
        parser.error(f"--write-ratio must be between 0 and 1, got {args.write_ratio}")
    return args


def _wait_for_recovery(last_hit: Any, processes: int, since: float) -> float | None:
    """Seconds from ``since`` until every worker had a cache hit, or None after 5 s."""
    deadline = since + RECOVERY_WAIT
    while time.monotonic() < deadline:
        stamps: list[float] = list(last_hit[:processes])
        if all(stamp > since for stamp in stamps):
            return max(stamps) - since
        time.sleep(0.005)  # polling shared memory: there is no event to await
    return None


def run(args: argparse.Namespace) -> int:
    """Run the soak; print the report; return the exit status."""
    server = EmbeddedServer(args.server).start()
    versions = SPAWN.Array("q", args.rows)
    completed = SPAWN.Array("q", args.rows)
    last_hit = SPAWN.Array("d", args.processes)
    ready = SPAWN.Barrier(args.processes + 1)
    stop = SPAWN.Event()
    options = {"rows": args.rows, "write_ratio": args.write_ratio, "seed": args.seed,
               "race_protection": not args.no_race_protection}
    results = SPAWN.Queue()
    workers = [
        SPAWN.Process(
            target=worker,
            args=(index, server.socket_path, options, versions, completed, last_hit, ready,
                  stop, results),
            daemon=True,
        )
        for index in range(args.processes)
    ]
    recoveries: list[float | None] = []
    try:
        for process in workers:
            process.start()
        ready.wait(60)  # every worker has imported memo_redis and built its cache
        started = time.monotonic()
        end = started + args.seconds
        next_kill = started + args.kill_every if args.kill_every else float("inf")
        while True:
            now = time.monotonic()
            # A restart needs time to recover before the end of the run to be measured.
            if now >= end or next_kill + args.down + args.max_recovery > end:
                stop.wait(max(0.0, end - now))
                break
            stop.wait(max(0.0, next_kill - now))
            server.kill()
            stop.wait(args.down)
            server.restart()
            up = time.monotonic()
            recovery = _wait_for_recovery(last_hit, args.processes, up)
            recoveries.append(recovery)
            shown = "never" if recovery is None else f"{recovery:.3f}s"
            print(f"restart {len(recoveries)} at {up - started:.1f}s: every worker hit the "
                  f"cache again after {shown}", flush=True)
            next_kill = time.monotonic() + args.kill_every
        elapsed = time.monotonic() - started
        stop.set()
        totals = WorkerStats()
        reported = 0
        deadline = time.monotonic() + JOIN_TIMEOUT
        while reported < args.processes and time.monotonic() < deadline:
            try:
                _, stats = results.get(timeout=1.0)
            except queue.Empty:
                if not any(process.is_alive() for process in workers):
                    break
                continue
            reported += 1
            for name in ("calls", "reads", "writes", "hits", "errors", "stale", "wrong",
                         "log_errors"):
                setattr(totals, name, getattr(totals, name) + stats[name])
            totals.samples.extend(stats["samples"])
        for process in workers:
            process.join(JOIN_TIMEOUT)
    finally:
        stop.set()
        for process in workers:
            if process.is_alive():
                process.kill()
        server.stop()

    missing = args.processes - reported
    slow = [r for r in recoveries if r is None or r > args.max_recovery]
    measured = [r for r in recoveries if r is not None]
    failed = bool(totals.errors or totals.stale or totals.wrong or missing or slow)
    for sample in totals.samples[:10]:
        print(f"sample: {sample.rstrip()}")
    print(
        f"soak: processes={args.processes} seconds={elapsed:.1f} calls={totals.calls} "
        f"reads={totals.reads} writes={totals.writes} hits={totals.hits} "
        f"errors={totals.errors + missing} stale={totals.stale} wrong={totals.wrong} "
        f"restarts={len(recoveries)} "
        f"recovery_max={max(measured, default=0.0):.3f}s "
        f"recovery_mean={sum(measured) / len(measured) if measured else 0.0:.3f}s "
        f"slow_recoveries={len(slow)} failed_invalidations={totals.log_errors} "
        f"{'FAILED' if failed else 'ok'}",
        flush=True,
    )
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse ``argv`` and run the soak."""
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
