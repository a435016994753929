"""Run the memo_redis benchmark suite: ``python -m bench.run`` (or ``python bench/run.py``).

Starts one private server (unix socket + TCP loopback), measures every figure against the raw
redis-py baseline of the same run, placement and transport, prints the tables and the target
checks, and writes ``bench/results/results.json`` and ``bench/results/invalidation.png``.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the ``bench`` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis

from bench import contenders as cn
from bench import (
    invalidation,
    latency,
    metrics_switch,
    placement,
    profile_paths,
    report,
    stampede,
    storage,
    throughput,
)
from bench.workload import ROWS, random_text_rows
from memo_redis.servers import EmbeddedServer

RESULTS = Path(__file__).resolve().parent / "results"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true",
                        help="also invalidate among 4,000,000 keys (~1 GB, ~1 more minute)")
    parser.add_argument("--quick", action="store_true",
                        help="few rounds and iterations: a smoke run of the suite, not a result")
    parser.add_argument("--rounds", type=int, default=None, help="latency rounds (default 9)")
    parser.add_argument("--only",
                        default="latency,profile,metrics,throughput,storage,stampede,"
                                "invalidation",
                        help="comma-separated phases to run (default: all)")
    parser.add_argument("--metrics-rounds", type=int, default=None,
                        help="rounds of the metrics on/off section (default 21; 3 with --quick)")
    parser.add_argument("--throughput-duration", type=float, default=None,
                        help="seconds per contender and mode of the throughput section "
                             f"(default {throughput.DEFAULT_DURATION:g}; 0.5 with --quick)")
    parser.add_argument("--server-binary", default=None,
                        help="redis-server / valkey-server to run (default: found by memo_redis)")
    parser.add_argument("--output", type=Path, default=None,
                        help="JSON file to write (default bench/results/results[-full].json)")
    parser.add_argument("--cluster", action="store_true",
                        help="instead, run bench.cluster on a local Redis Cluster (3 primaries, "
                             "3 replicas): hit/miss ratios to a raw RedisCluster, invalidation")
    return parser.parse_args(argv)


def _say(text: str) -> None:
    print(text, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the suite; exit status 0 when every target is met, 1 otherwise."""
    opts = _parse(argv)
    if opts.cluster:
        from bench import cluster

        forwarded = ["--rounds", str(opts.rounds)] if opts.rounds else []
        forwarded += ["--iterations", "200"] if opts.quick else []
        forwarded += ["--server-binary", opts.server_binary] if opts.server_binary else []
        forwarded += ["--json", str(opts.output)] if opts.output else []
        return cluster.main(forwarded)
    phases = set(opts.only.split(","))
    rounds = opts.rounds or (3 if opts.quick else 9)
    block_ms = 15.0 if opts.quick else 50.0
    sizes = [100_000, 1_000_000] + ([4_000_000] if opts.full else [])
    inv_rounds, scan_rounds = (2, 1) if opts.quick else (7, 3)
    started = time.perf_counter()
    output: Path = opts.output or RESULTS / ("results-full.json" if opts.full else "results.json")
    result: dict[str, Any] = {"config": {
        "rounds": rounds, "block_ms": block_ms,
        "invalidation_sizes": sizes, "invalidation_rounds": inv_rounds,
        "scan_rounds": scan_rounds, "quick": opts.quick, "full": opts.full,
        "rows": len(ROWS), "stampede": f"{stampede.PROCESSES} processes x {stampede.CALLERS}",
    }}
    checks: list[report.Check] = []
    server = EmbeddedServer(opts.server_binary, tcp=True,
                            config={"enable-debug-command": "local"})
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    with server:
        assert server.pid is not None and server.port is not None
        result["machine"] = report.machine_info(server.version, server.engine, server.binary)
        _say(f"server: {server.engine} {server.version}; python {sys.version.split()[0]}; "
             f"{len(placement.available_cpus())} CPUs available")
        admin = server.client()
        targets = {
            "unix": cn.Target("unix", server.socket_path),
            "tcp": cn.Target("tcp", server.socket_path, port=server.port),
        }
        placements = placement.placements()
        phase_load: dict[str, float] = {}
        result["placements"] = []
        for p in placements:
            result["placements"].append(placement.apply(p, server.pid))

        if phases & {"latency", "profile"}:
            meter = placement.ForeignLoad(server.pid)
            blocks, profiles, names, diagnostics = _latency(
                opts, phases, targets, placements, server.pid, loop, rounds, block_ms, admin)
            phase_load["latency"] = round(meter.cpus(), 2)
            result["latency"] = [_block_json(b) for b in blocks]
            result["profile"] = profiles
            checks += report.latency_checks(blocks)
            if blocks:
                _say("\n== Hit latency: median us per call, ratio to the raw client of the same "
                     "kind (sync/async) in the same transport, placement and round ==")
                _say(report.latency_table(blocks, "hit", names, diagnostics))
                _say("\n== Miss latency (cold key every call: lookup + body + store) ==")
                _say(report.latency_table(blocks, "miss", names, diagnostics))
                for figure in ("hit", "miss"):
                    _say(f"\n== Client CPU time per {figure} (user + system of the calling "
                         "thread: the cost without waiting for the server) ==")
                    _say(report.latency_table(blocks, figure, names, diagnostics, cpu=True))
            for label, prof in profiles.items():
                _say(f"\n== memo_redis key path, us per call ({label}; CPU-only steps: minimum "
                     "over batches; round trips: median wall, and the client's CPU part) ==")
                for part in ("hit", "miss"):
                    _say(f"  {part} path{'':<50}{'wall':>9}{'client CPU':>12}")
                    cpu_part = prof[f"{part}_client_cpu_us"]
                    for step, us in prof[f"{part}_us"].items():
                        extra = f"{cpu_part[step]:12.2f}" if step in cpu_part else ""
                        _say(f"    {step:<56}{us:9.2f}{extra}")
                for error in prof["errors"]:
                    _say(f"  could not time: {error}")
        admin.flushall()
        placement.apply(placement.unpinned(), server.pid)

        if "metrics" in phases:
            meter = placement.ForeignLoad(server.pid)
            metrics_rounds = opts.metrics_rounds or (3 if opts.quick else 21)
            section = metrics_switch.measure(targets["unix"], server.pid, rounds=metrics_rounds,
                                             block_ms=block_ms, loop=loop, say=_say)
            placement.apply(placement.unpinned(), server.pid)
            phase_load["metrics"] = round(meter.cpus(), 2)
            result["metrics_switch"] = section
            checks += metrics_switch.checks(section["summary"])
            _say("\n== Hit with memo_redis.metrics on vs off (unix socket; same process, "
                 "interleaved rounds) ==")
            _say(metrics_switch.table(section["summary"], section["micro_ns"], metrics_rounds))
            for error in section["variants_unavailable"]:
                _say(f"  diagnostic variant not built: {error}")
            admin.flushall()

        if "throughput" in phases:
            meter = placement.ForeignLoad(server.pid)
            duration = opts.throughput_duration or (0.5 if opts.quick else
                                                    throughput.DEFAULT_DURATION)
            place = throughput.choose_placement("split")
            series = throughput.measure(targets["unix"], server.pid, place, duration=duration,
                                        loop=loop, say=_say)
            placement.apply(placement.unpinned(), server.pid)
            phase_load["throughput"] = round(meter.cpus(), 2)
            result["throughput"] = {"duration_s": duration, "placement": place.describe(),
                                    "series": [s.as_dict() for s in series]}
            checks += throughput.checks(series)
            _say(f"\n== Hit throughput, {duration:g} s per contender: {throughput.THREADS} "
                 f"threads sharing a client / {throughput.PROCESSES} processes with a client "
                 f"each ({place.describe()}) ==")
            _say(throughput.table(series))
            admin.flushall()

        if "storage" in phases:
            records = storage.measure(cn.STORAGE, targets["unix"], admin, ROWS, "sql", loop)
            records += storage.measure(cn.STORAGE, targets["unix"], admin, random_text_rows(),
                                       "random text", loop)
            result["storage"] = records
            checks += report.storage_checks(records)
            _say("\n== Bytes per entry (MEMORY USAGE of the entry key) ==")
            _say(report.storage_table(records))

        if "stampede" in phases:
            meter = placement.ForeignLoad(server.pid)
            outcomes = []
            for i, builder in enumerate(cn.STAMPEDE):
                admin.flushall()
                outcomes.append(stampede.run(builder, targets["unix"], 90_000_000 + i))
            phase_load["stampede"] = round(meter.cpus(), 2)
            result["stampede"] = [o.as_dict() for o in outcomes]
            checks += report.stampede_checks(outcomes)
            _say(f"\n== Stampede: {stampede.PROCESSES} processes x {stampede.CALLERS} callers on "
                 f"one cold key, {stampede.BODY_SECONDS * 1000:.0f} ms body (unpinned) ==")
            _say(report.stampede_table(outcomes))

        if "invalidation" in phases:
            meter = placement.ForeignLoad(server.pid)
            series, index_bytes = _invalidation(admin, targets["unix"], placements, server.pid,
                                                sizes, inv_rounds, scan_rounds)
            phase_load["invalidation"] = round(meter.cpus(), 2)
            result["invalidation"] = [s.as_dict() for s in series]
            result["memo_index_bytes_per_entry"] = round(index_bytes, 1)
            checks += report.invalidation_checks(series)
            _say("\n== Invalidation of one table's 10,000 entries (median ms, unix socket) ==")
            _say(report.invalidation_table(series))
            _say("memo_redis removal, server-side time by command (INFO commandstats):")
            _say(report.invalidation_server_lines(series))
            _say(f"memo_redis per-table index: {index_bytes:.1f} bytes per entry (MEMORY USAGE "
                 "of the index set / members)")
            plot_name = "invalidation-full.png" if opts.full else "invalidation.png"
            plot_path = output.parent / plot_name
            report.plot_invalidation(series, plot_path)
            result["plot"] = plot_path.name
    loop.close()

    result["checks"] = [c.as_dict() for c in checks]
    result["elapsed_s"] = round(time.perf_counter() - started, 1)
    result["foreign_cpu_load"] = phase_load
    if max(phase_load.values(), default=0.0) > 0.25:
        _say(f"\nWARNING: other processes kept {phase_load} CPUs busy during the phases (of "
             f"{len(placement.available_cpus())}): figures measured while the machine was shared "
             "are noisy; rerun on a quiet machine")
    _say("\n== Targets ==")
    for check in checks:
        _say(check.line())
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    counted = [c for c in checks if not c.informational]
    _say(f"\n{sum(c.passed for c in counted)}/{len(counted)} targets met; results: {output}; "
         f"{result['elapsed_s']:.0f} s")
    return 0 if all(c.passed for c in counted) else 1


def _block_json(block: latency.Block) -> dict[str, Any]:
    out: dict[str, Any] = {
        "figure": block.figure, "transport": block.transport, "placement": block.placement,
        "ping_us_median": round(report._median(block.ping_us), 2), "contenders": {},
    }
    for name, rounds in block.rounds_us.items():
        baseline = latency.ASYNC_BASELINE if report._is_async_name(name) else latency.SYNC_BASELINE
        out["contenders"][name] = {
            "median_us": round(block.median_us(name), 2),
            "ratio_to_baseline": round(block.ratio(name, baseline), 4),
            "client_cpu_us_median": round(block.median_cpu_us(name), 2),
            "client_cpu_ratio_to_baseline": round(block.cpu_ratio(name, baseline), 4),
            "baseline": baseline,
            "calls_per_round": block.calls.get(name),
            "rounds_us": [round(r, 2) for r in rounds],
            "rounds_client_cpu_us": [round(r, 2) for r in block.rounds_cpu_us[name]],
        }
    return out


def _latency(opts: argparse.Namespace, phases: set[str], targets: dict[str, cn.Target],
             placements: list[placement.Placement], server_pid: int,
             loop: asyncio.AbstractEventLoop, rounds: int, block_ms: float, admin: Any
             ) -> tuple[list[latency.Block], dict[str, Any], list[str], set[str]]:
    blocks: list[latency.Block] = []
    names: list[str] = []
    diagnostics: set[str] = set()
    profiles: dict[str, Any] = {}
    pages = latency.fresh_pages()
    for transport, target in targets.items():
        contenders = [builder(target, cn.Body(ROWS)) for builder in cn.LATENCY]
        names = [c.name for c in contenders]
        diagnostics = {c.name for c in contenders if c.diagnostic}
        results = latency.warm_all(contenders, loop)
        for contender, value in zip(contenders, results, strict=True):
            if value != ROWS:
                raise AssertionError(f"{contender.name} returned {value!r:.80}")
        ping = redis.Redis(**target.redis_kwargs())
        for p in placements:
            placement.apply(p, server_pid)
            if "latency" in phases:
                for figure in ("hit", "miss"):
                    t0 = time.perf_counter()
                    block = latency.measure(contenders, figure, transport=transport,
                                            placement=p.name, rounds=rounds, block_ms=block_ms,
                                            pages=pages, loop=loop, ping_client=ping)
                    blocks.append(block)
                    _say(f"  {figure} latency, {transport}, {p.name}: "
                         f"{time.perf_counter() - t0:.1f} s")
            if "profile" in phases and transport == "unix":
                memo = next(c for c in contenders if c.name == "memo_redis")
                t0 = time.perf_counter()
                profiles[f"{transport} / {p.name}"] = profile_paths.profile(
                    memo.fetch, ping, admin,  # type: ignore[union-attr]
                    cpu_batches=15 if opts.quick else 60, net_calls=300 if opts.quick else 2000)
                _say(f"  profile, {transport}, {p.name}: {time.perf_counter() - t0:.1f} s")
        ping.close()
        for contender in contenders:
            if isinstance(contender, cn.AsyncContender):
                loop.run_until_complete(contender.close())
            else:
                contender.close()
    return blocks, profiles, names, diagnostics


def _invalidation(admin: Any, target: cn.Target, placements: list[placement.Placement],
                  server_pid: int, sizes: list[int], rounds: int, scan_rounds: int
                  ) -> tuple[list[invalidation.Series], float]:
    series: list[invalidation.Series] = []
    cache = invalidation.TimedCaching(target.url)
    index_bytes = 0.0
    for size in sizes:
        t0 = time.perf_counter()
        placement.apply(placement.unpinned(), server_pid)
        invalidation.populate(admin, size)
        if not index_bytes:
            index_bytes = invalidation.index_bytes_per_entry(cache, admin,
                                                             invalidation.entry_keys())
        for p in placements:
            placement.apply(p, server_pid)
            series += invalidation.measure_size(admin, cache, size, p.name, rounds=rounds,
                                                scan_rounds=scan_rounds)
        _say(f"  invalidation among {size:,} keys: {time.perf_counter() - t0:.1f} s")
    admin.flushall()
    cache.close()
    return series, index_bytes


if __name__ == "__main__":
    sys.exit(main())
