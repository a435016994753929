"""Service-level benchmark: an ASGI app over PostgreSQL under HTTP load, caching off and on.

``python -m bench.service`` (not part of ``bench.run``). It seeds a schema of its own in
PostgreSQL (dropped and recreated every run), starts a private Redis server, and for each mode
(``off``: no cache; ``redis``: ``@cached``; ``local``: ``@cached(local=True)``) starts the app of
:mod:`bench.service_app` under uvicorn (one worker) and drives it with ``wrk`` and the Lua mix
``bench/service_mix.lua``: 95% reads over Zipf-skewed keys, 5% writes that bump a row's version
and invalidate its entries. Each read kind (by primary key, and the heavier report) is a run of
its own. It reports requests/s, wrk's latency percentiles, the CPU time per request of the app
process (and of Redis and PostgreSQL), the app's ``cache_info()`` counts, and the stale reads
found in the app's request log, then writes ``bench/results/service.json``. Loopback only.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import bisect
import concurrent.futures
import contextlib
import http.client
import importlib.metadata
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the ``bench`` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import placement
from bench.contenders import Target
from bench.report import Check, machine_info
from bench.throughput import process_cpu_s

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
LUA = HERE / "service_mix.lua"
SCHEMA = "memo_bench_service"
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"
MODES = ("off", "redis", "local")
KINDS = ("cat", "report")
READY_TIMEOUT = 30.0
WRK_GRACE = 30.0
LOOPBACK = ("127.0.0.1", "localhost", "::1")
EXTRA_PACKAGES = ("starlette", "uvicorn", "psycopg", "psycopg-pool", "psutil")
INSTALL_WRK = "apt-get update && apt-get install -y wrk   (as root; Debian/Ubuntu package 'wrk')"


def _say(text: str) -> None:
    print(text, flush=True)


# -- data -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    """How much data the seed writes."""

    owners: int = 100
    cats_per_owner: int = 1000
    visits_per_cat: int = 4

    @property
    def cats(self) -> int:
        """Total cats."""
        return self.owners * self.cats_per_owner


def seed(dsn: str, shape: Shape) -> float:
    """Drop and recreate the schema with owners, cats and visits; returns seconds taken.

    Visits are stored in cat order (each cat's visits are neighbours on disk), so an owner's
    report reads ``cats_per_owner * visits_per_cat`` rows through the index: a few ms.
    """
    import psycopg

    owners, per_owner, cats = int(shape.owners), int(shape.cats_per_owner), int(shape.cats)
    per_cat, visits = int(shape.visits_per_cat), int(shape.cats * shape.visits_per_cat)
    colors = "ARRAY['black','white','ginger','grey','tabby','calico','tortoiseshell','cream']"
    statements = [
        f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE",
        f"CREATE SCHEMA {SCHEMA}",
        f"CREATE TABLE {SCHEMA}.owners (id int PRIMARY KEY, name text NOT NULL)",
        f"INSERT INTO {SCHEMA}.owners SELECT g, 'owner ' || g FROM generate_series(1, {owners}) g",
        f"CREATE TABLE {SCHEMA}.cats (id int PRIMARY KEY, owner_id int NOT NULL REFERENCES "
        f"{SCHEMA}.owners, name text NOT NULL, color text NOT NULL, weight float8 NOT NULL, "
        "version bigint NOT NULL DEFAULT 1)",
        f"INSERT INTO {SCHEMA}.cats SELECT g, (g - 1) / {per_owner} + 1, 'cat ' || g, "
        f"({colors})[1 + g % 8], 2 + (g % 60) / 10.0, 1 FROM generate_series(1, {cats}) g",
        f"CREATE TABLE {SCHEMA}.visits (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
        f"cat_id int NOT NULL REFERENCES {SCHEMA}.cats, vet text NOT NULL, "
        "cost float8 NOT NULL, visited_on date NOT NULL)",
        f"INSERT INTO {SCHEMA}.visits (cat_id, vet, cost, visited_on) SELECT "
        f"1 + (g - 1) / {per_cat}, 'vet ' || g % 37, (g::bigint * 7919 % 20000) / 100.0, "
        f"date '2020-01-01' + g % 1500 FROM generate_series(1, {visits}) g",
        f"CREATE INDEX ON {SCHEMA}.cats (owner_id)",
        f"CREATE INDEX ON {SCHEMA}.visits (cat_id)",
        f"VACUUM ANALYZE {SCHEMA}.owners",
        f"VACUUM ANALYZE {SCHEMA}.cats",
        f"VACUUM ANALYZE {SCHEMA}.visits",
    ]
    start = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as conn:
        for sql in statements:
            conn.execute(sql.encode())  # built from ints above: no parameters
    return time.perf_counter() - start


def reset_versions(dsn: str) -> None:
    """Every cat back to version 1 (each mode starts from the same data)."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"UPDATE {SCHEMA}.cats SET version = 1 WHERE version <> 1")
        conn.execute(f"VACUUM {SCHEMA}.cats")


def drop_schema(dsn: str) -> None:
    """Remove everything the seed made."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")


def postgres_version(dsn: str) -> str:
    """``server_version`` of the database."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "?"


def check_loopback(dsn: str) -> None:
    """Refuse a DSN whose host is not on this machine (loopback or a unix socket directory)."""
    from psycopg.conninfo import conninfo_to_dict

    host = str(conninfo_to_dict(dsn).get("host") or "")
    for part in host.split(","):
        if part and not part.startswith("/") and part not in LOOPBACK:
            raise SystemExit(f"bench.service: the database must be on loopback, got host {part!r}")


# -- CPU time -------------------------------------------------------------------------------


def postgres_cpu_s() -> float:
    """CPU seconds of every ``postgres`` process on the machine (the server and its backends).

    Read-only, from ``/proc``: the app's pool keeps its backends alive during a run, so the
    difference over a run is the database's work for it (plus any other client's meanwhile).
    """
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                data = stat.read()
        except OSError:
            continue
        name = data[data.find("(") + 1:data.rfind(")")]
        if name == "postgres" or name.startswith("postgres:"):
            parts = data.rsplit(")", 1)[1].split()
            total += int(parts[11]) + int(parts[12])
    return total / tick


def machine_busy_s() -> float:
    """CPU seconds every CPU spent busy since boot (``/proc/stat``, idle and iowait excluded)."""
    with open("/proc/stat", encoding="ascii") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


@dataclass
class CpuMeter:
    """CPU seconds of the app, the Redis server, PostgreSQL, this driver with wrk (a child
    reaped within the run) and everything else, over one run; and Redis commands served."""

    app_pid: int
    redis_pid: int
    admin: Any
    start: tuple[float, ...] = ()
    app_s: float = 0.0
    redis_s: float = 0.0
    postgres_s: float = 0.0
    driver_s: float = 0.0
    foreign_cpus: float = 0.0
    """CPUs kept busy by other processes meanwhile (other users of the machine)."""
    redis_commands: int = 0
    commandstats: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per Redis command: calls and server µs over the run (``INFO commandstats``)."""

    def _commandstats(self) -> dict[str, tuple[int, int]]:
        info = self.admin.info("commandstats")
        return {name.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"]))
                for name, v in info.items() if isinstance(v, dict)}

    def _sample(self) -> tuple[float, ...]:
        times = os.times()
        return (process_cpu_s(self.app_pid), process_cpu_s(self.redis_pid), postgres_cpu_s(),
                times.user + times.system + times.children_user + times.children_system,
                machine_busy_s(), time.monotonic(),
                float(self.admin.info("stats")["total_commands_processed"]))

    def __enter__(self) -> CpuMeter:
        self._stats0 = self._commandstats()
        self.start = self._sample()
        return self

    def __exit__(self, *exc: object) -> None:
        d = [b - a for a, b in zip(self.start, self._sample(), strict=True)]
        self.app_s, self.redis_s, self.postgres_s, self.driver_s = d[:4]
        rest = d[4] - sum(d[:4])
        self.foreign_cpus = max(0.0, rest / d[5]) if d[5] > 0 else 0.0
        self.redis_commands = int(d[6]) - 1  # the INFO of the first sample
        before = self._stats0
        for name, (calls, usec) in sorted(self._commandstats().items(),
                                          key=lambda kv: -(kv[1][1] - before.get(kv[0],
                                                                                 (0, 0))[1])):
            calls0, usec0 = before.get(name, (0, 0))
            if calls > calls0 and name != "info":
                self.commandstats[name] = {"calls": calls - calls0, "usec": usec - usec0}


# -- the app process ------------------------------------------------------------------------


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_json(port: int, path: str, timeout: float = 30.0) -> Any:
    """``GET http://127.0.0.1:{port}{path}`` as JSON."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as response:
        return json.loads(response.read())


def http_post(port: int, path: str, timeout: float = 10.0) -> Any:
    """``POST`` an empty JSON object; the JSON answer."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=b"{}",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


@contextlib.contextmanager
def app_process(mode: str, *, dsn: str, redis_url: str, shape: Shape, pool_size: int,
                cpus: frozenset[int], uvicorn_loop: str, uvicorn_http: str,
                scan_threshold: int | None = None
                ) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """uvicorn with the app in ``mode``, pinned to ``cpus``; stopped on exit, whatever happens."""
    port = free_port()
    command = [sys.executable, "-m", "bench.service_app", "--mode", mode, "--port", str(port),
               "--dsn", dsn, "--schema", SCHEMA, "--redis-url", redis_url,
               "--cats-per-owner", str(shape.cats_per_owner), "--pool-size", str(pool_size),
               "--loop", uvicorn_loop, "--http", uvicorn_http, "--parent", str(os.getpid())]
    if scan_threshold is not None:
        command += ["--scan-threshold", str(scan_threshold)]
    proc = subprocess.Popen(command, cwd=HERE.parent, stdin=subprocess.DEVNULL)
    try:
        _pin(proc.pid, cpus)  # before it starts serving; threads made later inherit the mask
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the app ({mode}) exited with status {proc.returncode}")
            try:
                stats = http_json(port, "/_stats", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the app ({mode}) did not answer within "
                                       f"{READY_TIMEOUT:.0f} s") from None
                time.sleep(0.1)
        if stats["pid"] != proc.pid:
            raise RuntimeError("another process answered on the app's port")
        _pin(proc.pid, cpus)  # threads started meanwhile
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _pin(pid: int, cpus: frozenset[int]) -> None:
    for tid in placement.server_threads(pid):
        with contextlib.suppress(ProcessLookupError, FileNotFoundError):
            os.sched_setaffinity(tid, cpus)


def _affinity(pid: int) -> dict[str, list[int]]:
    seen = {}
    for tid in placement.server_threads(pid):
        with contextlib.suppress(ProcessLookupError, FileNotFoundError):
            seen[str(tid)] = sorted(os.sched_getaffinity(tid))
    return seen


# -- load -----------------------------------------------------------------------------------


def prefill(port: int, paths: list[str], workers: int = 8) -> float:
    """``GET`` every path once (``workers`` keep-alive connections); returns seconds taken.

    Run before each read kind's load so every mode is measured in its steady state: the cache
    (if any) holds the key space and PostgreSQL's buffers hold the rows; misses then come from
    the writes' invalidations, not from a cold start.
    """
    def run(chunk: list[str]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            for path in chunk:
                conn.request("GET", path)
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    raise RuntimeError(f"GET {path}: HTTP {response.status}")
        finally:
            conn.close()

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        list(pool.map(run, [paths[i::workers] for i in range(workers)]))
    return time.perf_counter() - start


def run_wrk(port: int, kind: str, duration: float, opts: argparse.Namespace, shape: Shape,
            seed_value: int) -> dict[str, Any]:
    """One wrk run of the mix for ``kind``; wrk's summary (from the Lua ``done()``) as a dict."""
    command = ["wrk", "-t", str(opts.wrk_threads), "-c", str(opts.connections),
               "-d", f"{duration:g}s", "--timeout", "10s", "-s", str(LUA),
               f"http://127.0.0.1:{port}", "--", kind, str(min(opts.keys, shape.cats)),
               str(opts.zipf), str(opts.write_ratio), str(shape.owners),
               str(shape.cats_per_owner), str(seed_value)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=duration + WRK_GRACE,
                          check=False)
    for line in done.stdout.splitlines():
        if line.startswith("WRK_JSON "):
            result: dict[str, Any] = json.loads(line[len("WRK_JSON "):])
            return result
    raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout[-500:]} {done.stderr[-500:]}")


# -- stale reads ----------------------------------------------------------------------------


@dataclass
class StaleCheck:
    """Reads checked and reads found stale, for one read kind."""

    checked: int = 0
    stale: int = 0
    worst_lag: int = 0
    """Most versions a stale read was behind."""
    examples: list[dict[str, int]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"checked": self.checked, "stale": self.stale, "worst_lag_versions":
                self.worst_lag, "examples": self.examples}


def check_stale(log: dict[str, Any], cats_per_owner: int) -> dict[str, StaleCheck]:
    """Reads that returned a version older than one whose write completed before they started.

    A cat read must return at least the highest version written by a write to that cat that
    ended (after its invalidation returned) before the read started. A report read returns the
    sum of the owner's cats' versions: every write adds exactly 1 to one cat, every cat starts at
    version 1, so it must be at least ``cats_per_owner`` + the writes to the owner's cats that
    ended before the read started.
    """
    by_cat: dict[int, list[tuple[int, int]]] = {}
    by_owner: dict[int, list[int]] = {}
    for _start, end, cat_id, owner, version in log["writes"]:
        by_cat.setdefault(cat_id, []).append((end, version))
        by_owner.setdefault(owner, []).append(end)
    cat_index: dict[int, tuple[list[int], list[int]]] = {}
    for cat_id, writes in by_cat.items():
        writes.sort()
        best, running = [], 0
        for _, version in writes:
            running = max(running, version)
            best.append(running)
        cat_index[cat_id] = ([end for end, _ in writes], best)
    for ends in by_owner.values():
        ends.sort()
    result = {"cat": StaleCheck(), "report": StaleCheck()}
    for start, end, cat_id, version in log["cat"]:
        check = result["cat"]
        check.checked += 1
        ends, best = cat_index.get(cat_id, ([], []))
        done = bisect.bisect_left(ends, start)
        if done and version < best[done - 1]:
            _stale(check, best[done - 1] - version, start, end, cat_id, version,
                   best[done - 1], ends[done - 1])
    for start, end, owner, version in log["report"]:
        check = result["report"]
        check.checked += 1
        ends = by_owner.get(owner, [])
        done = bisect.bisect_left(ends, start)
        floor = cats_per_owner + done
        if version < floor:
            _stale(check, floor - version, start, end, owner, version, floor,
                   ends[done - 1] if done else 0)
    return result


def _stale(check: StaleCheck, lag: int, start: int, end: int, key: int, got: int, expected: int,
           write_end: int) -> None:
    check.stale += 1
    check.worst_lag = max(check.worst_lag, lag)
    if len(check.examples) < 5:
        check.examples.append({"key": key, "got": got, "at_least": expected,
                               "read_started_after_write_end_us": (start - write_end) // 1000,
                               "read_us": (end - start) // 1000})


# -- the command ----------------------------------------------------------------------------


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.service",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=10.0,
                        help="seconds of load per mode and read kind (default 10)")
    parser.add_argument("--warmup", type=float, default=2.0,
                        help="seconds of the same load before each measured run (default 2)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    parser.add_argument("--wrk-threads", type=int, default=1, help="wrk threads (1)")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated: off,redis,local")
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated: cat,report")
    parser.add_argument("--write-ratio", type=float, default=0.05, help="share of writes (0.05)")
    parser.add_argument("--zipf", type=float, default=1.0, help="Zipf exponent of keys (1.0)")
    parser.add_argument("--keys", type=int, default=10_000,
                        help="cats the primary-key reads and writes draw from (10000)")
    parser.add_argument("--owners", type=int, default=Shape.owners, help="owners (100)")
    parser.add_argument("--cats-per-owner", type=int, default=Shape.cats_per_owner,
                        help="cats per owner (1000)")
    parser.add_argument("--visits-per-cat", type=int, default=Shape.visits_per_cat,
                        help="visits per cat (4)")
    parser.add_argument("--pool-size", type=int, default=8, help="PostgreSQL connections (8)")
    parser.add_argument("--dsn", default=os.environ.get("MEMO_BENCH_DSN", DEFAULT_DSN),
                        help="PostgreSQL on this machine (default: $MEMO_BENCH_DSN or "
                             "postgres@127.0.0.1:5432/test)")
    parser.add_argument("--redis-transport", choices=("tcp", "unix"), default="tcp",
                        help="how the app reaches Redis (default tcp loopback)")
    parser.add_argument("--uvicorn-loop", default="asyncio", help="uvicorn --loop (asyncio)")
    parser.add_argument("--uvicorn-http", default="h11", help="uvicorn --http (h11)")
    parser.add_argument("--server-binary", default=None,
                        help="redis-server / valkey-server to run (default: found by memo_redis)")
    parser.add_argument("--scan-threshold", type=int, default=None,
                        help="RedisCaching(scan_threshold=N) in the app (default: memo_redis's "
                             "default; 0 makes every row-level invalidation use its index set "
                             "instead of a SCAN of the keyspace)")
    parser.add_argument("--no-prefill", action="store_true",
                        help="skip reading every key once before each read kind's load")
    parser.add_argument("--keep-data", action="store_true", help="leave the schema at the end")
    parser.add_argument("--output", type=Path, default=RESULTS / "service.json",
                        help="JSON file to write (default bench/results/service.json)")
    opts = parser.parse_args(argv)
    bounds = ((opts.duration, 1, 120, "--duration"), (opts.warmup, 0, 60, "--warmup"),
              (opts.connections, 1, 256, "--connections"), (opts.wrk_threads, 1, 8,
                                                            "--wrk-threads"),
              (opts.write_ratio, 0, 1, "--write-ratio"), (opts.zipf, 0, 3, "--zipf"),
              (opts.keys, 1, 10_000_000, "--keys"), (opts.owners, 1, 100_000, "--owners"),
              (opts.cats_per_owner, 1, 100_000, "--cats-per-owner"),
              (opts.visits_per_cat, 1, 100, "--visits-per-cat"),
              (opts.pool_size, 1, 50, "--pool-size"))
    for value, low, high, name in bounds:
        if not low <= value <= high:
            parser.error(f"{name} must be within {low}-{high}")
    if opts.owners * opts.cats_per_owner * opts.visits_per_cat > 20_000_000:
        parser.error("at most 20,000,000 visits")
    for listed, allowed, name in ((opts.modes, MODES, "--modes"), (opts.kinds, KINDS, "--kinds")):
        if not set(listed.split(",")) <= set(allowed):
            parser.error(f"{name}: choose among {','.join(allowed)}")
    return opts


def _missing_tools() -> list[str]:
    problems = []
    if shutil.which("wrk") is None:
        problems.append(f"wrk (the HTTP load generator) is not installed: {INSTALL_WRK}")
    for module in ("starlette", "uvicorn", "psycopg", "psycopg_pool"):
        try:
            __import__(module)
        except ImportError:
            problems.append(f"python package {module!r} is missing: "
                            '.venv/bin/pip install -e ".[bench]"')
    return problems


def _versions(dsn: str) -> dict[str, str]:
    out = {}
    for package in EXTRA_PACKAGES:
        try:
            out[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            out[package] = "not installed"
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False, timeout=10)
    out["wrk"] = (wrk.stdout + wrk.stderr).split("\n")[0].split(" Copyright")[0].strip()
    out["postgresql"] = postgres_version(dsn)
    return out


def _diff(after: dict[str, Any] | None, before: dict[str, Any] | None) -> dict[str, int] | None:
    if after is None or before is None:
        return None
    return {k: int(v) - int(before.get(k, 0)) for k, v in after.items()
            if isinstance(v, (int, float))}


def main(argv: list[str] | None = None) -> int:
    """Run every mode and read kind; exit 0 when every target is met, 1 otherwise, 2 when a
    tool is missing."""
    opts = _parse(argv)
    problems = _missing_tools()
    if problems:
        for problem in problems:
            _say(f"bench.service: {problem}")
        return 2
    check_loopback(opts.dsn)
    from memo_redis.embedded import EmbeddedServer

    shape = Shape(opts.owners, opts.cats_per_owner, opts.visits_per_cat)
    modes, kinds = opts.modes.split(","), opts.kinds.split(",")
    keys = min(opts.keys, shape.cats)
    started = time.perf_counter()
    cpus = sorted(placement.available_cpus())
    app_cpus = frozenset({cpus[-1]})
    rest = frozenset({cpus[0]})
    place = placement.Placement("service", client_cpus=rest, server_cpus=rest)
    where = (f"uvicorn (the app) on CPU {cpus[-1]}; Redis, wrk and this driver on CPU {cpus[0]}; "
             "PostgreSQL unpinned (the machine's server)")
    result: dict[str, Any] = {"config": {
        k: (str(v) if isinstance(v, Path) else v) for k, v in vars(opts).items()
        if k not in ("dsn", "output", "server_binary")}}
    result["config"]["schema"] = SCHEMA
    result["placement"] = where
    runs: list[dict[str, Any]] = []
    stale: dict[str, dict[str, Any]] = {}
    checks: list[Check] = []
    try:
        _say(f"seeding {SCHEMA}: {shape.owners} owners, {shape.cats:,} cats, "
             f"{shape.cats * shape.visits_per_cat:,} visits ...")
        result["seed_s"] = round(seed(opts.dsn, shape), 1)
        server = EmbeddedServer(opts.server_binary, tcp=True)
        with server:
            assert server.pid is not None and server.port is not None
            target = Target(opts.redis_transport, server.socket_path, port=server.port)
            result["machine"] = machine_info(server.version, server.engine, server.binary)
            result["machine"]["service_packages"] = _versions(opts.dsn)
            result["pinning"] = {"driver_and_redis": placement.apply(place, server.pid)}
            admin = server.client()
            _say(f"server: {server.engine} {server.version}; placement: {where}")
            for m, mode in enumerate(modes):
                reset_versions(opts.dsn)
                admin.flushall()
                with app_process(mode, dsn=opts.dsn, redis_url=target.url, shape=shape,
                                 pool_size=opts.pool_size, cpus=app_cpus,
                                 uvicorn_loop=opts.uvicorn_loop,
                                 uvicorn_http=opts.uvicorn_http,
                                 scan_threshold=opts.scan_threshold) as (proc, port):
                    result["pinning"][f"app ({mode})"] = _affinity(proc.pid)
                    _smoke(port, shape)
                    for k, kind in enumerate(kinds):
                        seed_value = 1000 * m + 10 * k + 1
                        if not opts.no_prefill:
                            prefill(port, [f"/cat/{i}" for i in range(1, keys + 1)]
                                    if kind == "cat" else
                                    [f"/report/{i}" for i in range(1, shape.owners + 1)])
                        if opts.warmup:
                            run_wrk(port, kind, opts.warmup, opts, shape, seed_value)
                        before = http_json(port, "/_stats")
                        with CpuMeter(proc.pid, server.pid, admin) as meter:
                            wrk = run_wrk(port, kind, opts.duration, opts, shape, seed_value + 1)
                        after = http_json(port, "/_stats")
                        runs.append(_run_record(mode, kind, wrk, meter, before, after))
                        _say(f"  {mode:<6} {kind:<7} {runs[-1]['requests_per_s']:9,.0f} req/s  "
                             f"p99 {wrk['latency_us']['p99'] / 1000:7.2f} ms  app CPU "
                             f"{runs[-1]['app_cpu_us_per_request']:7.1f} us/req")
                    log = http_json(port, "/_log", timeout=120)
                found = check_stale(log, shape.cats_per_owner)
                stale[mode] = {k: v.as_dict() for k, v in found.items()}
                stale[mode]["writes_logged"] = len(log["writes"])
                stale[mode]["log_dropped"] = log["dropped"]
    finally:
        if not opts.keep_data:
            with contextlib.suppress(Exception):
                drop_schema(opts.dsn)
    result["runs"] = runs
    result["stale_reads"] = stale
    checks = _checks(runs, stale)
    result["checks"] = [c.as_dict() for c in checks]
    result["elapsed_s"] = round(time.perf_counter() - started, 1)
    _say(f"\n== Service: {opts.connections} connections, {opts.duration:g} s per run, "
         f"{1 - opts.write_ratio:.0%} reads (Zipf s={opts.zipf:g}) / {opts.write_ratio:.0%} "
         f"writes; {where} ==")
    _say(table(runs, stale))
    _say("\n== Targets ==")
    for check in checks:
        _say(check.line())
    opts.output.parent.mkdir(parents=True, exist_ok=True)
    opts.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    _say(f"\n{sum(c.passed for c in checks)}/{len(checks)} targets met; results: {opts.output}; "
         f"{result['elapsed_s']:.0f} s")
    return 0 if all(c.passed for c in checks) else 1


def _smoke(port: int, shape: Shape) -> None:
    """One read, one write and a read after it, before any load: the app answers correctly."""
    first = http_json(port, "/cat/1")
    written = http_post(port, "/cat/1")
    again = http_json(port, "/cat/1")
    report = http_json(port, "/report/1")
    if not (written["version"] == first["version"] + 1 == again["version"]
            and report["version"] == shape.cats_per_owner + again["version"] - 1):
        raise AssertionError(f"the app answers wrongly: {first} {written} {again} {report}")


def _run_record(mode: str, kind: str, wrk: dict[str, Any], meter: CpuMeter,
                before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    requests = max(int(wrk["requests"]), 1)
    seconds = wrk["duration_us"] / 1e6
    errors = wrk["errors"]
    return {
        "mode": mode, "kind": kind, "requests": wrk["requests"],
        "requests_per_s": round(wrk["requests"] / seconds, 1),
        "latency_ms": {k: round(v / 1000, 3) for k, v in wrk["latency_us"].items()},
        "errors": errors, "failed_requests": sum(errors.values()),
        "app_cpu_us_per_request": round(meter.app_s / requests * 1e6, 1),
        "app_cpu_utilisation": round(meter.app_s / seconds, 3),
        "redis_cpu_us_per_request": round(meter.redis_s / requests * 1e6, 1),
        "postgres_cpu_us_per_request": round(meter.postgres_s / requests * 1e6, 1),
        "driver_and_wrk_cpu_us_per_request": round(meter.driver_s / requests * 1e6, 1),
        "redis_commands_per_request": round(meter.redis_commands / requests, 2),
        "foreign_cpu_load": round(meter.foreign_cpus, 2),
        "redis_commandstats": meter.commandstats,
        "cache_info": {"cat": _diff(after["cat"], before["cat"]),
                       "report": _diff(after["report"], before["report"])},
    }


def table(runs: list[dict[str, Any]], stale: dict[str, dict[str, Any]]) -> str:
    """One line per read kind and mode; ratios to caching off of the same kind."""
    head = (f"{'read kind':<9}{'mode':<7}{'req/s':>15}{'p50 ms':>8}{'p99 ms':>8}"
            f"{'app CPU us/req':>20}{'redis':>7}{'pg':>7}{'cmd/req':>8}{'hits':>9}{'misses':>8}"
            f"{'stale':>7}{'errors':>7}")
    lines = [head, "-" * len(head)]
    for run in runs:
        off = next((r for r in runs if r["kind"] == run["kind"] and r["mode"] == "off"), None)
        rps = f"{run['requests_per_s']:,.0f}"
        cpu = f"{run['app_cpu_us_per_request']:.0f}"
        if off is not None and run is not off:
            rps += f" {run['requests_per_s'] / off['requests_per_s']:.2f}x"
            cpu += f" {run['app_cpu_us_per_request'] / off['app_cpu_us_per_request']:.2f}x"
        info = run["cache_info"][run["kind"]] or {}
        checked = stale.get(run["mode"], {}).get(run["kind"], {})
        lines.append(
            f"{run['kind']:<9}{run['mode']:<7}{rps:>15}{run['latency_ms']['p50']:8.2f}"
            f"{run['latency_ms']['p99']:8.2f}{cpu:>20}{run['redis_cpu_us_per_request']:7.0f}"
            f"{run['postgres_cpu_us_per_request']:7.0f}{run['redis_commands_per_request']:8.2f}"
            f"{info.get('hits', '-'):>9}"
            f"{info.get('misses', '-'):>8}{checked.get('stale', '-'):>7}"
            f"{run['failed_requests']:>7}")
    lines.append("(latency: wrk, all requests of the run, writes included; CPU: user + system "
                 "time per request of the app process, the Redis server and every postgres "
                 "process; cmd/req: Redis commands served per request; hits/misses: cache_info() "
                 "of the read kind's function over the run; stale: over the whole mode, "
                 "warm-ups included)")
    busy = [f"{r['kind']}/{r['mode']}: {r['foreign_cpu_load']:.2f}" for r in runs
            if r["foreign_cpu_load"] > 0.25]
    if busy:
        lines.append(f"WARNING: other processes kept CPUs busy during runs ({', '.join(busy)} "
                     "CPUs): req/s and latency carry their noise; CPU per request is the figure "
                     "to trust")
    return "\n".join(lines)


def _checks(runs: list[dict[str, Any]], stale: dict[str, dict[str, Any]]) -> list[Check]:
    out: list[Check] = []
    for run in runs:
        off = next((r for r in runs if r["kind"] == run["kind"] and r["mode"] == "off"), None)
        if run["mode"] == "off" or off is None:
            continue
        where = f"{run['kind']}, {run['mode']}"
        ratio = run["requests_per_s"] / off["requests_per_s"]
        out.append(Check("caching on serves more requests/s than off", where,
                         f"{run['requests_per_s']:,.0f} vs {off['requests_per_s']:,.0f} req/s "
                         f"({ratio:.2f}x)", "> 1.00x", ratio > 1.0))
        cpu = run["app_cpu_us_per_request"] / off["app_cpu_us_per_request"]
        out.append(Check("caching on uses less app CPU per request than off", where,
                         f"{run['app_cpu_us_per_request']:.0f} vs "
                         f"{off['app_cpu_us_per_request']:.0f} us ({cpu:.2f}x)", "< 1.00x",
                         cpu < 1.0))
    for run in runs:
        if run["failed_requests"]:
            out.append(Check("no failed request", f"{run['kind']}, {run['mode']}",
                             json.dumps(run["errors"]), "0", False))
    for mode, kinds in stale.items():
        for kind in KINDS:
            if kind in kinds and kinds[kind]["checked"]:
                out.append(Check("0 stale reads", f"{kind}, {mode}",
                                 f"{kinds[kind]['stale']} of {kinds[kind]['checked']:,} reads",
                                 "0", kinds[kind]["stale"] == 0))
    return out


def _exit_on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C: every ``finally`` stops what this command started."""
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    sys.exit(main())
