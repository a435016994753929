"""memo_redis on a local Redis Cluster: ``python -m bench.cluster`` (or ``bench/cluster.py``).

Starts a throw-away :class:`~memo_redis.servers.LocalCluster` (3 primaries, 1 replica each, on
loopback), then measures, in interleaved rounds, the hit and miss latency of
``@cached(prefix="sql:{table}")`` over 16 tables spread across the primaries against a raw
``redis.cluster.RedisCluster`` baseline (hit: ``GET`` + ``msgpack.unpackb``; miss: ``GET`` then
``SET EX 300``, as in ``bench.run``), and the cost of one table's invalidation versus ``sql:*``
(one generation per table, plus a SCAN of every primary). Prints a table; ``--json FILE`` also
writes the figures. A smoke-sized run takes a few seconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the ``bench`` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import msgpack

from bench.workload import ROWS
from memo_redis import RedisArgs, RedisCaching, cached
from memo_redis.servers import LocalCluster

TABLES = tuple(f"t{i}" for i in range(16))


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--iterations", type=int, default=1000,
                        help="calls per contender and round (default 1000)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--server-binary", default=None,
                        help="redis-server / valkey-server to run (default: found by memo_redis)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    opts = parser.parse_args(argv)
    for name in ("iterations", "rounds"):
        if getattr(opts, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(opts, name)}")
    return opts


def _time_block(calls: Callable[[], None], count: int) -> float:
    """Mean µs per call of ``count`` calls of ``calls``."""
    started = time.perf_counter()
    for _ in range(count):
        calls()
    return (time.perf_counter() - started) / count * 1e6


def _cycle(items: tuple[str, ...]) -> Callable[[], str]:
    state = [0]

    def following() -> str:
        state[0] += 1
        return items[state[0] % len(items)]

    return following


def main(argv: list[str] | None = None) -> int:
    """Run the cluster benchmark and print its figures; exit status 0."""
    opts = _parse(argv)
    started = time.perf_counter()
    with LocalCluster(opts.server_binary) as cluster:
        args = RedisArgs(cluster=True, cluster_nodes=tuple(cluster.nodes))
        cache = RedisCaching(args)
        raw = cluster.client()
        try:
            figures = _measure(cluster, cache, raw, opts.iterations, opts.rounds)
        finally:
            cache.close()
            raw.close()
    figures["seconds"] = round(time.perf_counter() - started, 1)
    _print(figures)
    if opts.json is not None:
        opts.json.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"wrote {opts.json}")
    return 0


def _measure(cluster: LocalCluster, cache: RedisCaching, raw: Any, iterations: int,
             rounds: int) -> dict[str, Any]:
    def rows(table: str, page: int) -> list[dict[str, Any]]:
        return ROWS

    fetch: Any = cached(cache=cache, prefix="sql:{table}", ttl=300)(rows)
    payload = msgpack.packb(ROWS)
    owners = {cluster.primary_of(fetch.cache_key(t, 0)) for t in TABLES}
    for table in TABLES:  # warm: entries, generations, scripts, connections to every primary
        fetch(table, 0)
        raw.set(f"raw:{{{table}}}:0", payload, ex=300)
    hit_table = _cycle(TABLES)
    pages = iter(range(1, 10**9))

    def memo_hit() -> None:
        fetch(hit_table(), 0)

    def raw_hit() -> None:
        msgpack.unpackb(raw.get(f"raw:{{{hit_table()}}}:0"))

    def memo_miss() -> None:
        fetch(hit_table(), next(pages))

    def raw_miss() -> None:
        key = f"raw:{{{hit_table()}}}:{next(pages)}"
        if raw.get(key) is None:
            raw.set(key, msgpack.packb(ROWS), ex=300)

    contenders = {"raw GET hit": raw_hit, "@cached hit": memo_hit,
                  "raw GET+SET miss": raw_miss, "@cached miss": memo_miss}
    per_round: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for index in range(rounds):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:  # rotated: drifts hit everyone alike
            per_round[name].append(_time_block(contenders[name], iterations))

    def ratio(name: str, baseline: str) -> float:
        return statistics.median(
            a / b for a, b in zip(per_round[name], per_round[baseline], strict=True))

    one_table, all_tables = [], []
    for _ in range(rounds):
        for table in TABLES:
            fetch(table, 0)
        begin = time.perf_counter()
        cache.invalidate("sql:t3:*")
        one_table.append((time.perf_counter() - begin) * 1e3)
        begin = time.perf_counter()
        cache.invalidate("sql:*")
        all_tables.append((time.perf_counter() - begin) * 1e3)
    info = fetch.cache_info()
    return {
        "topology": f"{len(cluster.primaries())} primaries, {len(cluster.replicas())} replicas",
        "tables": len(TABLES),
        "primaries_used": len(owners),
        "iterations": iterations,
        "rounds": rounds,
        "keys": int(raw.dbsize(target_nodes="primaries")),
        "median_us": {name: round(statistics.median(v), 1) for name, v in per_round.items()},
        "hit_ratio": round(ratio("@cached hit", "raw GET hit"), 2),
        "miss_ratio": round(ratio("@cached miss", "raw GET+SET miss"), 2),
        "invalidate_one_table_ms": round(statistics.median(one_table), 2),
        "invalidate_all_tables_ms": round(statistics.median(all_tables), 2),
        "cache_info": info._asdict(),
        "hit_rate_percent": round(cache.hit_rate(), 1),
    }


def _print(figures: dict[str, Any]) -> None:
    us = figures["median_us"]
    print(f"Redis Cluster: {figures['topology']}; {figures['tables']} tables on "
          f"{figures['primaries_used']} primaries; {figures['rounds']} rounds x "
          f"{figures['iterations']} calls; {figures['keys']} keys at the end")
    print(f"{'contender':<22}{'µs/call':>10}{'ratio':>8}")
    print(f"{'raw GET hit':<22}{us['raw GET hit']:>10.1f}{1.0:>8.2f}")
    print(f"{'@cached hit':<22}{us['@cached hit']:>10.1f}{figures['hit_ratio']:>8.2f}")
    print(f"{'raw GET+SET miss':<22}{us['raw GET+SET miss']:>10.1f}{1.0:>8.2f}")
    print(f"{'@cached miss':<22}{us['@cached miss']:>10.1f}{figures['miss_ratio']:>8.2f}")
    print(f"invalidate sql:t3:*  {figures['invalidate_one_table_ms']:>8.2f} ms (one generation)")
    print(f"invalidate sql:*     {figures['invalidate_all_tables_ms']:>8.2f} ms "
          f"({figures['tables']} generations + SCAN of every primary)")
    print(f"@cached counters {figures['cache_info']}; server hit rate "
          f"{figures['hit_rate_percent']}% (all primaries); {figures['seconds']} s in total")


if __name__ == "__main__":
    raise SystemExit(main())
