"""Hit and miss latency: interleaved rounds, each contender's mean per call, medians over rounds.

Within a round every contender runs one block of calls (about the same duration each), in an
order rotated each round, so slow drifts of the machine hit every contender alike. A contender's
figure is the median of its per-round means; its *ratio* is the median over rounds of (its mean /
the baseline's mean in the same round), which cancels drift between rounds too.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import redis

from .contenders import AsyncContender, Contender, SyncContender

SYNC_BASELINE = "raw redis-py"
ASYNC_BASELINE = "raw redis.asyncio"
MIN_CALLS = 40
MAX_CALLS = 3000


@dataclass
class Block:
    """Per-round means (µs per call) of every contender for one figure, transport and placement."""

    figure: str
    transport: str
    placement: str
    rounds_us: dict[str, list[float]] = field(default_factory=dict)
    rounds_cpu_us: dict[str, list[float]] = field(default_factory=dict)
    """Client CPU time (this thread, user + system) per call: the cost without the waiting."""
    ping_us: list[float] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=dict)

    def median_us(self, name: str) -> float:
        """Median of ``name``'s per-round means."""
        return statistics.median(self.rounds_us[name])

    def ratio(self, name: str, baseline: str) -> float:
        """Median over rounds of ``name`` / ``baseline`` measured in the same round."""
        pairs = zip(self.rounds_us[name], self.rounds_us[baseline], strict=True)
        return statistics.median(a / b for a, b in pairs)

    def median_cpu_us(self, name: str) -> float:
        """Median of ``name``'s per-round client CPU µs per call."""
        return statistics.median(self.rounds_cpu_us[name])

    def cpu_ratio(self, name: str, baseline: str) -> float:
        """Like :meth:`ratio`, for client CPU time."""
        pairs = zip(self.rounds_cpu_us[name], self.rounds_cpu_us[baseline], strict=True)
        return statistics.median(a / b for a, b in pairs)


def baseline_of(contender: Contender) -> str:
    """The baseline a contender is compared with: the raw client of its own kind."""
    return ASYNC_BASELINE if contender.is_async else SYNC_BASELINE


def _time_sync(contender: SyncContender, figure: str, n: int, pages: Iterator[int]
               ) -> tuple[float, float]:
    wall, cpu = time.perf_counter_ns, time.thread_time_ns
    if figure == "hit":
        hit = contender.hit
        start, start_cpu = wall(), cpu()
        for _ in range(n):
            hit()
    else:
        miss = contender.miss
        batch = [next(pages) for _ in range(n)]
        start, start_cpu = wall(), cpu()
        for page in batch:
            miss(page)
    return (wall() - start) / n / 1000.0, (cpu() - start_cpu) / n / 1000.0


async def _time_async(contender: AsyncContender, figure: str, n: int,
                      pages: Iterator[int]) -> tuple[float, float]:
    wall, cpu = time.perf_counter_ns, time.thread_time_ns
    if figure == "hit":
        hit = contender.hit
        start, start_cpu = wall(), cpu()
        for _ in range(n):
            await hit()
    else:
        miss = contender.miss
        batch = [next(pages) for _ in range(n)]
        start, start_cpu = wall(), cpu()
        for page in batch:
            await miss(page)
    return (wall() - start) / n / 1000.0, (cpu() - start_cpu) / n / 1000.0


def time_block(contender: Contender, figure: str, n: int, pages: Iterator[int],
               loop: asyncio.AbstractEventLoop) -> tuple[float, float]:
    """(wall, client CPU) µs per call of ``n`` calls (hits, or misses on fresh pages)."""
    gc.collect()
    if isinstance(contender, AsyncContender):
        return loop.run_until_complete(_time_async(contender, figure, n, pages))
    return _time_sync(contender, figure, n, pages)


def ping_us(client: redis.Redis, n: int = 300) -> float:
    """Mean µs of a bare ``PING`` (the round-trip floor under the current placement)."""
    start = time.perf_counter_ns()
    for _ in range(n):
        client.ping()
    return (time.perf_counter_ns() - start) / n / 1000.0


def measure(contenders: list[Contender], figure: str, *, transport: str, placement: str,
            rounds: int, block_ms: float, pages: Iterator[int], loop: asyncio.AbstractEventLoop,
            ping_client: redis.Redis) -> Block:
    """Run ``rounds`` interleaved rounds of ``figure`` ("hit" or "miss") over ``contenders``.

    Each contender's block lasts about ``block_ms`` (its call count is sized from a warm-up), so
    slow contenders do not stretch the run and fast ones still average many calls.
    """
    block = Block(figure, transport, placement, {c.name: [] for c in contenders},
                  {c.name: [] for c in contenders})
    calls: dict[str, int] = {}
    for contender in contenders:  # warm connections and code paths; size the blocks
        time_block(contender, figure, 20, pages, loop)
        us, _ = time_block(contender, figure, 60, pages, loop)
        calls[contender.name] = max(MIN_CALLS, min(MAX_CALLS, int(block_ms * 1000 / us)))
    block.calls = calls
    for r in range(rounds):
        order = contenders[r % len(contenders):] + contenders[: r % len(contenders)]
        block.ping_us.append(ping_us(ping_client))
        for contender in order:
            us, cpu_us = time_block(contender, figure, calls[contender.name], pages, loop)
            block.rounds_us[contender.name].append(us)
            block.rounds_cpu_us[contender.name].append(cpu_us)
    return block


def warm_all(contenders: list[Contender], loop: asyncio.AbstractEventLoop) -> list[Any]:
    """Store every contender's hot entry; returns what each first call returned."""
    results: list[Any] = []
    for contender in contenders:
        if isinstance(contender, AsyncContender):
            results.append(loop.run_until_complete(contender.warm()))
        else:
            results.append(contender.warm())
    return results


def fresh_pages(start: int = 1_000_000) -> Iterator[int]:
    """Pages never used before in this run (each miss gets a cold key)."""
    return itertools.count(start)
