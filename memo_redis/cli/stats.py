"""``memo-redis health`` and ``memo-redis stats``: is the server there, and what does it hold.

``stats`` walks the keyspace with SCAN (COUNT 1000), never anything that blocks the server, and
groups entries by their first two ``:`` segments (a table or a function) and their category
(the segment before the digest): ``sql:users:data:ab12`` is group ``sql:users``, category
``data``. memo_redis's bookkeeping keys (``__memo__:*``) are counted apart.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..exporters.published import read_published
from ..layout import is_internal
from ._common import (
    SCAN_COUNT,
    UNREACHABLE,
    CLIError,
    Target,
    console,
    fmt_bytes,
    fmt_ratio,
    fmt_seconds,
    fmt_ttl,
    print_json,
    print_table,
    scan,
    text,
)

_MEASURED_PER_GROUP = 1000
"""MEMORY USAGE is asked for at most this many entries per group; the rest is extrapolated."""
_TTL_SAMPLE = 2000


def _merged(reply: Any) -> dict[str, Any]:
    """One INFO section, summing numbers over nodes when a cluster client answered per node."""
    if not isinstance(reply, dict):
        return {}
    nodes = list(reply.values())
    if not nodes or not all(isinstance(v, dict) for v in nodes):
        return reply
    merged: dict[str, Any] = dict(nodes[0])
    for node in nodes[1:]:
        for name, value in node.items():
            if isinstance(value, int) and isinstance(merged.get(name), int):
                merged[name] += value
    return merged


def engine_of(info: dict[str, Any]) -> tuple[str, str]:
    """``(engine, version)`` from INFO server: Valkey reports ``valkey_version`` (and
    ``server_name: valkey``) besides a compatibility ``redis_version``."""
    if "valkey_version" in info or str(info.get("server_name", "")).lower() == "valkey":
        return "valkey", str(info.get("valkey_version", info.get("redis_version", "?")))
    return "redis", str(info.get("redis_version", "?"))


def cmd_health(target: Target, opts: argparse.Namespace) -> int:
    """PING the server and report its latency, engine, version and topology."""
    try:
        client = target.client
        ping: Callable[..., Any] = client.ping
        samples = []
        for _ in range(3):
            started = time.perf_counter()
            if target.layout.tagged:
                ping(target_nodes="primaries")
            else:
                ping()
            samples.append((time.perf_counter() - started) * 1000)
        info = _merged(client.info("server"))
    except UNREACHABLE as exc:
        if opts.json:
            print_json({"ok": False, "target": target.describe(), "topology": target.topology,
                        "error": str(exc)})
        raise CLIError(f"cannot reach {target.describe()}: {exc}", 1) from exc
    engine, version = engine_of(info)
    report = {
        "ok": True,
        "target": target.describe(),
        "latency_ms": {"min": round(min(samples), 3), "avg": round(sum(samples) / 3, 3)},
        "engine": engine,
        "version": version,
        "topology": target.topology,
        "server_mode": info.get("redis_mode") or info.get("server_mode"),
        "uptime_seconds": info.get("uptime_in_seconds"),
    }
    if opts.json:
        print_json(report)
        return 0
    rows: list[list[str]] = [
        ["status", "ok"],
        ["target", target.describe()],
        ["latency", f"{samples[-1]:.2f} ms (min {min(samples):.2f} ms over 3 PINGs)"],
        ["engine", f"{engine} {version}"],
        ["topology", target.topology],
        ["uptime", fmt_ttl(int(info.get("uptime_in_seconds", 0)) * 1000)],
    ]
    print_table(["CHECK", "RESULT"], rows)
    return 0


@dataclass
class _Group:
    """What SCAN found of one (group, category)."""

    entries: int = 0
    measured: int = 0
    measured_bytes: int = 0
    persistent: int = 0
    ttl_min: int | None = None
    ttl_max: int | None = None
    ttl_seen: int = 0
    ttls: list[int] = field(default_factory=list)

    def add_ttl(self, ms: int, rng: random.Random) -> None:
        if ms < 0:
            self.persistent += 1
            return
        self.ttl_min = ms if self.ttl_min is None else min(self.ttl_min, ms)
        self.ttl_max = ms if self.ttl_max is None else max(self.ttl_max, ms)
        self.ttl_seen += 1
        if len(self.ttls) < _TTL_SAMPLE:
            self.ttls.append(ms)
        else:  # reservoir sampling keeps the median unbiased
            slot = rng.randrange(self.ttl_seen)
            if slot < _TTL_SAMPLE:
                self.ttls[slot] = ms

    def report(self, group: str, category: str) -> dict[str, Any]:
        ttls = sorted(self.ttls)
        estimated = self.measured < self.entries
        size = (self.measured_bytes * self.entries / self.measured) if self.measured else None
        return {
            "group": group, "category": category, "entries": self.entries,
            "bytes": round(size) if size is not None else None,
            "bytes_estimated": estimated,
            "ttl_min_ms": self.ttl_min,
            "ttl_median_ms": ttls[len(ttls) // 2] if ttls else None,
            "ttl_max_ms": self.ttl_max,
            "persistent": self.persistent,
        }


def group_of(logical: bytes) -> tuple[str, str]:
    """``(group, category)`` of a key: its first two segments and the one before the last."""
    parts = text(logical).split(":")
    if len(parts) < 3:
        return "(other)", "-"
    return ":".join(parts[:2]), parts[-2]


def _progress(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    err = console(stderr=True)
    if err is None or not sys.stderr.isatty():
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    progress = Progress(TextColumn("scanning"), BarColumn(), MofNCompleteColumn(),
                        console=err, transient=True)
    progress.add_task("scan", total=total or None)
    return progress


def _batches(target: Target, limit: int | None, counters: dict[str, int]
             ) -> Iterator[list[tuple[bytes, bytes]]]:
    """SCAN in batches of ``(physical, logical)`` entries, at most ``limit`` entries."""
    batch: list[tuple[bytes, bytes]] = []
    for key in scan(target, "*"):
        counters["scanned"] += 1
        if is_internal(key):
            counters["bookkeeping"] += 1
            continue
        if limit is not None and counters["entries"] >= limit:
            counters["stopped"] = 1
            break
        counters["entries"] += 1
        batch.append((key, target.layout.logical(key)))
        if len(batch) >= SCAN_COUNT:
            yield batch
            batch = []
    if batch:
        yield batch


def cmd_stats(target: Target, opts: argparse.Namespace) -> int:
    """Memory, server hit rate, entries per group and category, published metrics."""
    if opts.sample is not None and opts.sample < 1:
        raise CLIError("--sample must be at least 1", 2)
    client = target.client
    every: dict[str, Any] = {"target_nodes": "primaries"} if target.layout.tagged else {}
    info: Callable[..., Any] = client.info
    memory = _merged(info("memory", **every))
    stats = _merged(info("stats", **every))
    dbsize_of: Callable[..., Any] = client.dbsize
    dbsize = int(dbsize_of(**every))
    hits, misses = int(stats.get("keyspace_hits", 0)), int(stats.get("keyspace_misses", 0))
    groups: dict[tuple[str, str], _Group] = {}
    counters = {"scanned": 0, "bookkeeping": 0, "entries": 0, "stopped": 0}
    rng = random.Random(0)
    progress = _progress(opts.sample or dbsize, not opts.json)
    if progress is not None:
        progress.start()
    try:
        for batch in _batches(target, opts.sample, counters):
            pipe = client.pipeline(transaction=False)
            owners = []
            for physical, logical in batch:
                owner = groups.setdefault(group_of(logical), _Group())
                owner.entries += 1
                measure = owner.measured < _MEASURED_PER_GROUP
                if measure:
                    owner.measured += 1
                owners.append((owner, measure))
                pipe.pttl(physical)
                if measure:
                    pipe.memory_usage(physical)
            replies = iter(pipe.execute(raise_on_error=False))
            for owner, measure in owners:
                ttl = next(replies)
                if isinstance(ttl, int) and ttl != -2:
                    owner.add_ttl(ttl, rng)
                if measure:
                    size = next(replies)
                    if isinstance(size, int):
                        owner.measured_bytes += size
                    else:  # expired meanwhile
                        owner.measured -= 1
            if progress is not None:
                progress.update(progress.task_ids[0], completed=counters["entries"])
    finally:
        if progress is not None:
            progress.stop()
    published = read_published(client)
    reports = sorted((g.report(*name) for name, g in groups.items()),
                     key=lambda r: (-r["entries"], r["group"], r["category"]))
    sampled = bool(counters["stopped"])
    server = {
        "used_memory": memory.get("used_memory"),
        "used_memory_peak": memory.get("used_memory_peak"),
        "maxmemory": memory.get("maxmemory"),
        "maxmemory_policy": memory.get("maxmemory_policy"),
        "keyspace_hits": hits, "keyspace_misses": misses,
        "hit_rate": hits / (hits + misses) if hits + misses else None,
        "dbsize": dbsize,
    }
    if opts.json:
        print_json({
            "target": target.describe(), "server": server,
            "keys": {"scanned": counters["scanned"], "entries": counters["entries"],
                     "bookkeeping": counters["bookkeeping"], "sampled": sampled,
                     "sample_limit": opts.sample},
            "groups": reports, "metrics": published,
        })
        return 0
    _print_stats(target, server, reports, counters, sampled, opts.sample, published)
    return 0


def _print_stats(target: Target, server: dict[str, Any], reports: list[dict[str, Any]],
                 counters: dict[str, int], sampled: bool, sample: int | None,
                 published: dict[str, dict[str, Any]]) -> None:
    maxmemory = server["maxmemory"]
    print_table(["SERVER", ""], [
        ["target", target.describe()],
        ["memory used", fmt_bytes(server["used_memory"])],
        ["memory peak", fmt_bytes(server["used_memory_peak"])],
        ["maxmemory", fmt_bytes(maxmemory) if maxmemory else "no limit"],
        ["eviction policy", str(server["maxmemory_policy"] or "-")],
        ["server hit rate", fmt_ratio(server["hit_rate"])
         + f" ({server['keyspace_hits']} hits, {server['keyspace_misses']} misses)"],
        ["keys", f"{server['dbsize']} ({counters['bookkeeping']} bookkeeping seen)"],
    ])
    rows = [[r["group"], r["category"], str(r["entries"]),
             ("~" if r["bytes_estimated"] else "") + fmt_bytes(r["bytes"]),
             fmt_ttl(r["ttl_min_ms"]), fmt_ttl(r["ttl_median_ms"]), fmt_ttl(r["ttl_max_ms"]),
             str(r["persistent"])] for r in reports]
    print_table(["GROUP", "CATEGORY", "ENTRIES", "BYTES", "TTL MIN", "TTL MEDIAN", "TTL MAX",
                 "NO TTL"], rows, title="Entries")
    if sampled:
        print(f"figures are sampled: the scan stopped after {sample} entries (--sample {sample})")
    else:
        print(f"{counters['entries']} entries in {len(reports)} group(s), full scan")
    if published:
        rows = [[p["function"], p["category"], str(p["calls"]), fmt_ratio(p["hit_ratio"]),
                 str(p["stores"]), str(p["errors"]), fmt_seconds(p["lookup_seconds"]["p50"]),
                 fmt_seconds(p["lookup_seconds"]["p99"])]
                for p in sorted(published.values(), key=lambda p: -int(p["calls"]))]
        print_table(["FUNCTION", "CATEGORY", "CALLS", "HIT %", "STORES", "ERRORS", "P50 LOOKUP",
                     "P99 LOOKUP"], rows, title="Published metrics (all processes)")
