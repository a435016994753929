"""Stampede: 4 processes x 8 threads (or 8 asyncio tasks) call one cold key at the same moment.

Each body run is counted in shared memory and takes 50 ms (a slow query), so a protected cache
runs it once and every other caller waits for the stored value. All callers are released together
by barriers (one across processes, then one across the threads or tasks of each process).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
import time
from dataclasses import dataclass
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Barrier as ProcessBarrier
from typing import Any

from .contenders import AsyncContender, Body, Builder, Target
from .workload import ROWS

PROCESSES = 4
CALLERS = 8
BODY_SECONDS = 0.05
TIMEOUT = 120.0


@dataclass
class Outcome:
    """What one stampede on one contender produced."""

    contender: str
    body_runs: int
    callers: int
    correct: int
    wall_ms: float

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "contender": self.contender, "body_runs": self.body_runs, "callers": self.callers,
            "correct_results": self.correct, "wall_ms": round(self.wall_ms, 1),
        }


def _child(builder: Builder, target: Target, page: int, runs: Synchronized[int],
           correct: Synchronized[int], barrier: ProcessBarrier) -> None:
    def count() -> None:
        with runs.get_lock():
            runs.value += 1

    contender = builder(target, Body(ROWS, on_run=count, delay=BODY_SECONDS))
    good = 0
    if isinstance(contender, AsyncContender):
        async def main() -> int:
            barrier.wait()
            results = await asyncio.gather(*(contender.miss(page) for _ in range(CALLERS)))
            await contender.close()
            return sum(r == ROWS for r in results)

        good = asyncio.run(main())
    else:
        local = threading.Barrier(CALLERS)
        oks: list[bool] = []

        def caller() -> None:
            local.wait()
            oks.append(contender.miss(page) == ROWS)

        threads = [threading.Thread(target=caller) for _ in range(CALLERS - 1)]
        for thread in threads:
            thread.start()
        barrier.wait()
        caller()
        for thread in threads:
            thread.join()
        contender.close()
        good = sum(oks)
    with correct.get_lock():
        correct.value += good


def run(builder: Builder, target: Target, page: int) -> Outcome:
    """One stampede on a cold key (``page`` must be unused) of the contender ``builder`` makes."""
    ctx = multiprocessing.get_context("fork")
    runs: Synchronized[int] = ctx.Value("i", 0)
    correct: Synchronized[int] = ctx.Value("i", 0)
    barrier = ctx.Barrier(PROCESSES)
    probe = builder(target, Body(ROWS))
    if not isinstance(probe, AsyncContender):
        probe.close()  # nothing connected yet; async clients bind to a loop only when used
    start = time.perf_counter()
    procs = [
        ctx.Process(target=_child, args=(builder, target, page, runs, correct, barrier))
        for _ in range(PROCESSES)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(TIMEOUT)
        if proc.is_alive():
            proc.kill()
            proc.join()
    wall = (time.perf_counter() - start) * 1000
    return Outcome(probe.name, runs.value, PROCESSES * CALLERS, correct.value, wall)
