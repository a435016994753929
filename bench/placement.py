"""CPU placement of the benchmark client and the Redis server.

On a small VM the cost of one round trip depends on whether the client and the server share a
core (no cross-core wake-up, ~3x cheaper here), and the scheduler flips between the two mid-run.
Every latency figure is therefore measured under an explicit placement, with both sides pinned,
and compared only with the baseline measured under the same placement.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Placement:
    """Where the client (this process) and every thread of the server may run."""

    name: str
    client_cpus: frozenset[int]
    server_cpus: frozenset[int]

    def describe(self) -> str:
        """``same core (client 0, server 0)``-style text for tables."""
        return (
            f"{self.name} (client {_cpus(self.client_cpus)}, server {_cpus(self.server_cpus)})"
        )


def _cpus(cpus: frozenset[int]) -> str:
    return ",".join(str(c) for c in sorted(cpus))


_INITIAL_CPUS = frozenset(os.sched_getaffinity(0))


def available_cpus() -> frozenset[int]:
    """The CPUs this process could run on when the suite started (before any pinning)."""
    return _INITIAL_CPUS


def placements() -> list[Placement]:
    """``same core`` and, with two CPUs or more, ``different cores``."""
    cpus = sorted(available_cpus())
    first = frozenset({cpus[0]})
    result = [Placement("same core", first, first)]
    if len(cpus) > 1:
        result.append(Placement("different cores", first, frozenset({cpus[1]})))
    return result


def unpinned() -> Placement:
    """Every available CPU for both sides (used for the multi-process stampede)."""
    cpus = available_cpus()
    return Placement("unpinned", cpus, cpus)


def server_threads(pid: int) -> list[int]:
    """Thread ids of process ``pid`` (the server's main, I/O and background threads)."""
    return sorted(int(tid) for tid in os.listdir(f"/proc/{pid}/task"))


def apply(placement: Placement, server_pid: int) -> dict[str, object]:
    """Pin this process and every thread of ``server_pid``; return what the kernel reports.

    Pinning ``0`` pins the calling thread, and threads created later inherit its mask, so call this
    from the thread that runs the measurements.
    """
    os.sched_setaffinity(0, placement.client_cpus)
    seen: dict[int, list[int]] = {}
    for tid in server_threads(server_pid):
        try:
            os.sched_setaffinity(tid, placement.server_cpus)
            seen[tid] = sorted(os.sched_getaffinity(tid))
        except (ProcessLookupError, FileNotFoundError):
            continue  # a short-lived background thread ended meanwhile
    return {
        "name": placement.name,
        "client_cpus": sorted(os.sched_getaffinity(0)),
        "server_threads": {str(tid): cpus for tid, cpus in seen.items()},
    }


class ForeignLoad:
    """CPU used by *other* processes while the suite runs, in CPUs (0.0 = a quiet machine).

    Total busy time from ``/proc/stat`` minus this process (and its children) and the server.
    """

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self.start = self._sample()

    def _sample(self) -> tuple[float, float, float]:
        tick = os.sysconf("SC_CLK_TCK")
        with open("/proc/stat", encoding="ascii") as stat:
            fields = [int(x) for x in stat.readline().split()[1:]]
        busy = (sum(fields) - fields[3] - fields[4]) / tick  # minus idle and iowait
        times = os.times()
        own = times.user + times.system + times.children_user + times.children_system
        try:
            with open(f"/proc/{self.server_pid}/stat", encoding="ascii") as stat:
                parts = stat.read().rsplit(")", 1)[1].split()
            own += (int(parts[11]) + int(parts[12])) / tick  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
        return time.monotonic(), busy, own

    def cpus(self) -> float:
        """Average number of CPUs other processes kept busy since this object was created."""
        now, busy, own = self._sample()
        start, busy0, own0 = self.start
        return max(0.0, ((busy - busy0) - (own - own0)) / max(now - start, 1e-9))
