"""Invalidation time: remove one table's 10,000 entries from a keyspace of N keys.

The keyspace is filled with ``DEBUG POPULATE`` (N - 10,000 unrelated keys), then the table's
entries are written before every round: through memo_redis's own store path (``set_many``: a
pipeline of the atomic store script, which also maintains the per-table index), or with raw
pipelined ``SET`` (+ ``SADD`` for the per-table set baseline). Methods:

* ``memo_redis``: ``cache.invalidate("sql:users:*")``, end to end (generation bump, then removal
  through the index when the keyspace is larger than ``scan_threshold``);
* ``memo_redis logical``: from the call until the generation bump returned, i.e. until no
  entry of the table can be served any more (the removal that follows is reclamation); sampled
  in every full round and in ``LIGHT_PER_ROUND`` extra rounds with one entry (same path);
* ``per-table set (raw)``: ``SMEMBERS`` of a raw index set, then pipelined ``UNLINK``;
* ``SCAN+UNLINK (raw)``: ``SCAN MATCH sql:users:* COUNT 1000`` and ``UNLINK`` per 1,000 keys, as
  peers do for pattern deletion.
"""

from __future__ import annotations

import hashlib
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

from memo_redis import RedisCaching

from .workload import ROWS

ENTRIES = 10_000
LIGHT_PER_ROUND = 10
FULL_ONLY = "memo_redis logical, 10k rounds only"
BATCH = 1_000
PATTERN = "sql:users:*"
RAW_INDEX = "rawidx:sql:users"
MEMO_INDEX = "__memo__:idx:sql:users"


class TimedCaching(RedisCaching):
    """RedisCaching that records when each Redis step its sync driver runs ends (instrumentation
    only): ``ends`` holds (step name, perf_counter_ns) per step, the name being the script's
    (``BUMP``, ``DRAIN_INDEX``...) or the command's."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ends: list[tuple[str, int]] = []
        driver = self.engine.sync
        execute = driver.execute  # every Redis step of a sync flow goes through it
        ends = self.ends

        def timed(step: Any) -> Any:
            try:
                return execute(step)
            finally:
                ends.append((_step_name(step), time.perf_counter_ns()))

        driver.execute = timed  # type: ignore[method-assign]

    def bump_end(self) -> int:
        """When the generation bump of the last invalidation returned."""
        return next((end for name, end in self.ends if name == "BUMP"), self.ends[0][1])


def _step_name(step: Any) -> str:
    script = getattr(step, "script", None)
    if script is not None:
        return str(script.name)
    args = getattr(step, "args", None)
    if isinstance(args, tuple) and args:
        return str(args[0])
    return type(step).__name__


@dataclass
class Series:
    """Per-round times (ms) of one method at one keyspace size under one placement."""

    keys: int
    placement: str
    method: str
    rounds_ms: list[float] = field(default_factory=list)
    deleted: list[int] = field(default_factory=list)
    server: dict[str, dict[str, int]] = field(default_factory=dict)
    """INFO commandstats of the last round: calls and server µs per command (memo_redis only)."""

    @property
    def median_ms(self) -> float:
        """Median over rounds."""
        return statistics.median(self.rounds_ms)

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "keys": self.keys, "placement": self.placement, "method": self.method,
            "median_ms": round(self.median_ms, 4),
            "rounds_ms": [round(t, 4) for t in self.rounds_ms], "deleted": self.deleted,
            **({"server_commandstats_last_round": self.server} if self.server else {}),
        }


def entry_keys() -> list[str]:
    """The 10,000 entry keys of table ``users`` (memo_redis's key shape)."""
    return [
        "sql:users:data:" + hashlib.sha256(str(i).encode()).hexdigest()[:16]
        for i in range(ENTRIES)
    ]


def populate(client: redis.Redis, keys: int) -> None:
    """Flush and fill the keyspace with ``keys - ENTRIES`` unrelated keys."""
    client.flushall()
    command: Callable[..., Any] = client.execute_command
    command("DEBUG", "POPULATE", keys - ENTRIES, "filler", 64)


def _write_memo(cache: RedisCaching, keys: list[str]) -> None:
    for i in range(0, len(keys), BATCH):
        if not cache.set_many({k: ROWS for k in keys[i:i + BATCH]}, ttl=3600, strict=True):
            raise RuntimeError("memo_redis set_many refused the benchmark entries")


def _write_raw(client: redis.Redis, keys: list[str], value: bytes, *, index: bool) -> None:
    for i in range(0, len(keys), BATCH):
        pipe = client.pipeline(transaction=False)
        chunk = keys[i:i + BATCH]
        for key in chunk:
            pipe.set(key, value, ex=3600)
        if index:
            pipe.sadd(RAW_INDEX, *chunk)
        pipe.execute()


def _scan_unlink(client: redis.Redis) -> int:
    deleted = 0
    batch: list[bytes] = []
    for key in client.scan_iter(match=PATTERN, count=BATCH):
        batch.append(key)
        if len(batch) >= BATCH:
            deleted += int(client.unlink(*batch))
            batch = []
    if batch:
        deleted += int(client.unlink(*batch))
    return deleted


def _set_unlink(client: redis.Redis) -> int:
    members = sorted(client.smembers(RAW_INDEX))
    pipe = client.pipeline(transaction=False)
    for i in range(0, len(members), BATCH):
        pipe.unlink(*members[i:i + BATCH])
    pipe.unlink(RAW_INDEX)
    return sum(int(n) for n in pipe.execute()[:-1])


def run_memo(cache: TimedCaching, client: redis.Redis, keys: list[str], removal: Series,
             logical: Series, logical_full: Series, baseline_size: int) -> None:
    """One round of memo_redis invalidation (writes the entries first)."""
    _write_memo(cache, keys)
    cache.ends.clear()
    client.config_resetstat()
    start = time.perf_counter_ns()
    deleted = cache.invalidate(PATTERN, strict=True)
    end = time.perf_counter_ns()
    removal.server = _commandstats(client)
    # For a whole-prefix pattern the first step invalidate() runs is the generation bump.
    bump_end = cache.bump_end()
    removal.rounds_ms.append((end - start) / 1e6)
    logical.rounds_ms.append((bump_end - start) / 1e6)
    logical_full.rounds_ms.append((bump_end - start) / 1e6)
    removal.deleted.append(deleted)
    _check_clean(client, keys, baseline_size, "memo_redis")
    if cache.get(keys[0], default=None) is not None:
        raise AssertionError("memo_redis served an invalidated entry")


def _commandstats(client: redis.Redis) -> dict[str, dict[str, int]]:
    stats = client.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): {"calls": int(v["calls"]), "usec": int(v["usec"])}
        for name, v in stats.items()
        if name not in ("cmdstat_config|resetstat", "cmdstat_info")
    }


def run_logical(cache: TimedCaching, client: redis.Redis, keys: list[str], logical: Series,
                baseline_size: int) -> None:
    """One extra sample of the logical time: the same call with the table holding one entry.

    The generation bump is the first thing ``invalidate`` does and does not depend on how many
    entries the table holds, so these cheap rounds sample the same path many more times.
    """
    _write_memo(cache, keys[:1])
    cache.ends.clear()
    start = time.perf_counter_ns()
    cache.invalidate(PATTERN, strict=True)
    logical.rounds_ms.append((cache.bump_end() - start) / 1e6)
    _check_clean(client, keys, baseline_size, "memo_redis")


def run_raw(client: redis.Redis, keys: list[str], series: Series, baseline_size: int,
            *, index: bool) -> None:
    """One round of a raw redis-py method (writes the entries first)."""
    _write_raw(client, keys, _PACKED, index=index)
    start = time.perf_counter_ns()
    deleted = _set_unlink(client) if index else _scan_unlink(client)
    series.rounds_ms.append((time.perf_counter_ns() - start) / 1e6)
    series.deleted.append(deleted)
    _check_clean(client, keys, baseline_size, series.method)


def _check_clean(client: redis.Redis, keys: list[str], baseline_size: int, method: str) -> None:
    if client.exists(keys[0], keys[-1]):
        raise AssertionError(f"{method} left entries of the table behind")
    size = int(client.dbsize())
    if abs(size - baseline_size) > 8:  # memo_redis's few bookkeeping keys may come and go
        raise AssertionError(f"{method}: DBSIZE {size}, expected about {baseline_size}")


def _packed_rows() -> bytes:
    import msgpack

    packed: bytes = msgpack.packb(ROWS)
    return packed


_PACKED = _packed_rows()


def index_bytes_per_entry(cache: RedisCaching, client: redis.Redis, keys: list[str]) -> float:
    """MEMORY USAGE of memo_redis's per-table index divided by its member count."""
    _write_memo(cache, keys)
    usage = int(client.memory_usage(MEMO_INDEX, samples=0) or 0)
    members = int(client.scard(MEMO_INDEX))
    cache.invalidate(PATTERN, strict=True)
    return usage / members if members else 0.0


def measure_size(client: redis.Redis, cache: TimedCaching, keys_total: int, placement: str,
                 *, rounds: int, scan_rounds: int) -> list[Series]:
    """All methods at one keyspace size under the current placement (keyspace already filled)."""
    keys = entry_keys()
    baseline_size = int(client.dbsize())
    removal = Series(keys_total, placement, "memo_redis")
    logical = Series(keys_total, placement, "memo_redis logical")
    logical_full = Series(keys_total, placement, FULL_ONLY)
    table_set = Series(keys_total, placement, "per-table set (raw)")
    scan = Series(keys_total, placement, "SCAN+UNLINK (raw)")
    for r in range(rounds):
        run_memo(cache, client, keys, removal, logical, logical_full, baseline_size)
        for _ in range(LIGHT_PER_ROUND):
            run_logical(cache, client, keys, logical, baseline_size)
        run_raw(client, keys, table_set, baseline_size, index=True)
        if r < scan_rounds:
            run_raw(client, keys, scan, baseline_size, index=False)
    return [removal, logical, logical_full, table_set, scan]
