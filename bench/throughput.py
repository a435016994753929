"""Hit throughput: hits per second with 8 threads in one process, and with 4 processes.

``python -m bench.throughput`` (alone) or a section of ``python -m bench.run``. Every contender
repeats the warmed hit of the latency figures (the same arguments, the same 20-row entry) for a
fixed duration:

* **8 threads**: one client (one connection pool) shared by 8 threads of this process, as a
  threaded web server uses it; asyncio contenders run 8 tasks on one event loop instead.
* **4 processes**: 4 forked processes, each with a client of its own, one caller each.

A figure is hits per second over the whole window (all callers together); its ratio is to the raw
client of the same kind (redis-py ``GET`` + ``msgpack.unpackb``, or redis.asyncio) measured in the
same round, mode, transport and placement. The default placement pins every caller (this process
and its children) to the first CPU and the server to the second, so each side has one core of its
own and the figure tells how much client work a hit costs; ``--placement unpinned`` lets the
scheduler share both CPUs between callers and server. The client CPU time (user + system of every
caller) and the server's CPU time are recorded per hit too. Loopback and unix socket only.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import multiprocessing
import os
import signal
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.synchronize import Barrier as ProcessBarrier
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the ``bench`` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import contenders as cn
from bench import placement
from bench.report import Check
from bench.workload import LIMIT, ROWS, TABLE, Rows
from memo_redis import RedisCaching, cached

THREADS = 8
PROCESSES = 4
BATCH = 16
"""Hits between two looks at the clock (and one result check)."""
MODES = (f"{THREADS} threads", f"{PROCESSES} processes")
DEFAULT_DURATION = 2.0
JOIN_GRACE = 30.0
"""Seconds a caller may overrun its window before the run is declared hung."""
SYNC_BASELINE = "raw redis-py"
ASYNC_BASELINE = "raw redis.asyncio"
RESULTS = Path(__file__).resolve().parent / "results"


def memo_local(target: cn.Target, body: cn.Body) -> cn.SyncContender:
    """Diagnostic: memo_redis ``@cached(local=True)``: hits served from the in-process L1."""
    cache = RedisCaching(target.url)

    @cached(prefix="sql:{table}", category="local", cache=cache, ttl=cn.TTL_SECONDS,
            local=True)
    def fetch(table: str, limit: int, page: int = 0) -> Rows:
        return body(table, limit, page)

    return cn.SyncContender("memo_redis local=True", lambda: fetch(TABLE, LIMIT),
                            lambda i: fetch(TABLE, LIMIT, i), cache.close, family="memo_redis",
                            diagnostic=True)


SYNC: tuple[cn.Builder, ...] = (cn.raw, cn.memo, memo_local, cn.dogpile, cn.hermes)
"""Synchronous contenders (HermesCache and dogpile.cache have no asyncio API)."""
ASYNC: tuple[cn.Builder, ...] = (cn.raw_async, cn.memo_async, cn.cashews)
"""asyncio contenders (cashews has no synchronous API)."""


@dataclass
class Sample:
    """One contender's window: calls made, seconds, CPU seconds of the callers and the server."""

    calls: int
    seconds: float
    client_cpu_s: float
    server_cpu_s: float
    wrong: int

    @property
    def ops(self) -> float:
        """Hits per second."""
        return self.calls / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Series:
    """Every round of every contender for one mode, transport and placement."""

    mode: str
    transport: str
    placement: str
    samples: dict[str, list[Sample]] = field(default_factory=dict)
    diagnostic: set[str] = field(default_factory=set)
    kinds: dict[str, str] = field(default_factory=dict)
    """Contender name -> "sync" or "async"."""
    foreign_load: float = 0.0
    """CPUs other processes kept busy meanwhile (:class:`bench.placement.ForeignLoad`)."""

    def ops(self, name: str) -> float:
        """Median hits per second over rounds."""
        return statistics.median(s.ops for s in self.samples[name])

    def baseline(self, name: str) -> str:
        """The raw client of the contender's kind."""
        return ASYNC_BASELINE if self.kinds[name] == "async" else SYNC_BASELINE

    def ratio(self, name: str) -> float:
        """Median over rounds of (contender's hits/s / the baseline's in the same round)."""
        base = self.samples[self.baseline(name)]
        return statistics.median(
            s.ops / b.ops if b.ops else 0.0 for s, b in zip(self.samples[name], base, strict=True))

    def per_hit_us(self, name: str, which: str) -> float:
        """Median µs of client (``"client"``) or server (``"server"``) CPU time per hit."""
        values = []
        for s in self.samples[name]:
            cpu = s.client_cpu_s if which == "client" else s.server_cpu_s
            values.append(cpu / s.calls * 1e6 if s.calls else 0.0)
        return statistics.median(values)

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        out: dict[str, Any] = {"mode": self.mode, "transport": self.transport,
                               "placement": self.placement,
                               "foreign_cpu_load": round(self.foreign_load, 2), "contenders": {}}
        for name, samples in self.samples.items():
            out["contenders"][name] = {
                "kind": self.kinds[name], "diagnostic": name in self.diagnostic,
                "ops_per_s": round(self.ops(name)), "baseline": self.baseline(name),
                "ratio_to_baseline": round(self.ratio(name), 4),
                "client_cpu_us_per_hit": round(self.per_hit_us(name, "client"), 2),
                "server_cpu_us_per_hit": round(self.per_hit_us(name, "server"), 2),
                "rounds": [{"calls": s.calls, "seconds": round(s.seconds, 4),
                            "client_cpu_s": round(s.client_cpu_s, 4),
                            "server_cpu_s": round(s.server_cpu_s, 4), "wrong_results": s.wrong}
                           for s in samples],
            }
        return out


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads), from ``/proc``."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        parts = stat.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


# -- one window -----------------------------------------------------------------------------


def _sync_loop(hit: Callable[[], Any], deadline: float) -> tuple[int, int, float]:
    """Hits until ``deadline`` (``time.monotonic``); returns (calls, wrong results, end time)."""
    calls = wrong = 0
    clock = time.monotonic
    while True:
        if hit() != ROWS:
            wrong += 1
        for _ in range(BATCH - 1):
            hit()
        calls += BATCH
        now = clock()
        if now >= deadline:
            return calls, wrong, now


async def _async_loop(hit: Callable[[], Any], deadline: float) -> tuple[int, int, float]:
    calls = wrong = 0
    clock = time.monotonic
    while True:
        if await hit() != ROWS:
            wrong += 1
        for _ in range(BATCH - 1):
            await hit()
        calls += BATCH
        now = clock()
        if now >= deadline:
            return calls, wrong, now


def _threads_window(contender: cn.Contender, duration: float, server_pid: int,
                    loop: asyncio.AbstractEventLoop) -> Sample:
    """8 threads (or 8 tasks) of this process share ``contender``'s client for ``duration``."""
    gc.collect()
    if isinstance(contender, cn.AsyncContender):
        async def tasks() -> list[tuple[int, int, float]]:
            deadline = time.monotonic() + duration
            return list(await asyncio.gather(
                *(_async_loop(contender.hit, deadline) for _ in range(THREADS))))

        cpu0, server0, start = time.process_time(), process_cpu_s(server_pid), time.monotonic()
        results = loop.run_until_complete(asyncio.wait_for(tasks(), duration + JOIN_GRACE))
    else:
        hit = contender.hit
        barrier = threading.Barrier(THREADS + 1)
        box: dict[str, float] = {}
        results = []
        errors: list[BaseException] = []

        def worker() -> None:
            barrier.wait(JOIN_GRACE)
            try:
                results.append(_sync_loop(hit, box["deadline"]))
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        threads = [threading.Thread(target=worker, daemon=True) for _ in range(THREADS)]
        for thread in threads:
            thread.start()
        cpu0, server0, start = time.process_time(), process_cpu_s(server_pid), time.monotonic()
        box["deadline"] = start + duration
        barrier.wait(JOIN_GRACE)
        for thread in threads:
            thread.join(duration + JOIN_GRACE)
        if errors:
            raise errors[0]
        if any(t.is_alive() for t in threads) or len(results) != THREADS:
            raise RuntimeError(f"{contender.name}: a caller thread hung")
    end = max(r[2] for r in results)
    return Sample(sum(r[0] for r in results), end - start, time.process_time() - cpu0,
                  process_cpu_s(server_pid) - server0, sum(r[1] for r in results))


def _child(builder: cn.Builder, target: cn.Target, ready: ProcessBarrier, go: ProcessBarrier,
           deadline: Any, out: Any) -> None:
    """One caller process: its own client; warm; wait for the others; hit until the deadline.

    ``ready`` is passed once every process has warmed; the parent then sets ``deadline`` and
    passes ``go``, which releases everyone with the deadline set."""
    cpu0 = [0.0]
    try:
        contender = builder(target, cn.Body(ROWS))
        if isinstance(contender, cn.AsyncContender):
            async def run() -> tuple[int, int, float]:
                if await contender.warm() != ROWS:
                    raise AssertionError(f"{contender.name}: wrong warm-up result")
                ready.wait(JOIN_GRACE)
                go.wait(JOIN_GRACE)
                cpu0[0] = time.process_time()
                result = await _async_loop(contender.hit, deadline.value)
                await contender.close()
                return result

            calls, wrong, end = asyncio.run(run())
        else:
            if contender.warm() != ROWS:
                raise AssertionError(f"{contender.name}: wrong warm-up result")
            ready.wait(JOIN_GRACE)
            go.wait(JOIN_GRACE)
            cpu0[0] = time.process_time()
            calls, wrong, end = _sync_loop(contender.hit, deadline.value)
            contender.close()
        out.put((calls, wrong, end, time.process_time() - cpu0[0], ""))
    except BaseException as exc:  # sent to the parent, which raises
        ready.abort()
        go.abort()
        out.put((0, 0, 0.0, 0.0, f"{type(exc).__name__}: {exc}"))


def _processes_window(builder: cn.Builder, target: cn.Target, duration: float,
                      server_pid: int) -> Sample:
    """4 forked processes, each with its own client, hit for ``duration`` together."""
    ctx = multiprocessing.get_context("fork")
    ready, go = ctx.Barrier(PROCESSES + 1), ctx.Barrier(PROCESSES + 1)
    deadline = ctx.Value("d", 0.0)
    out = ctx.Queue()
    procs = [ctx.Process(target=_child, args=(builder, target, ready, go, deadline, out),
                         daemon=True) for _ in range(PROCESSES)]
    try:
        for proc in procs:
            proc.start()
        # The children's setup (client, warm-up call) happens before ``ready``, outside the
        # window and outside their CPU figure (each counts from ``go``).
        try:
            ready.wait(JOIN_GRACE + 30)
            # Set before this process reaches ``go``, so no child can read it unset;
            # time.monotonic() is one clock for all processes.
            server0, start = process_cpu_s(server_pid), time.monotonic()
            deadline.value = start + duration
            go.wait(JOIN_GRACE)
        except threading.BrokenBarrierError:
            raise RuntimeError(f"throughput child failed: {out.get(timeout=5)[4]}") from None
        results = [out.get(timeout=duration + JOIN_GRACE) for _ in procs]
        server_cpu = process_cpu_s(server_pid) - server0
    finally:
        for proc in procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join()
    failed = [r[4] for r in results if r[4]]
    if failed:
        raise RuntimeError(f"throughput child failed: {failed[0]}")
    end = max(r[2] for r in results)
    return Sample(sum(r[0] for r in results), end - start, sum(r[3] for r in results), server_cpu,
                  sum(r[1] for r in results))


# -- the section ----------------------------------------------------------------------------


def measure(target: cn.Target, server_pid: int, place: placement.Placement, *,
            duration: float = DEFAULT_DURATION, rounds: int = 1,
            loop: asyncio.AbstractEventLoop | None = None,
            say: Callable[[str], None] = print) -> list[Series]:
    """Both modes for every contender on one transport under ``place``; pins both sides."""
    own_loop = loop is None
    loop = loop or asyncio.new_event_loop()
    placement.apply(place, server_pid)
    builders = (*SYNC, *ASYNC)
    shared = [b(target, cn.Body(ROWS)) for b in builders]
    names = [c.name for c in shared]
    series: list[Series] = []
    try:
        for contender in shared:  # store the hot entries; check them
            value = (loop.run_until_complete(contender.warm())
                     if isinstance(contender, cn.AsyncContender) else contender.warm())
            if value != ROWS:
                raise AssertionError(f"{contender.name} returned {value!r:.80}")
        for mode in MODES:
            t0 = time.perf_counter()
            meter = placement.ForeignLoad(server_pid)
            s = Series(mode, target.transport, place.name)
            for name, builder in zip(names, builders, strict=True):
                s.samples[name] = []
                s.kinds[name] = "async" if builder in ASYNC else "sync"
                if builder is memo_local:
                    s.diagnostic.add(name)
            if mode != MODES[0]:
                _close(shared, loop)  # no open client or tracking thread across fork()
            for r in range(rounds):
                order = list(range(len(builders)))
                order = order[r % len(order):] + order[:r % len(order)]
                for i in order:
                    if mode == MODES[0]:
                        sample = _threads_window(shared[i], duration, server_pid, loop)
                    else:
                        sample = _processes_window(builders[i], target, duration, server_pid)
                    if sample.wrong:
                        raise AssertionError(f"{names[i]}: {sample.wrong} wrong results")
                    s.samples[names[i]].append(sample)
            s.foreign_load = meter.cpus()
            series.append(s)
            say(f"  throughput, {mode}, {target.transport}, {place.name}: "
                f"{time.perf_counter() - t0:.1f} s (other processes: {s.foreign_load:.2f} CPUs)")
    finally:
        _close(shared, loop)
        if own_loop:
            loop.close()
    return series


def _close(contenders: list[cn.Contender], loop: asyncio.AbstractEventLoop) -> None:
    """Close every client once (later calls are no-ops)."""
    while contenders:
        contender = contenders.pop()
        if isinstance(contender, cn.AsyncContender):
            loop.run_until_complete(contender.close())
        else:
            contender.close()


def table(series: Sequence[Series]) -> str:
    """Rows: contenders; columns: mode / transport / placement; cells: hits/s and ratio."""
    if not series:
        return ""
    names: list[str] = []
    for s in series:
        names += [n for n in s.samples if n not in names]
    head = f"{'contender':<30}" + "".join(
        f"{s.mode + ', ' + s.transport + ' / ' + s.placement:>40}" for s in series)
    lines = [head, "-" * len(head)]
    for name in names:
        cells = []
        for s in series:
            if name not in s.samples:
                cells.append(f"{'-':>40}")
                continue
            client, server = s.per_hit_us(name, "client"), s.per_hit_us(name, "server")
            cell = f"{s.ops(name):9,.0f}/s {s.ratio(name):5.2f}x cpu {client:5.1f}+{server:4.1f}us"
            cells.append(f"{cell:>40}")
        label = name + (" (diag)" if any(name in s.diagnostic for s in series) else "")
        lines.append(f"{label:<30}" + "".join(cells))
    lines.append("(hits/s of all callers; ratio to the raw client of the same kind in the same "
                 "round; cpu = client + server CPU us per hit)")
    busy = [f"{s.mode}: {s.foreign_load:.2f}" for s in series if s.foreign_load > 0.25]
    if busy:
        lines.append(f"WARNING: other processes kept CPUs busy ({', '.join(busy)} CPUs): the "
                     "hits/s carry their noise; the CPU us per hit are the figures to trust")
    return "\n".join(lines)


def checks(series: Sequence[Series]) -> list[Check]:
    """memo_redis's hits/s at least the best peer's, per mode, transport and placement.

    Sync: against HermesCache and dogpile.cache (counted); async: memo_redis async against
    cashews (informational: the target names the synchronous figure).
    """
    out: list[Check] = []
    for s in series:
        where = f"{s.mode}, {s.transport} / {s.placement}"
        for memo, kind, informational in (("memo_redis", "sync", False),
                                          ("memo_redis async", "async", True)):
            peers = [n for n in s.samples if s.kinds[n] == kind and n not in s.diagnostic
                     and not n.startswith(("raw", "memo_redis"))]
            if memo not in s.samples or not peers:
                continue
            best = max(peers, key=s.ops)
            out.append(Check(
                f"{kind} hit throughput >= best peer", where,
                f"{s.ops(memo):,.0f}/s vs {best} {s.ops(best):,.0f}/s "
                f"({s.ops(memo) / s.ops(best):.2f}x)",
                ">= 1.00x the best peer", s.ops(memo) >= s.ops(best), informational))
        local, raw = "memo_redis local=True", "raw redis-py"
        if local in s.samples and raw in s.samples:
            ratio = s.ops(raw) / s.ops(local)  # time per hit, local over raw
            out.append(Check(
                "local=True hit <= 0.15x a raw Redis hit", where,
                f"{ratio:.3f}x ({1e6 / s.ops(local):.1f} vs {1e6 / s.ops(raw):.1f} us per hit)",
                "<= 0.15x", ratio <= 0.15))
    return out


def choose_placement(name: str) -> placement.Placement:
    """``split`` (callers on the first CPU, server on the second; one CPU: both on it),
    ``same`` (both on the first CPU) or ``unpinned``."""
    options = {p.name: p for p in placement.placements()}
    if name == "unpinned":
        return placement.unpinned()
    if name == "same":
        return options["same core"]
    return options.get("different cores", options["same core"])


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.throughput",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=DEFAULT_DURATION,
                        help=f"seconds per contender and mode (default {DEFAULT_DURATION})")
    parser.add_argument("--rounds", type=int, default=1,
                        help="rounds (contender order rotated each round; default 1)")
    parser.add_argument("--transports", default="unix",
                        help="comma-separated: unix, tcp (default: unix)")
    parser.add_argument("--placement", choices=("split", "same", "unpinned"), default="split",
                        help="split: callers on CPU 0, server on CPU 1 (default)")
    parser.add_argument("--server-binary", default=None,
                        help="redis-server / valkey-server to run (default: found by memo_redis)")
    parser.add_argument("--output", type=Path, default=RESULTS / "throughput.json",
                        help="JSON file to write (default bench/results/throughput.json)")
    opts = parser.parse_args(argv)
    if not 0.05 <= opts.duration <= 60 or not 1 <= opts.rounds <= 20:
        parser.error("--duration must be within 0.05-60 s and --rounds within 1-20")
    return opts


def main(argv: list[str] | None = None) -> int:
    """Run the throughput section alone; exit 0 when every counted target is met."""
    from bench.report import machine_info
    from memo_redis.embedded import EmbeddedServer

    opts = _parse(argv)
    place = choose_placement(opts.placement)
    started = time.perf_counter()
    series: list[Series] = []
    server = EmbeddedServer(opts.server_binary, tcp=True)
    with server:
        assert server.pid is not None and server.port is not None
        machine = machine_info(server.version, server.engine, server.binary)
        print(f"server: {server.engine} {server.version}; placement: {place.describe()}; "
              f"{opts.duration:g} s per contender and mode, {opts.rounds} round(s)", flush=True)
        for transport in opts.transports.split(","):
            target = cn.Target(transport, server.socket_path, port=server.port)
            series += measure(target, server.pid, place, duration=opts.duration,
                              rounds=opts.rounds)
    found = checks(series)
    print(f"\n== Hit throughput ({THREADS} threads sharing a client / {PROCESSES} processes "
          "with a client each) ==")
    print(table(series))
    print("\n== Targets ==")
    for check in found:
        print(check.line())
    record = {"config": {"duration_s": opts.duration, "rounds": opts.rounds,
                         "threads": THREADS, "processes": PROCESSES,
                         "placement": place.describe()},
              "machine": machine, "throughput": [s.as_dict() for s in series],
              "checks": [c.as_dict() for c in found],
              "elapsed_s": round(time.perf_counter() - started, 1)}
    opts.output.parent.mkdir(parents=True, exist_ok=True)
    opts.output.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"results: {opts.output}")
    return 0 if all(c.passed for c in found if not c.informational) else 1


def _exit_on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C: every ``finally`` stops what this command started."""
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    sys.exit(main())
