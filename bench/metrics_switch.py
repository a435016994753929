"""Hit latency with :mod:`memo_redis.metrics` on (the default) and off, in one process and run.

``python -m bench.metrics_switch`` (alone, writes ``bench/results/metrics-switch.json``), or the
``metrics`` phase of ``python -m bench.run`` (see bench/README.md).

``metrics.set_enabled(False)`` swaps every :class:`~memo_redis.metrics.FunctionMetrics` for a
class whose recorders are no-ops. What it does not turn off, on a hit: the driver's lookup timing
(two ``perf_counter_ns()`` calls and a subtraction in ``SyncDriver.read`` /
``AsyncDriver.read``), the call of the (no-op) recorder from ``Stats.hit``, and ``cache_info()``'s
own counter (a lock and an increment, not part of metrics). Variants, switched in this process
between blocks of calls:

* ``on``: the default.
* ``off``: ``metrics.set_enabled(False)``; the target compares ``on`` with it.
* ``off again (A/A control)``: ``off`` once more, entered through the same class swaps a real
  switch makes (on, then off): its ratio to ``off`` shows what the method reads when nothing
  differs.
* ``off, untimed`` *(diagnostic)*: ``off``, and the drivers' ``read()`` recompiled from its own
  source without the lookup timing (the events get ``-1``: not timed).
* ``on, untimed (no histogram)`` *(diagnostic)*: ``on`` with that ``read()``: the recorder counts
  the hit but, given no duration, skips the lookup histogram.
* ``off, untimed, no recorder call`` *(diagnostic)*: that, and ``Stats.hit`` without the call of
  the no-op recorder: what a hit costs when metrics off skips every piece of metrics.

Figures: the sync hit and the async hit (``@cached`` on the benchmark server's unix socket), and
the sync hit on a client stand-in that replays the ``MGET`` reply from memory (no I/O: memo_redis's
own CPU per hit, where the pieces are visible above the noise of the round trip). Rounds (21 by
default) rotate the order of the figures and of the variants; in a round each figure runs its
variants and its raw baseline in :data:`SPLIT` passes of short blocks, the order reversed every
other pass, with ``on``, ``off`` and the control always back to back. A variant's figure for the
round is the mean over its passes; a ratio is the median over rounds of (variant / ``off``) in
the same round; a piece's cost is the median over rounds of the difference of two variants' µs
in the same round. Each placement of :mod:`bench.placement` (same core, different cores) is
measured, both sides pinned. Separately, each piece is timed alone (CPU only, the minimum over
batches). Target: ``on`` <= 1.02x ``off`` for the sync and the async hit in every placement.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import inspect
import json
import math
import re
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the ``bench`` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis

import memo_redis
from bench import contenders as cn
from bench import latency, placement, report
from bench.compare_versions import Replay
from bench.workload import LIMIT, ROWS, TABLE, Rows
from memo_redis import RedisCaching, cached, metrics
from memo_redis.backend import drivers
from memo_redis.decorators import stats as stats_module

RESULTS = Path(__file__).resolve().parent / "results" / "metrics-switch.json"
LIMIT_RATIO = 1.02
ON, OFF = "on", "off"
CONTROL = "off again (A/A control)"
UNTIMED = "off, untimed"
BARE = "off, untimed, no recorder call"
ON_UNTIMED = "on, untimed (no histogram)"
VARIANTS = (ON, OFF, CONTROL, ON_UNTIMED, UNTIMED, BARE)
ADJACENT = (ON, OFF, CONTROL)
"""Always run back to back (``on off control``, reversed in odd rounds and passes)."""
SYNC, ASYNC, NO_IO = "sync hit", "async hit", "sync hit, no I/O"
FIGURES = (SYNC, ASYNC, NO_IO)
RAW_OF = {SYNC: latency.SYNC_BASELINE, ASYNC: latency.ASYNC_BASELINE}
PIECES: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("set_enabled(False) saves (on - off)", (ON,), (OFF,)),
    ("still paid when off: lookup timing (off - off,untimed)", (OFF,), (UNTIMED,)),
    ("still paid when off: no-op recorder call (untimed - bare)", (UNTIMED,), (BARE,)),
    ("all of metrics (on - bare), made of:", (ON,), (BARE,)),
    ("  timing + histogram, on (on - on,untimed)", (ON,), (ON_UNTIMED,)),
    ("  counting body (on,untimed - off,untimed)", (ON_UNTIMED,), (UNTIMED,)),
    ("  no-op recorder call (off,untimed - bare)", (UNTIMED,), (BARE,)),
    ("histogram alone (timing + histogram - timing)", (ON, UNTIMED), (ON_UNTIMED, OFF)),
)
"""Each piece: its label, the variants added and the variants subtracted, per round."""
WARM_CALLS = 20
MAX_CALLS = 20_000
SPLIT = 10
"""Passes per round: each variant's block is split in this many short blocks (see
:func:`measure_placement`)."""


# == the variants: switching metrics and the diagnostic patches in this process =============


class Switch:
    """Puts this process in one variant; the patches are built once, from memo_redis's source."""

    def __init__(self) -> None:
        self.original_reads = {cls: cls.__dict__["read"]
                               for cls in (drivers.SyncDriver, drivers.AsyncDriver)}
        self.original_stats_hit = stats_module.Stats.__dict__["hit"]
        self.errors: list[str] = []
        self.untimed_reads: dict[type, Any] = {}
        for cls, function in self.original_reads.items():
            try:
                self.untimed_reads[cls] = _untimed(function)
            except (OSError, TypeError, ValueError) as error:
                self.errors.append(f"{cls.__name__}.read without timing: {error}")
        self.bare_stats_hit: Any = None
        if {"_lock", "hits", "recorder"} <= set(getattr(stats_module.Stats, "__slots__", ())):
            self.bare_stats_hit = _stats_hit_without_recorder
        else:
            self.errors.append("Stats.hit without the recorder: Stats has no _lock/hits slots")
        self.current = ON

    def available(self, variant: str) -> bool:
        """Can this variant be built against this memo_redis?"""
        if variant in ADJACENT:
            return True
        if len(self.untimed_reads) != len(self.original_reads):
            return False
        return variant != BARE or self.bare_stats_hit is not None

    def apply(self, variant: str) -> None:
        """Switch metrics and the patches to ``variant``."""
        if variant == CONTROL:  # the class swap a real switch makes, then off again
            metrics.set_enabled(True)
            metrics.set_enabled(False)
        elif metrics.enabled() != (variant in (ON, ON_UNTIMED)):
            metrics.set_enabled(variant in (ON, ON_UNTIMED))
        # Assign only what changes: assigning a class attribute invalidates the interpreter's
        # specializations keyed on that class, even with the same value.
        for cls, function in self.original_reads.items():
            chosen = (self.untimed_reads[cls] if variant in (ON_UNTIMED, UNTIMED, BARE)
                      else function)
            if cls.__dict__["read"] is not chosen:
                cls.read = chosen  # type: ignore[method-assign]
        hit = self.bare_stats_hit if variant == BARE else self.original_stats_hit
        if stats_module.Stats.__dict__["hit"] is not hit:
            stats_module.Stats.hit = hit  # type: ignore[method-assign]
        self.current = variant

    def restore(self) -> None:
        """Back to memo_redis as imported, metrics on."""
        self.apply(ON)


def _untimed(function: Any) -> Any:
    """``read`` compiled again from its source with the lookup timing taken out."""
    source = textwrap.dedent(inspect.getsource(function))
    edits = ((r"\n[ \t]*self\._tick = tick = .*\n", "\n"),
             (r"\n[ \t]*started = 0 if tick else perf_counter_ns\(\)\n", "\n"),
             (r"events\.hit\(-1 if tick else perf_counter_ns\(\) - started\)", "events.hit()"),
             (r"events\.miss\(-1 if tick else perf_counter_ns\(\) - started\)",
              "events.miss()"))
    for old, new in edits:
        source, count = re.subn(old, new, source)
        if count != 1:
            raise ValueError(f"expected one {old!r} in its source, found {count}")
    if "perf_counter_ns" in source or "super(" in source or "__class__" in source:
        raise ValueError("its source changed shape; the patch would not be faithful")
    namespace: dict[str, Any] = {}
    exec(compile(source, f"<untimed {function.__qualname__}>", "exec"),
         vars(drivers), namespace)
    patched = namespace[function.__name__]
    patched.__qualname__ = function.__qualname__
    return patched


def _stats_hit_without_recorder(self: Any, lookup_ns: int = -1) -> None:
    """``Stats.hit`` without the call of the metrics recorder (cache_info()'s count stays)."""
    with self._lock:
        self.hits += 1


# == measuring ==============================================================================


@dataclass
class Run:
    """Per placement, figure and variant: µs per call (wall, client CPU) in every round."""

    placement: str
    rounds_us: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    rounds_cpu_us: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    calls: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, figure: str, variant: str, us: float, cpu_us: float) -> None:
        """Record one block."""
        self.rounds_us.setdefault(figure, {}).setdefault(variant, []).append(us)
        self.rounds_cpu_us.setdefault(figure, {}).setdefault(variant, []).append(cpu_us)


class Contenders:
    """The cached functions under test, their raw baselines, and the no-I/O stand-in."""

    def __init__(self, target: cn.Target, prefix: str = "sqlm") -> None:
        body = cn.Body(ROWS)
        self.sync_cache = RedisCaching(target.url)
        self.async_cache = RedisCaching(target.url)
        self.replay_client = Replay(redis.Redis(**target.redis_kwargs()))
        stand_in: Any = self.replay_client
        self.replay_cache = RedisCaching(client=stand_in)

        @cached(prefix=prefix + ":{table}", cache=self.sync_cache, ttl=cn.TTL_SECONDS)
        def fetch(table: str, limit: int, page: int = 0) -> Rows:
            return body(table, limit, page)

        @cached(prefix=prefix + "a:{table}", cache=self.async_cache, ttl=cn.TTL_SECONDS)
        async def afetch(table: str, limit: int, page: int = 0) -> Rows:
            return await body.run_async(table, limit, page)

        @cached(prefix=prefix + "r:{table}", cache=self.replay_cache, ttl=cn.TTL_SECONDS)
        def rfetch(table: str, limit: int, page: int = 0) -> Rows:
            return body(table, limit, page)

        self.functions = (fetch, afetch, rfetch)
        self.memo: dict[str, cn.Contender] = {
            SYNC: cn.SyncContender("memo_redis", lambda: fetch(TABLE, LIMIT),
                                   lambda i: fetch(TABLE, LIMIT, i), self.sync_cache.close,
                                   family="memo"),
            ASYNC: cn.AsyncContender("memo_redis async", lambda: afetch(TABLE, LIMIT),
                                     lambda i: afetch(TABLE, LIMIT, i), self.async_cache.aclose,
                                     family="memo"),
            NO_IO: cn.SyncContender("memo_redis no I/O", lambda: rfetch(TABLE, LIMIT),
                                    lambda i: rfetch(TABLE, LIMIT, i), self.replay_cache.close,
                                    family="memo"),
        }
        self.raw: dict[str, cn.Contender] = {SYNC: cn.raw(target, body),
                                              ASYNC: cn.raw_async(target, body)}

    def everyone(self) -> list[cn.Contender]:
        """Every contender (the no-I/O one twice: its first call stores, its second replays)."""
        return [*self.memo.values(), *self.raw.values(), self.memo[NO_IO]]

    def misses(self) -> int:
        """Misses counted by the three cached functions so far."""
        return sum(f.cache_info().misses for f in self.functions)

    def check(self, loop: asyncio.AbstractEventLoop) -> None:
        """Every contender returns the rows; the stand-in never went to Redis for a hit."""
        for contender, value in zip(self.everyone(), latency.warm_all(self.everyone(), loop),
                                    strict=True):
            if value != ROWS:
                raise AssertionError(f"{contender.name} returned {value!r:.80}")
        if self.replay_client.forwarded_mgets:
            raise AssertionError("the no-I/O hit sent an MGET to Redis")

    def close(self, loop: asyncio.AbstractEventLoop) -> None:
        """Close the caches and the stand-in's real client."""
        self.sync_cache.close()
        self.replay_cache.close()
        self.replay_client.real.close()
        loop.run_until_complete(self.async_cache.aclose())
        for contender in self.raw.values():
            if isinstance(contender, cn.AsyncContender):
                loop.run_until_complete(contender.close())
            else:
                contender.close()


def _calls(contender: cn.Contender, n: int, loop: asyncio.AbstractEventLoop,
           pages: Iterator[int]) -> tuple[float, float]:
    """(wall, client CPU) µs per call of ``n`` hits, without the collection ``time_block`` runs
    first (done once per figure and round here)."""
    if isinstance(contender, cn.AsyncContender):
        return loop.run_until_complete(latency._time_async(contender, "hit", n, pages))
    return latency._time_sync(contender, "hit", n, pages)


def measure_placement(c: Contenders, switch: Switch, p: placement.Placement, server_pid: int,
                      rounds: int, block_ms: float, loop: asyncio.AbstractEventLoop) -> Run:
    """Interleaved rounds of every figure and variant under placement ``p``.

    In a round, each figure's variants (and its raw baseline) run in :data:`SPLIT` passes of
    short blocks, the order reversed every other pass (``on off a b raw``, ``raw b a off on``,
    ...), so a drift of the machine within the round hits every variant alike; a variant's
    figure for the round is the mean over its passes."""
    placement.apply(p, server_pid)
    pages = latency.fresh_pages(3_000_000_000)
    variants = [v for v in VARIANTS if switch.available(v)]
    run = Run(p.describe())
    for figure in FIGURES:  # size the blocks
        run.calls[figure] = {}
        chosen = [(v, c.memo[figure]) for v in variants]
        if figure in c.raw:
            chosen.append((RAW_OF[figure], c.raw[figure]))
        for name, contender in chosen:
            switch.apply(name if name in VARIANTS else ON)
            latency.time_block(contender, "hit", 100, pages, loop)
            us, _ = latency.time_block(contender, "hit", 200, pages, loop)
            run.calls[figure][name] = max(latency.MIN_CALLS, min(
                MAX_CALLS, int(block_ms * 1000 / us / SPLIT)))
    for r in range(rounds):
        figures = FIGURES[r % len(FIGURES):] + FIGURES[: r % len(FIGURES)]
        misses = c.misses()
        for figure in figures:
            adjacent = list(ADJACENT) if r % 2 == 0 else list(ADJACENT[::-1])
            units: list[list[str]] = [adjacent,
                                      *[[v] for v in variants if v not in ADJACENT]]
            if figure in c.raw:
                units.append([RAW_OF[figure]])
            units = units[r % len(units):] + units[: r % len(units)]
            names = [name for unit in units for name in unit]
            totals = {name: [0.0, 0.0] for name in names}
            gc.collect()
            for j in range(SPLIT):
                for name in names if j % 2 == 0 else names[::-1]:
                    if name in VARIANTS:
                        switch.apply(name)
                        contender = c.memo[figure]
                    else:
                        switch.apply(ON)
                        contender = c.raw[figure]
                    _calls(contender, WARM_CALLS, loop, pages)  # re-specialize after a switch
                    us, cpu_us = _calls(contender, run.calls[figure][name], loop, pages)
                    totals[name][0] += us / SPLIT
                    totals[name][1] += cpu_us / SPLIT
            for name, (us, cpu_us) in totals.items():
                run.add(figure, name, us, cpu_us)
        switch.apply(ON)
        if c.misses() != misses:
            raise AssertionError(f"round {r}: {c.misses() - misses} misses in hit blocks")
        c.check(loop)
    return run


# == each piece alone (CPU only) ============================================================


def micro_costs(batches: int = 15, n: int = 20_000) -> dict[str, float]:
    """ns per operation of each piece, timed alone: the minimum over batches, minus an empty
    loop's ns per iteration."""
    from time import perf_counter_ns

    recorder = metrics.FunctionMetrics("bench.metrics_switch.micro", "data")
    stats = stats_module.Stats("bench.metrics_switch.micro_stats", "data")

    def timed(body: Callable[[int], None]) -> float:
        best = math.inf
        for _ in range(batches):
            start = perf_counter_ns()
            body(n)
            best = min(best, (perf_counter_ns() - start) / n)
        return best

    def empty(k: int) -> None:
        for _ in range(k):
            pass

    def clock_pair(k: int) -> None:
        pc = perf_counter_ns
        for _ in range(k):
            started = pc()
            _ = pc() - started

    def recorder_hit(k: int) -> None:
        hit = recorder.hit
        for _ in range(k):
            hit(180_000)

    def recorder_hit_untimed(k: int) -> None:
        hit = recorder.hit
        for _ in range(k):
            hit()

    def stats_hit(k: int) -> None:
        hit = stats.hit
        for _ in range(k):
            hit(180_000)

    def stats_hit_untimed(k: int) -> None:
        hit = stats.hit
        for _ in range(k):
            hit()

    def bare_stats_hit(k: int) -> None:
        hit = _stats_hit_without_recorder
        for _ in range(k):
            hit(stats)

    out: dict[str, float] = {}
    base = timed(empty)
    out["lookup timing (2 perf_counter_ns() + subtraction)"] = timed(clock_pair) - base
    for label, enabled in (("on", True), ("off", False)):
        metrics.set_enabled(enabled)
        recorder.__class__ = (metrics.FunctionMetrics if enabled
                              else metrics._DisabledFunctionMetrics)
        out[f"FunctionMetrics.hit(lookup_ns), metrics {label}"] = timed(recorder_hit) - base
        out[f"FunctionMetrics.hit() untimed (no histogram), metrics {label}"] = (
            timed(recorder_hit_untimed) - base)
        out[f"Stats.hit(lookup_ns), metrics {label}"] = timed(stats_hit) - base
        out[f"Stats.hit() untimed, metrics {label}"] = timed(stats_hit_untimed) - base
    metrics.set_enabled(True)
    out["Stats.hit without the recorder call (cache_info() count only)"] = (
        timed(bare_stats_hit) - base)
    return {k: round(v, 1) for k, v in out.items()}


# == summaries, table, checks ===============================================================


def _quartiles(values: list[float]) -> list[float]:
    if len(values) < 2:
        return [values[0], values[0]] if values else [math.nan, math.nan]
    q = statistics.quantiles(values, n=4)
    return [q[0], q[2]]


def _sign_test(pairs: list[float]) -> tuple[int, int, float]:
    above = sum(1 for p in pairs if p > 1.0)
    n = sum(1 for p in pairs if p != 1.0)
    if n == 0:
        return 0, 0, 1.0
    tail = min(above, n - above)
    return above, n, min(1.0, sum(math.comb(n, k) for k in range(tail + 1)) / 2**n * 2)


def summarize(run: Run) -> dict[str, Any]:
    """Per figure: each variant's median µs and ratio to ``off``; each piece's cost."""
    out: dict[str, Any] = {}
    for figure, by_variant in run.rounds_us.items():
        off = by_variant[OFF]
        cpu = run.rounds_cpu_us[figure]
        variants: dict[str, Any] = {}
        for name, rounds in by_variant.items():
            ratios = [a / b for a, b in zip(rounds, off, strict=True)]
            cpu_ratios = [a / b for a, b in zip(cpu[name], cpu[OFF], strict=True)]
            above, n, p = _sign_test(ratios)
            variants[name] = {
                "median_us": statistics.median(rounds),
                "median_cpu_us": statistics.median(cpu[name]),
                "ratio_to_off": statistics.median(ratios),
                "ratio_to_off_p25_p75": _quartiles(ratios),
                "cpu_ratio_to_off": statistics.median(cpu_ratios),
                "rounds_slower_than_off": above, "rounds_compared": n, "sign_test_p": p,
                "rounds_us": rounds, "rounds_cpu_us": cpu[name],
                "calls_per_pass": run.calls[figure][name],
            }
        raw = RAW_OF.get(figure)
        for name in VARIANTS:
            if name in variants and raw in by_variant:
                to_raw = [a / b for a, b in zip(by_variant[name], by_variant[raw], strict=True)]
                variants[name]["ratio_to_raw"] = statistics.median(to_raw)
        pieces: dict[str, Any] = {}
        for label, plus, minus in PIECES:
            if not all(name in by_variant for name in plus + minus):
                continue
            diffs = []
            for table_ in (by_variant, cpu):
                per_round = [0.0] * len(off)
                for sign, names in ((1.0, plus), (-1.0, minus)):
                    for name in names:
                        per_round = [t + sign * x * 1000.0
                                     for t, x in zip(per_round, table_[name], strict=True)]
                diffs.append(per_round)
            diff, cpu_diff = diffs
            pieces[label] = {"ns": statistics.median(diff), "ns_p25_p75": _quartiles(diff),
                             "cpu_ns": statistics.median(cpu_diff),
                             "share_of_off_hit": statistics.median(diff) / 1000.0
                             / statistics.median(off)}
        out[figure] = {"variants": variants, "pieces": pieces}
    return out


def table(summaries: dict[str, dict[str, Any]], micro: dict[str, float], rounds: int) -> str:
    """The printed report."""
    head = (f"  {'variant':<32}{'us/call':>9}{'x off':>8}{'(p25..p75)':>17}"
            f"{'>off':>8}{'client CPU':>12}{'x off':>8}{'x raw':>8}")
    lines: list[str] = []
    for where, figures in summaries.items():
        lines.append(f"-- {where} --")
        for figure, f in figures.items():
            lines += [f" {figure}", head]
            for name, v in f["variants"].items():
                lo, hi = v["ratio_to_off_p25_p75"]
                slower = (f"{v['rounds_slower_than_off']}/{v['rounds_compared']}"
                          if name != OFF else "")
                to_raw = f"{v['ratio_to_raw']:7.3f}x" if "ratio_to_raw" in v else ""
                lines.append(
                    f"  {name:<32}{v['median_us']:9.2f}{v['ratio_to_off']:7.4f}x"
                    f"  ({lo:6.4f}..{hi:6.4f}){slower:>8}{v['median_cpu_us']:9.2f} us"
                    f"{v['cpu_ratio_to_off']:7.4f}x{to_raw:>8}")
            for label, piece in f["pieces"].items():
                lo, hi = piece["ns_p25_p75"]
                lines.append(f"    {label:<58}{piece['ns']:7.0f} ns ({lo:.0f}..{hi:.0f}), "
                             f"client CPU {piece['cpu_ns']:.0f} ns, "
                             f"{piece['share_of_off_hit'] * 100:+.2f}% of the off hit")
        lines.append("")
    lines.append("each piece alone (CPU only, minimum over batches, ns per operation):")
    lines += [f"  {label:<62}{ns:8.1f} ns" for label, ns in micro.items()]
    lines.append(f"x off: median over {rounds} rounds of (variant / off) in the same round; "
                 ">off: rounds where the variant was slower than off; piece: median of the "
                 "per-round difference of two variants")
    return "\n".join(lines)


def checks(summaries: dict[str, dict[str, Any]]) -> list[report.Check]:
    """``on`` <= 1.02x ``off`` for the sync and async hit, per placement; the no-I/O hit and
    the A/A control as info."""
    out = []
    for where, figures in summaries.items():
        for figure in FIGURES:
            if figure not in figures:
                continue
            v = figures[figure]["variants"][ON]
            off = figures[figure]["variants"][OFF]
            lo, hi = v["ratio_to_off_p25_p75"]
            out.append(report.Check(
                f"{figure}, metrics on <= {LIMIT_RATIO:.2f}x off", f"unix / {where}",
                f"{v['ratio_to_off']:.4f}x (p25..p75 {lo:.4f}..{hi:.4f}; on slower in "
                f"{v['rounds_slower_than_off']}/{v['rounds_compared']} rounds; "
                f"{v['median_us']:.2f} vs {off['median_us']:.2f} us)", f"<= {LIMIT_RATIO:.2f}x",
                v["ratio_to_off"] <= LIMIT_RATIO, informational=figure == NO_IO))
            control = figures[figure]["variants"].get(CONTROL)
            if control is not None:
                lo, hi = control["ratio_to_off_p25_p75"]
                out.append(report.Check(
                    f"{figure}, A/A control (off again / off)", f"unix / {where}",
                    f"{control['ratio_to_off']:.4f}x (p25..p75 {lo:.4f}..{hi:.4f})",
                    "about 1.00x", abs(control["ratio_to_off"] - 1.0) <= LIMIT_RATIO - 1.0,
                    informational=True))
    return out


def measure(target: cn.Target, server_pid: int, *, rounds: int, block_ms: float,
            loop: asyncio.AbstractEventLoop, say: Callable[[str], None] = print
            ) -> dict[str, Any]:
    """The whole section on an already-running server; leaves metrics on, nothing patched."""
    switch = Switch()
    c = Contenders(target)
    summaries: dict[str, Any] = {}
    masks: list[dict[str, object]] = []
    try:
        c.check(loop)
        micro = micro_costs()
        for p in placement.placements():
            t0 = time.perf_counter()
            masks.append(placement.apply(p, server_pid))
            run = measure_placement(c, switch, p, server_pid, rounds, block_ms, loop)
            summaries[run.placement] = summarize(run)
            say(f"  metrics on/off, {p.name}: {time.perf_counter() - t0:.1f} s")
    finally:
        switch.restore()
        c.close(loop)
    return {"rounds": rounds, "block_ms": block_ms, "limit": LIMIT_RATIO,
            "variants_unavailable": switch.errors, "placements": masks,
            "micro_ns": micro, "summary": summaries}


def _provenance() -> dict[str, str]:
    """Which memo_redis ran: the commit of its tree, and whether memo_redis/ had changes."""
    tree = Path(memo_redis.__file__).resolve().parent.parent

    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(tree), *args], capture_output=True, text=True,
                              check=False)
        return done.stdout.strip() if done.returncode == 0 else "?"

    dirty = git("status", "--porcelain", "--", "memo_redis")
    return {"memo_redis_version": getattr(memo_redis, "__version__", "?"),
            "commit": git("rev-parse", "--short", "HEAD"),
            "memo_redis_tree": "uncommitted changes in memo_redis/" if dirty else "clean"}


def main(argv: list[str] | None = None) -> int:
    """Run the section alone; exit 1 when a target is missed."""
    parser = argparse.ArgumentParser(prog="python -m bench.metrics_switch",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 21)")
    parser.add_argument("--block-ms", type=float, default=None,
                        help="ms per block of calls (default 50)")
    parser.add_argument("--quick", action="store_true", help="a smoke run, not a result")
    parser.add_argument("--server-binary", default=None)
    parser.add_argument("--output", type=Path, default=RESULTS)
    opts = parser.parse_args(argv)
    rounds = opts.rounds or (3 if opts.quick else 21)
    block_ms = opts.block_ms or (15.0 if opts.quick else 50.0)
    from memo_redis.servers import EmbeddedServer

    started = time.perf_counter()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = EmbeddedServer(opts.server_binary)
    with server:
        assert server.pid is not None
        info = report.machine_info(server.version, server.engine, server.binary)
        meter = placement.ForeignLoad(server.pid)
        try:
            section = measure(cn.Target("unix", server.socket_path), server.pid, rounds=rounds,
                              block_ms=block_ms, loop=loop)
        finally:
            placement.apply(placement.unpinned(), server.pid)
        load = round(meter.cpus(), 2)
    loop.close()
    found = checks(section["summary"])
    result = {"config": {"rounds": rounds, "block_ms": block_ms, "quick": opts.quick,
                         "transport": "unix"},
              "memo_redis": _provenance(), "machine": info, **section,
              "checks": [c.as_dict() for c in found], "foreign_cpu_load": load,
              "elapsed_s": round(time.perf_counter() - started, 1)}
    print("\n== Hit with memo_redis.metrics on vs off (unix socket; same process, interleaved "
          "rounds) ==")
    print(table(section["summary"], section["micro_ns"], rounds))
    for error in section["variants_unavailable"]:
        print(f"  diagnostic variant not built: {error}")
    if load > 0.25:
        print(f"\nWARNING: other processes kept {load} CPUs busy during the run: the figures are "
              "noisy; rerun on a quiet machine")
    print("\n== Targets ==")
    for check in found:
        print(check.line())
    opts.output.parent.mkdir(parents=True, exist_ok=True)
    opts.output.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"\nresults: {opts.output}; foreign CPU load {load}; {result['elapsed_s']:.0f} s")
    counted = [c for c in found if not c.informational]
    return 0 if all(c.passed for c in counted) else 1


if __name__ == "__main__":
    sys.exit(main())
