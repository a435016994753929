"""memo_redis before vs after a change, hit and miss latency in one run.

``python -m bench.compare_versions`` (see bench/README.md).

The package restructure rule: the bench's hit and miss figures are compared *before* and *after*
in the same run, on the same server and placement, each as a ratio to raw redis-py measured in
the same round. Both versions are named ``memo_redis``, so they cannot share a process: each runs
in a worker subprocess of its own (``PYTHONPATH`` = its tree), both against one private
:class:`~memo_redis.servers.EmbeddedServer` (unix socket) started here. The workers take turns
(one round of the before worker, one of the after worker, alternating which goes first) and only
one measures at a time; the other waits on its pipe.

Each worker round times, in blocks of about ``--block-ms`` each (order rotated each round):

* **sync hit**: raw redis-py (``GET`` + ``msgpack.unpackb``) and ``@cached`` (sync);
* **async hit**: raw redis.asyncio (the same) and ``@cached`` on an ``async def``;
* **sync miss** (a key never seen before, every call): raw redis-py (``GET`` then ``SET EX``) and
  ``@cached`` with its defaults (single-flight and the race-free store on).

A figure is the median over rounds of the mean µs per call; its ratio is the median over rounds
of (``@cached`` / raw) in the same worker round. The version comparison pairs round ``r`` of the
before worker with round ``r`` of the after worker: the median of (after ratio / before ratio),
and a sign test over the pairs tells a difference from noise. Every figure is taken under each
placement of :mod:`bench.placement` (same core, different cores), with both sides pinned.

The before tree is ``--before PATH`` (a directory holding ``memo_redis/``), else the commit
``--before-commit`` (``git archive`` into a temporary directory); the after tree is ``--after
PATH``, else this checkout's working tree (uncommitted changes included). ``--profile`` adds a
cProfile of sync hits in each version. Writes ``bench/results/compare-versions.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import IO, Any

_BENCH_DIR = Path(__file__).resolve().parent
_REPO_ROOT = _BENCH_DIR.parent

DEFAULT_BEFORE_COMMIT = "ec06231"
RESULTS = _BENCH_DIR / "results" / "compare-versions.json"
FIGURES = ("sync hit", "async hit", "sync miss")
NO_IO = "sync hit, no I/O"
"""Diagnostic: a hit whose MGET reply is replayed from memory (memo_redis's own CPU cost)."""
RAW_OF = {"sync hit": "raw redis-py", "async hit": "raw redis.asyncio",
          "sync miss": "raw redis-py"}
MEMO_OF = {"sync hit": "memo_redis", "async hit": "memo_redis async", "sync miss": "memo_redis"}
PAGE_BASE = {"before": 1_000_000_000, "after": 2_000_000_000}
PREFIX = {"before": "sqlb", "after": "sqla"}  # same length: same key sizes, separate entries


# == the worker: one version of memo_redis ==================================================


def _worker(opts: argparse.Namespace) -> int:
    import asyncio
    import cProfile
    import io
    import pstats

    # Run as a script (``python bench/compare_versions.py --worker``): the script's directory is
    # sys.path[0]; drop it so that nothing but the PYTHONPATH tree provides ``memo_redis``.
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _BENCH_DIR]
    import redis

    import memo_redis

    tree = Path(opts.tree).resolve()
    where = Path(memo_redis.__file__).resolve().parent.parent
    if where != tree:
        raise SystemExit(f"worker {opts.label}: memo_redis was imported from another tree")
    # memo_redis is bound to the tree now; bench's helpers come from this checkout.
    sys.path.insert(0, str(_REPO_ROOT))
    from bench import contenders as cn
    from bench import latency
    from bench.workload import LIMIT, ROWS, TABLE, Rows
    from memo_redis import RedisCaching, cached

    target = cn.Target("unix", opts.socket)
    body = cn.Body(ROWS)
    prefix = PREFIX[opts.label] + ":{table}"
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)

    sync_cache = RedisCaching(target.url)
    async_cache = RedisCaching(target.url)

    @cached(prefix=prefix, cache=sync_cache, ttl=cn.TTL_SECONDS)
    def fetch(table: str, limit: int, page: int = 0) -> Rows:
        return body(table, limit, page)

    @cached(prefix=prefix + "a", cache=async_cache, ttl=cn.TTL_SECONDS)
    async def afetch(table: str, limit: int, page: int = 0) -> Rows:
        return await body.run_async(table, limit, page)

    memo = cn.SyncContender("memo_redis", lambda: fetch(TABLE, LIMIT),
                            lambda i: fetch(TABLE, LIMIT, i), sync_cache.close, family="memo")
    memo_async = cn.AsyncContender("memo_redis async", lambda: afetch(TABLE, LIMIT),
                                   lambda i: afetch(TABLE, LIMIT, i), async_cache.aclose,
                                   family="memo")
    replay_client = Replay(redis.Redis(**target.redis_kwargs()))
    stand_in: Any = replay_client
    replay_cache = RedisCaching(client=stand_in)

    @cached(prefix=prefix + "r", cache=replay_cache, ttl=cn.TTL_SECONDS)
    def rfetch(table: str, limit: int, page: int = 0) -> Rows:
        return body(table, limit, page)

    replay = cn.SyncContender("memo_redis no I/O", lambda: rfetch(TABLE, LIMIT),
                              lambda i: rfetch(TABLE, LIMIT, i), replay_cache.close,
                              family="memo")
    raw, raw_async = cn.raw(target, body), cn.raw_async(target, body)
    plan: dict[str, list[cn.Contender]] = {"hit": [raw, memo, raw_async, memo_async],
                                           "miss": [raw, memo], "no I/O": [replay]}
    everyone: list[cn.Contender] = [raw, memo, raw_async, memo_async, replay, replay]
    for contender, value in zip(everyone, latency.warm_all(everyone, loop), strict=True):
        if value != ROWS:
            raise AssertionError(f"{opts.label} {contender.name} returned {value!r:.80}")
    pages = latency.fresh_pages(PAGE_BASE[opts.label])
    ping = redis.Redis(**target.redis_kwargs())
    calls: dict[str, dict[str, int]] = {}

    def reply(message: dict[str, Any]) -> None:
        out.write(json.dumps(message) + "\n")
        out.flush()

    out: IO[str] = sys.stdout
    sys.stdout = sys.stderr  # nothing else may write on the pipe
    reply({"ready": True, "version": getattr(memo_redis, "__version__", "?")})
    for line in sys.stdin:
        message = json.loads(line)
        command = message["cmd"]
        if command == "quit":
            break
        if command == "setup":  # a new placement: pin, warm up, size the blocks
            os.sched_setaffinity(0, message["cpus"])
            block_ms = float(message["block_ms"])
            for figure, chosen in plan.items():
                calls[figure] = {}
                kind = "miss" if figure == "miss" else "hit"
                for contender in chosen:
                    latency.time_block(contender, kind, 20, pages, loop)
                    us, _ = latency.time_block(contender, kind, 60, pages, loop)
                    calls[figure][contender.name] = max(
                        latency.MIN_CALLS, min(latency.MAX_CALLS, int(block_ms * 1000 / us)))
            reply({"calls": calls, "cpus": sorted(os.sched_getaffinity(0))})
        elif command == "round":
            shift = int(message["index"])
            result: dict[str, Any] = {"ping_us": latency.ping_us(ping)}
            for figure, chosen in plan.items():
                order = chosen[shift % len(chosen):] + chosen[: shift % len(chosen)]
                timed = {}
                misses = sum(f.cache_info().misses for f in (fetch, afetch, rfetch))
                kind = "miss" if figure == "miss" else "hit"
                for contender in order:
                    timed[contender.name] = latency.time_block(
                        contender, kind, calls[figure][contender.name], pages, loop)
                result[figure] = timed
                result[f"{figure}_misses"] = sum(
                    f.cache_info().misses for f in (fetch, afetch, rfetch)) - misses
            for figure in ("hit", "no I/O"):
                if result[f"{figure}_misses"]:
                    raise SystemExit(f"worker {opts.label}: {result[f'{figure}_misses']} misses "
                                     f"in a {figure} block")
            for contender, value in zip(everyone, latency.warm_all(everyone, loop), strict=True):
                if value != ROWS:  # every contender still returns the right rows
                    raise SystemExit(f"worker {opts.label}: {contender.name} returned "
                                     f"{value!r:.80}")
            if replay_client.forwarded_mgets:
                raise SystemExit(f"worker {opts.label}: the no-I/O hit sent an MGET to Redis")
            reply(result)
        elif command == "profile":
            n = int(message["calls"])
            what = message["what"]
            batch = [next(pages) for _ in range(n)]
            call = {"no I/O": lambda _: replay.hit(), "hit": lambda _: memo.hit(),
                    "miss": memo.miss}[what]
            profiler = cProfile.Profile()
            start = time.perf_counter_ns()
            profiler.enable()
            for page in batch:
                call(page)
            profiler.disable()
            profiled_us = (time.perf_counter_ns() - start) / n / 1000.0
            texts = {}
            for sort_key in ("tottime", "cumulative"):
                text = io.StringIO()
                stats = pstats.Stats(profiler, stream=text)
                stats.sort_stats(sort_key).print_stats(int(message["top"]))
                texts[sort_key] = _clean_profile(text.getvalue(), [tree, _REPO_ROOT])
            per_call = {
                _clean_profile(f"{func[0]}:{func[1]}({func[2]})" if func[0] != "~" else func[2],
                               [tree, _REPO_ROOT]):
                    [round(row[1] / n, 3), round(row[2] / n * 1e6, 3)]
                for func, row in stats.stats.items()  # type: ignore[attr-defined]
            }
            reply({"calls": n, "profiled_us_per_call": profiled_us,
                   "function_calls_per_call": stats.total_calls / n,  # type: ignore[attr-defined]
                   "per_call_ncalls_tottime_us": per_call, **texts})
        else:
            raise SystemExit(f"worker {opts.label}: unknown command {command!r}")
    ping.close()
    sync_cache.close()
    replay_cache.close()
    replay_client.real.close()
    loop.run_until_complete(async_cache.aclose())
    loop.close()
    return 0


class Replay:
    """A redis-py client stand-in: forwards every call to ``real``, except that the reply of an
    ``MGET`` that found its value is kept and replayed for the same keys from then on. A hit of
    a cache on it runs all of memo_redis's hit path but no socket I/O and no redis-py."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.replies: dict[tuple[Any, ...], Any] = {}
        self.forwarded_mgets = 0

    def execute_command(self, *args: Any, **options: Any) -> Any:
        """The kept reply of this MGET, or the real client's reply."""
        reply = self.replies.get(args)
        if reply is not None:
            return reply
        reply = self.real.execute_command(*args, **options)
        if args[0] == "MGET":
            if reply[-1] is not None:
                self.replies[args] = reply
            elif self.replies:
                self.forwarded_mgets += 1
        return reply

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def _clean_profile(text: str, roots: list[Path]) -> str:
    """pstats text without machine paths (trees become relative, site-packages dropped)."""
    import re

    text = re.sub(r"/[^\s:()]*/(?:site-packages|lib/python3\.\d+)/", "", text)
    for root in roots:
        text = text.replace(str(root) + "/", "")
    lines = [line for line in text.splitlines() if line.strip()]
    start = next((i for i, line in enumerate(lines) if "function calls" in line), 0)
    return "\n".join(lines[start:])


# == the parent: trees, server, placements, rounds, tables ==================================


class Worker:
    """One version's worker subprocess, driven over its stdin/stdout (JSON lines)."""

    def __init__(self, label: str, tree: Path, socket_path: str) -> None:
        self.label = label
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(tree)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # leave the trees as they are
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--worker", "--label", label,
             "--tree", str(tree), "--socket", socket_path],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=str(tree))
        hello = self.read()
        self.version = str(hello.get("version", "?"))

    def read(self) -> dict[str, Any]:
        """The worker's next reply."""
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            code = self.process.wait()
            raise RuntimeError(f"the {self.label} worker exited (status {code}); see its stderr")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def ask(self, **message: Any) -> dict[str, Any]:
        """Send one command, wait for its reply."""
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()
        return self.read()

    def close(self) -> None:
        """Ask the worker to quit; kill it if it does not."""
        if self.process.poll() is None:
            try:
                assert self.process.stdin is not None
                self.process.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                self.process.stdin.close()
                self.process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()


def _git(*args: str) -> str:
    done = subprocess.run(["git", "-C", str(_REPO_ROOT), *args], check=True,
                          capture_output=True, text=True)
    return done.stdout.strip()


def _extract(commit: str, into: Path) -> None:
    """``git archive`` of ``commit``'s memo_redis/ into ``into``."""
    into.mkdir(parents=True, exist_ok=True)
    data = subprocess.run(["git", "-C", str(_REPO_ROOT), "archive", "--format=tar", commit,
                           "memo_redis"], check=True, capture_output=True).stdout
    import io

    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        if sys.version_info >= (3, 12):
            archive.extractall(into, filter="data")
        else:
            archive.extractall(into)  # our own repository's archive


def _check_tree(tree: Path, what: str) -> Path:
    tree = tree.resolve()
    if not (tree / "memo_redis" / "__init__.py").is_file():
        raise SystemExit(f"{what}: {tree.name!r} holds no memo_redis/ package")
    return tree


def _after_description(after: Path | None) -> str:
    if after is not None:
        return "tree given by --after"
    head = _git("rev-parse", "--short", "HEAD")
    dirty = _git("status", "--porcelain", "--", "memo_redis")
    return f"working tree at {head}" + (" + uncommitted changes in memo_redis/" if dirty else "")


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def _sign_test(pairs: list[float]) -> tuple[int, int, float]:
    """(rounds with after/before > 1, rounds compared, two-sided binomial p)."""
    above = sum(1 for p in pairs if p > 1.0)
    n = sum(1 for p in pairs if p != 1.0)
    if n == 0:
        return 0, 0, 1.0
    tail = min(above, n - above)
    p = sum(math.comb(n, k) for k in range(tail + 1)) / 2**n * 2
    return above, n, min(1.0, p)


def _summarize(rounds: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Per figure: each version's medians and per-round ratios, and the paired comparison."""
    out: dict[str, Any] = {}
    for figure in FIGURES:
        kind = "hit" if "hit" in figure else "miss"
        memo_name, raw_name = MEMO_OF[figure], RAW_OF[figure]
        versions: dict[str, Any] = {}
        for label, results in rounds.items():
            memo = [r[kind][memo_name] for r in results]
            raw = [r[kind][raw_name] for r in results]
            ratios = [m[0] / b[0] for m, b in zip(memo, raw, strict=True)]
            cpu_ratios = [m[1] / b[1] for m, b in zip(memo, raw, strict=True)]
            versions[label] = {
                "memo_us": _median([m[0] for m in memo]),
                "raw_us": _median([b[0] for b in raw]),
                "ratio": _median(ratios),
                "ratio_p25_p75": _quartiles(ratios),
                "memo_cpu_us": _median([m[1] for m in memo]),
                "raw_cpu_us": _median([b[1] for b in raw]),
                "cpu_ratio": _median(cpu_ratios),
                "rounds_ratio": ratios,
                "rounds_cpu_ratio": cpu_ratios,
                "rounds_memo_us": [m[0] for m in memo],
                "rounds_raw_us": [b[0] for b in raw],
            }
        before, after = versions["before"], versions["after"]
        paired = [a / b for a, b in zip(after["rounds_ratio"], before["rounds_ratio"],
                                        strict=True)]
        paired_cpu = [a / b for a, b in zip(after["rounds_cpu_ratio"],
                                            before["rounds_cpu_ratio"], strict=True)]
        above, n, p = _sign_test(paired)
        cpu_above, cpu_n, cpu_p = _sign_test(paired_cpu)
        change = _median(paired)
        verdict = "no difference beyond noise"
        if p < 0.05:
            verdict = "after slower" if change > 1.0 else "after faster"
        out[figure] = {
            "before": before, "after": after,
            "after_over_before_ratio": change,
            "rounds_after_over_before": paired,
            "rounds_after_slower": above, "rounds_compared": n, "sign_test_p": p,
            "cpu_after_over_before_ratio": _median(paired_cpu),
            "cpu_rounds_after_slower": cpu_above, "cpu_rounds_compared": cpu_n,
            "cpu_sign_test_p": cpu_p,
            "verdict": verdict,
        }
    out[NO_IO] = _summarize_no_io(rounds)
    return out


def _summarize_no_io(rounds: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    versions: dict[str, dict[str, Any]] = {}
    for label, results in rounds.items():
        us = [r["no I/O"]["memo_redis no I/O"][0] for r in results]
        versions[label] = {"memo_us": _median(us), "p25_p75": _quartiles(us), "rounds_us": us}
    paired = [a / b for a, b in zip(versions["after"]["rounds_us"],
                                    versions["before"]["rounds_us"], strict=True)]
    above, n, p = _sign_test(paired)
    change = _median(paired)
    verdict = "no difference beyond noise"
    if p < 0.05:
        verdict = "after slower" if change > 1.0 else "after faster"
    return {**versions, "after_over_before": change, "rounds_after_over_before": paired,
            "rounds_after_slower": above, "rounds_compared": n, "sign_test_p": p,
            "verdict": verdict}


def _quartiles(values: list[float]) -> list[float]:
    if len(values) < 2:
        return [values[0], values[0]] if values else [math.nan, math.nan]
    q = statistics.quantiles(values, n=4)
    return [q[0], q[2]]


def _table(summary: dict[str, dict[str, Any]], rounds: int) -> str:
    head = (f"{'figure':<10}{'version':<9}{'memo_redis':>11}{'raw':>9}{'ratio':>8}"
            f"{'(p25..p75)':>15}{'client CPU':>12}{'cpu ratio':>11}")
    lines: list[str] = []
    for where, figures in summary.items():
        lines += [f"-- {where} --", head, "-" * len(head)]
        for figure, f in figures.items():
            if figure == NO_IO:
                continue
            for label in ("before", "after"):
                v = f[label]
                lo, hi = v["ratio_p25_p75"]
                lines.append(
                    f"{figure if label == 'before' else '':<10}{label:<9}"
                    f"{v['memo_us']:8.1f} us{v['raw_us']:6.1f} us{v['ratio']:7.3f}x"
                    f"  ({lo:5.3f}..{hi:5.3f}){v['memo_cpu_us']:9.1f} us{v['cpu_ratio']:10.3f}x")
            lines.append(
                f"{'':<10}{'after/before':<13} ratio x{f['after_over_before_ratio']:.3f} "
                f"({f['rounds_after_slower']}/{f['rounds_compared']} rounds slower, sign test "
                f"p={f['sign_test_p']:.3f}); client CPU ratio "
                f"x{f['cpu_after_over_before_ratio']:.3f} ({f['cpu_rounds_after_slower']}/"
                f"{f['cpu_rounds_compared']}, p={f['cpu_sign_test_p']:.3f}): {f['verdict']}")
        f = figures[NO_IO]
        b, a = f["before"], f["after"]
        lines.append(
            f"{NO_IO} (diag): before {b['memo_us']:.2f} us, after {a['memo_us']:.2f} us: "
            f"x{f['after_over_before']:.3f} ({f['rounds_after_slower']}/{f['rounds_compared']} "
            f"rounds slower, p={f['sign_test_p']:.3f}): {f['verdict']}")
        lines.append("")
    lines.append(f"{NO_IO}: the MGET reply is replayed from memory (no socket, no redis-py): "
                 "memo_redis's own CPU per hit")
    lines.append(f"ratio: median over {rounds} rounds of memo_redis / raw redis-py (asyncio for "
                 "async) in the same worker round; after/before: median of the paired per-round "
                 "ratios")
    return "\n".join(lines)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.compare_versions",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--before", type=Path, default=None,
                        help="a directory holding the before version's memo_redis/ package "
                             "(default: extract --before-commit)")
    parser.add_argument("--before-commit", default=DEFAULT_BEFORE_COMMIT,
                        help="commit to extract with git archive (default "
                             f"{DEFAULT_BEFORE_COMMIT})")
    parser.add_argument("--after", type=Path, default=None,
                        help="a directory holding the after version's memo_redis/ package "
                             "(default: this checkout's working tree)")
    parser.add_argument("--after-commit", default=None,
                        help="instead of the working tree, extract this commit (git archive)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="rounds per version and placement (default 21; 3 with --quick)")
    parser.add_argument("--block-ms", type=float, default=None,
                        help="duration of one contender's block in a round (default 50; 15 "
                             "with --quick)")
    parser.add_argument("--quick", action="store_true", help="a smoke run, not a result")
    parser.add_argument("--profile", action="store_true",
                        help="also cProfile sync hits (real, and with the reply replayed: no "
                             "I/O) and sync misses in each version (same-core placement)")
    parser.add_argument("--profile-calls", type=int, default=5000,
                        help="hits profiled (misses: a fifth of it)")
    parser.add_argument("--profile-top", type=int, default=30,
                        help="functions listed per profile")
    parser.add_argument("--server-binary", default=None,
                        help="redis-server / valkey-server to run (default: found by memo_redis)")
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON file to write")
    # worker mode (internal)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--label", choices=("before", "after"), help=argparse.SUPPRESS)
    parser.add_argument("--tree", help=argparse.SUPPRESS)
    parser.add_argument("--socket", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _say(text: str) -> None:
    print(text, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Compare the two versions; exit status 0 (the comparison is reported, not judged)."""
    opts = _parse(argv)
    if opts.worker:
        return _worker(opts)
    rounds = opts.rounds or (3 if opts.quick else 21)
    block_ms = opts.block_ms or (15.0 if opts.quick else 50.0)
    if __package__ in (None, ""):
        sys.path.insert(0, str(_REPO_ROOT))
    from bench import placement, report
    from memo_redis.servers import EmbeddedServer

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="memo-compare-") as scratch:
        if opts.before is not None:
            before_tree = _check_tree(opts.before, "--before")
            before_what = "tree given by --before"
        else:
            _extract(opts.before_commit, Path(scratch) / "before")
            before_tree = _check_tree(Path(scratch) / "before", "--before-commit")
            before_what = f"commit {_git('rev-parse', '--short', opts.before_commit)}"
        if opts.after_commit is not None:
            _extract(opts.after_commit, Path(scratch) / "after")
            after_tree = _check_tree(Path(scratch) / "after", "--after-commit")
            after_what = f"commit {_git('rev-parse', '--short', opts.after_commit)}"
        else:
            after_tree = _check_tree(opts.after or _REPO_ROOT, "--after")
            after_what = _after_description(opts.after)
        _say(f"before: {before_what}; after: {after_what}")
        server = EmbeddedServer(opts.server_binary)
        workers: dict[str, Worker] = {}
        with server:
            assert server.pid is not None
            result: dict[str, Any] = {
                "config": {"rounds": rounds, "block_ms": block_ms, "quick": opts.quick,
                           "transport": "unix", "figures": list(FIGURES)},
                "versions": {"before": before_what, "after": after_what},
                "machine": report.machine_info(server.version, server.engine, server.binary),
                "placements": [],
            }
            _say(f"server: {server.engine} {server.version}; python "
                 f"{sys.version.split()[0]}; {len(placement.available_cpus())} CPUs available")
            try:
                for label, tree in (("before", before_tree), ("after", after_tree)):
                    workers[label] = Worker(label, tree, server.socket_path)
                summary, profiles = _measure(workers, server.pid, rounds, block_ms, opts,
                                             result, placement)
            finally:
                for worker in workers.values():
                    worker.close()
                placement.apply(placement.unpinned(), server.pid)
    result["summary"] = summary
    if profiles:
        result["profile"] = profiles
    result["elapsed_s"] = round(time.perf_counter() - started, 1)
    _say("\n== memo_redis before vs after: median us per call, ratio to the raw client of the "
         "same kind in the same worker round (unix socket) ==")
    _say(_table(summary, rounds))
    for label, prof in profiles.items():
        _say(f"\n== cProfile of {prof['calls']} sync calls, {label}: "
             f"{prof['function_calls_per_call']:.1f} function calls and "
             f"{prof['profiled_us_per_call']:.1f} us per call under the profiler ==")
        if not label.startswith("hit"):  # the real hit's profile is in the JSON
            _say(prof["tottime"])
    load = result.get("foreign_cpu_load", 0.0)
    if load > 0.25:
        _say(f"\nWARNING: other processes kept {load} CPUs busy during the run: the figures are "
             "noisy; rerun on a quiet machine")
    opts.output.parent.mkdir(parents=True, exist_ok=True)
    opts.output.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    _say(f"\nresults: {opts.output}; {result['elapsed_s']:.0f} s")
    return 0


def _measure(workers: dict[str, Worker], server_pid: int, rounds: int, block_ms: float,
             opts: argparse.Namespace, result: dict[str, Any], placement: Any
             ) -> tuple[dict[str, Any], dict[str, Any]]:
    summary: dict[str, Any] = {}
    profiles: dict[str, Any] = {}
    meter = placement.ForeignLoad(server_pid)
    start, workers_cpu = time.monotonic(), _cpu_seconds(workers)
    for p in placement.placements():
        t0 = time.perf_counter()
        masks = placement.apply(p, server_pid)
        setup = {label: w.ask(cmd="setup", cpus=sorted(p.client_cpus), block_ms=block_ms)
                 for label, w in workers.items()}
        masks["workers"] = {label: s["cpus"] for label, s in setup.items()}
        masks["calls_per_block"] = {label: s["calls"] for label, s in setup.items()}
        result["placements"].append(masks)
        per_round: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
        for r in range(rounds):
            order = ("before", "after") if r % 2 == 0 else ("after", "before")
            for label in order:
                per_round[label].append(workers[label].ask(cmd="round", index=r))
        summary[p.describe()] = _summarize(per_round)
        result.setdefault("ping_us", {})[p.describe()] = {
            label: _median([x["ping_us"] for x in rs]) for label, rs in per_round.items()}
        if opts.profile and not profiles:
            for what in ("no I/O", "hit", "miss"):
                for label, w in workers.items():
                    calls = opts.profile_calls // (5 if what == "miss" else 1)
                    profiles[f"{what}, {label}"] = w.ask(
                        cmd="profile", what=what, calls=max(1, calls), top=opts.profile_top)
        _say(f"  {p.describe()}: {time.perf_counter() - t0:.1f} s")
    # The meter counts the workers (still running, so not yet in this process's children times)
    # as other processes: take their CPU time out.
    workers_load = (_cpu_seconds(workers) - workers_cpu) / max(time.monotonic() - start, 1e-9)
    result["foreign_cpu_load"] = round(max(0.0, meter.cpus() - workers_load), 2)
    return summary, profiles


def _cpu_seconds(workers: dict[str, Worker]) -> float:
    """User + system CPU seconds the workers used so far."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for worker in workers.values():
        with open(f"/proc/{worker.process.pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


if __name__ == "__main__":
    sys.exit(main())
