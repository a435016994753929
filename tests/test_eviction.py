"""Memory pressure with eviction never makes an old value current.

Each policy runs on a private server with a small ``maxmemory`` kept full by filler keys (with a
long TTL, so the ``volatile-*`` policies may evict them too). The decorated read/invalidate/write
race runs for real: a reader's body reads the versioned source of truth, then waits on an event
that the test sets only after a writer bumped the source, invalidated, and pushed more filler
through the server (evicting the keys with the shortest TTL first under ``volatile-ttl``: locks
and fences). Background readers run meanwhile. Every read that starts after an invalidation
returned must return the version written before it, or a newer one (0 stale, 0 wrong).

The bookkeeping keys, one by one (an eviction is a key vanishing, which ``DEL`` reproduces
exactly; the race above evicts them for real):

* fence (TTL): evicted => the store it guards is refused (a fresh fence is a new token);
* generation (no TTL, evictable under ``allkeys-*``): evicted => every entry stamped with it is a
  miss, in-flight stores are refused, and the next claim creates a fresh token;
* lock (TTL): evicted => another caller computes too (duplicate work), one store wins;
* index set (TTL): evicted => entries stay in Redis until their TTL but are unreachable (the
  generation was replaced first); an invalidation then finds them by SCAN.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import pytest
import redis
from support import protocol

from memo_redis import RedisCaching, cached, invalidates
from memo_redis.protocol.entries import MISS
from memo_redis.testing import ServerFactory

POLICIES = ["volatile-ttl", "volatile-lru", "allkeys-lru", "allkeys-lfu", "noeviction"]
MAXMEMORY = "3mb"
FILLER = 32 * 1024
ROWS = 6
TRIALS = 24
HANG = 30.0


class _Pressure:
    """Filler writes that keep the server at its ``maxmemory``."""

    def __init__(self, admin: redis.Redis) -> None:
        self.admin = admin
        self.payload = random.Random(1).randbytes(FILLER)
        self.count = 0

    def push(self, nbytes: int) -> None:
        pipe = self.admin.pipeline(transaction=False)
        for _ in range(max(1, nbytes // FILLER)):
            self.count += 1
            pipe.set(f"filler:{self.count}", self.payload, ex=3600)
        pipe.execute(raise_on_error=False)  # noeviction answers OOM: the point is the pressure


class _Source:
    """The source of truth: a version per row, and what readers got."""

    def __init__(self) -> None:
        self.versions = dict.fromkeys(range(ROWS), 0)
        self.committed = dict.fromkeys(range(ROWS), 0)  # written and invalidated
        self.stale: list[tuple[int, int, int]] = []
        self.wrong: list[tuple[int, Any]] = []
        self.reads = 0
        self.lock = threading.Lock()

    def check(self, row: int, floor: int, got: Any) -> None:
        with self.lock:
            self.reads += 1
            if not (isinstance(got, tuple) and got[0] == row):
                self.wrong.append((row, got))
            elif got[1] < floor:
                self.stale.append((row, floor, got[1]))


def _evicted_keys(admin: redis.Redis) -> int:
    return int(admin.info("stats")["evicted_keys"])


@pytest.mark.parametrize("policy", POLICIES)
def test_no_stale_read_after_invalidation_under_eviction(
    server_factory: ServerFactory, policy: str
) -> None:
    """Read/invalidate/write races on a full server under each eviction policy: every read
    started after an invalidation returned gets the version written before it (0 stale,
    0 wrong), fences and locks evicted included."""
    server = server_factory(config={"maxmemory": MAXMEMORY, "maxmemory-policy": policy,
                                    "maxmemory-samples": "10"})
    admin = server.client()
    pressure = _Pressure(admin)
    pressure.push(4 * 1024 * 1024)  # full before the first read
    source = _Source()
    holding = threading.local()
    entered, gate = threading.Event(), threading.Event()
    # scan_threshold=0: pattern invalidations go through the index sets while they exist.
    cache = RedisCaching(server.args(), scan_threshold=0, failure_threshold=1000)

    @cached(cache=cache, prefix="evict:rows", ttl=600)
    def read(row: int) -> tuple[int, int]:
        version = source.versions[row]
        if getattr(holding, "block", False):
            entered.set()
            assert gate.wait(HANG)
        return (row, version)

    @invalidates("evict:rows:*", cache=cache)
    def write_all(row: int) -> None:
        source.versions[row] += 1

    def checked_read(row: int) -> tuple[int, int]:
        floor = source.committed[row]
        got = read(row)
        source.check(row, floor, got)
        return got

    stop = threading.Event()

    def background() -> None:
        rnd = random.Random(threading.get_ident())
        while not stop.is_set():
            checked_read(rnd.randrange(ROWS))

    def blocked_reader(row: int, out: list[Any]) -> None:
        holding.block = True
        while True:
            admin.delete(read.cache_key(row))  # as if it expired: this read misses
            got = read(row)
            if entered.is_set():  # it ran the body (not a hit, not another reader's flight)
                out.append(got)
                return

    readers = [threading.Thread(target=background) for _ in range(3)]
    for thread in readers:
        thread.start()
    evicted_before = _evicted_keys(admin)
    try:
        for trial in range(TRIALS):
            row = trial % ROWS
            for r in range(ROWS):
                checked_read(r)  # cache every row (stores may be refused: that is fine)
            entered.clear()
            gate.clear()
            result: list[Any] = []
            holder = threading.Thread(target=blocked_reader, args=(row, result))
            holder.start()
            assert entered.wait(HANG)  # its body read the old version; its store is pending
            old = source.versions[row]
            if trial % 2:
                source.versions[row] += 1
                read.invalidate(row)
            else:
                write_all(row)
            source.committed[row] = source.versions[row]
            pressure.push(1024 * 1024)  # evicts the shortest TTLs first under volatile-ttl
            gate.set()
            holder.join(HANG)
            assert result == [(row, old)]  # started before the write: its own answer stands
            for _ in range(3):
                checked_read(row)
    finally:
        stop.set()
        gate.set()
        for thread in readers:
            thread.join(HANG)
        cache.close()
    evicted = _evicted_keys(admin) - evicted_before
    admin.close()
    assert source.wrong == []
    assert source.stale == []
    assert source.reads > TRIALS * (ROWS + 3)
    if policy == "noeviction":
        assert evicted == 0
    else:
        assert evicted > 0


# -- each bookkeeping key vanishing, deterministically ---------------------------------------


KEY = "evict:one:data:0000beef"


def test_evicted_generation_makes_entries_misses_and_is_recreated_fresh(
    cache: RedisCaching, raw: redis.Redis
) -> None:
    """An evicted generation: the entries stamped with it are misses (even if still stored),
    an in-flight store is refused, and the next claim creates a new token, never the old."""
    look = protocol(cache).arm(KEY)
    assert protocol(cache).store(KEY, "v1", 60_000, seen=look) is True
    in_flight = protocol(cache).arm(KEY)
    gen_key = cache.layout.generation_keys(KEY)[-1]
    old_token = raw.get(gen_key)
    raw.delete(gen_key)  # what allkeys-* eviction does to a cold generation
    assert raw.exists(KEY) == 1
    assert cache.get(KEY) is None
    fresh = protocol(cache).arm(KEY)
    assert raw.get(gen_key) not in (None, old_token)
    assert cache.get(KEY) is None  # the old stamp never matches again
    assert protocol(cache).store(KEY, "stale", 60_000, seen=in_flight) is False
    assert protocol(cache).store(KEY, "v2", 60_000, seen=fresh) is True
    assert cache.get(KEY) == "v2"


def test_evicted_lock_costs_duplicate_work_never_a_stale_value(cache: RedisCaching,
                                                                raw: redis.Redis) -> None:
    """An evicted lock lets another process compute too (duplicate work, no wait): its store
    consumes the shared fence, so the first computation's store is refused; no lock remains."""
    entered, gate = threading.Event(), threading.Event()
    other_cache = RedisCaching(cache.args)

    def make(on: RedisCaching, blocking: bool) -> Any:
        @cached(cache=on, prefix="evict:lock", ttl=60)
        def value(x: int) -> str:
            if blocking:
                entered.set()
                assert gate.wait(HANG)
                return "first"
            return "second"

        return value

    first_fn, second_fn = make(cache, True), make(other_cache, False)
    first: list[str] = []
    holder = threading.Thread(target=lambda: first.append(first_fn(1)))
    holder.start()
    try:
        assert entered.wait(HANG)
        locks = list(raw.scan_iter(match="__memo__:lock:*"))
        assert len(locks) == 1
        raw.delete(*locks)  # evicted
        started = time.monotonic()
        assert second_fn(1) == "second"  # computes too instead of waiting: duplicate work
        assert time.monotonic() - started < 2.0
    finally:
        gate.set()
        holder.join(HANG)
        other_cache.close()
    assert first == ["first"]
    assert first_fn.cache_info().stores == 0  # refused: the other store consumed the fence
    assert second_fn.cache_info().stores == 1
    assert first_fn(1) == "second"
    assert not list(raw.scan_iter(match="__memo__:lock:*"))


def test_evicted_index_leaves_entries_unreachable_and_scan_finds_them(raw: redis.Redis,
                                                                      cache: RedisCaching
                                                                      ) -> None:
    """An evicted index set: a table invalidation still makes every entry a miss (generation
    first), and the entries are then deleted by SCAN instead of the index."""
    indexed = RedisCaching(cache.args, scan_threshold=0)
    try:
        for i in range(5):
            assert indexed.set(f"sql:things:data:{i}", i)
        index = indexed.layout.index_key("sql:things:data:0")  # the row's index
        table_index = indexed.layout.index_key_for_prefix("sql:things")
        assert raw.scard(index) == 5
        assert raw.smembers(table_index) == {index.encode()}
        raw.delete(table_index)  # evicted
        assert indexed.invalidate("sql:things:*") == 5
        assert [indexed.get(f"sql:things:data:{i}") for i in range(5)] == [None] * 5
        assert not [k for k in raw.scan_iter(match="sql:things:*")]
    finally:
        indexed.close()


def test_evicted_index_after_the_bump_never_revives_an_entry(raw: redis.Redis,
                                                             cache: RedisCaching) -> None:
    """Entries an index no longer lists (evicted and rebuilt by later stores) stay in Redis
    after a table invalidation, but are misses: the generation they carry was replaced."""
    indexed = RedisCaching(cache.args, scan_threshold=0)
    try:
        assert indexed.set("sql:things:data:old", "old")
        index = indexed.layout.index_key("sql:things:data:old")
        raw.delete(index)  # evicted, then rebuilt by a later store
        assert indexed.set("sql:things:data:new", "new")
        raw.set("filler:a", "x")  # make the keyspace "large": dbsize > scan_threshold
        indexed.invalidate("sql:things:*")
        assert raw.exists("sql:things:data:old") == 1  # not listed: left to its TTL
        assert indexed.get("sql:things:data:old") is None
        assert protocol(indexed).lookup("sql:things:data:old").value is MISS
    finally:
        indexed.close()


def test_evicted_fence_of_an_invalidated_entry_never_admits_the_old_store(
    cache: RedisCaching, raw: redis.Redis
) -> None:
    """The fence a computation armed, evicted after an invalidation (or at any time), refuses
    its store: absent never admits."""
    look = protocol(cache).arm(KEY)
    cache.invalidate_key(KEY)
    assert raw.exists(cache.layout.fence_key(KEY)) == 0  # nothing left to evict
    assert protocol(cache).store(KEY, "stale", 60_000, seen=look) is False
    look = protocol(cache).arm(KEY)
    raw.delete(cache.layout.fence_key(KEY))  # evicted while the body runs
    assert protocol(cache).store(KEY, "unproven", 60_000, seen=look) is False
    assert raw.exists(KEY) == 0
    started = time.monotonic()
    assert cache.get(KEY) is None
    assert time.monotonic() - started < 1.0
