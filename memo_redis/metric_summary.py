"""Reports from metric counts: histogram buckets, quantile estimates, per-function summaries.

Used by :func:`memo_redis.metrics.snapshot` for this process and by
:func:`memo_redis.exporters.published.read_published` for the totals of every process: both
start from the flat integer counts of :meth:`memo_redis.metrics.FunctionMetrics.counts`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["BOUNDS_NS", "BUCKETS", "COUNTERS", "NBUCKETS", "histogram_summary", "summarize"]

BUCKETS: tuple[float, ...] = (
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005,
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
"""Upper bounds (seconds, inclusive) of the latency histograms' finite buckets; one more
bucket (``+Inf``) follows."""

BOUNDS_NS: list[int] = [round(b * 1e9) for b in BUCKETS]
NBUCKETS = len(BUCKETS) + 1

COUNTERS: tuple[str, ...] = (
    "hits", "misses", "l1_hits", "stores", "refused_stores", "errors",
    "flight_waits", "early_refreshes", "invalidations", "bytes_stored",
)  # fmt: skip
"""The integer counters of a :class:`~memo_redis.metrics.FunctionMetrics` (plus
``flight_wait_ns``, reported as ``flight_wait_seconds``)."""


def _quantile(buckets: list[int], total: int, q: float) -> float | None:
    """Estimate a quantile (seconds) by linear interpolation inside the bucket holding it."""
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    for i, n in enumerate(buckets):
        if n and seen + n >= rank:
            if i >= len(BUCKETS):  # the +Inf bucket: report its lower bound
                return BUCKETS[-1]
            low = BUCKETS[i - 1] if i else 0.0
            return round(low + (BUCKETS[i] - low) * max(0.0, rank - seen) / n, 9)
        seen += n
    return BUCKETS[-1]


def histogram_summary(buckets: list[int], sum_ns: int) -> dict[str, Any]:
    """``count``, ``sum`` and ``mean`` (seconds), ``p50``/``p90``/``p99`` estimates and the
    cumulative ``buckets`` as ``[[upper_bound, count], ..., ["+Inf", count]]``."""
    total = sum(buckets)
    cumulative: list[list[Any]] = []
    running = 0
    for bound, n in zip((*BUCKETS, "+Inf"), buckets, strict=True):
        running += n
        cumulative.append([bound, running])
    return {
        "count": total,
        "sum": sum_ns / 1e9,
        "mean": sum_ns / 1e9 / total if total else None,
        "p50": _quantile(buckets, total, 0.50),
        "p90": _quantile(buckets, total, 0.90),
        "p99": _quantile(buckets, total, 0.99),
        "buckets": cumulative,
    }


def summarize(counts: Mapping[str, int]) -> dict[str, Any]:
    """A report from flat counts (:meth:`FunctionMetrics.counts`, or published ones).

    Fields: every name in :data:`COUNTERS`, ``calls`` (hits + l1_hits + misses + errors),
    ``hit_ratio`` (hits and L1 hits over hits, L1 hits and misses; ``None`` before any),
    ``flight_wait_seconds``, and ``lookup_seconds`` / ``compute_seconds`` histogram summaries
    (:func:`histogram_summary`).
    """
    out: dict[str, Any] = {name: int(counts.get(name, 0)) for name in COUNTERS}
    served = out["hits"] + out["l1_hits"]
    looked = served + out["misses"]
    out["calls"] = looked + out["errors"]
    out["hit_ratio"] = served / looked if looked else None
    out["flight_wait_seconds"] = int(counts.get("flight_wait_ns", 0)) / 1e9
    for phase in ("lookup", "compute"):
        buckets = [int(counts.get(f"{phase}_b{i}", 0)) for i in range(NBUCKETS)]
        out[f"{phase}_seconds"] = histogram_summary(buckets, int(counts.get(f"{phase}_sum_ns", 0)))
    return out
