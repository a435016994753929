"""Race-free invalidation, proven by deterministic race injection.

The classic race: a reader misses, reads the old row, a writer updates the row and invalidates,
then the reader stores the old row. ``cache.before_store`` runs the writer exactly in that gap,
every trial. With the generation check the stale store is refused; with
``cache.race_protection = False`` the same trials serve stale rows, which shows the test can fail.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from memo_redis import RedisCaching, cached, invalidates
from memo_redis.breaker import CircuitBreaker
from memo_redis.embedded import EmbeddedServer
from memo_redis.testing import ServerFactory

TRIALS = 1000
HANG = 60.0
Row = dict[str, Any]
Reader = Callable[[int], Row]
Writer = Callable[[int, str], None]

VARIANTS = ["invalidates-decorator", "invalidate-pattern", "invalidate-entry",
            "update_data_in_table"]


def _scenario(cache: RedisCaching, variant: str, db: dict[int, Row]) -> tuple[Reader, Writer]:
    """A cached reader of ``db`` and a writer that updates ``db`` then invalidates, per variant."""

    @cached(cache=cache, prefix="sql:users", ttl=60)
    def read_row(row_id: int) -> Row:
        return dict(db[row_id])

    def put(row_id: int, value: str) -> None:
        db[row_id] = {"id": row_id, "value": value}

    if variant == "invalidates-decorator":
        return read_row, invalidates("sql:users:*", cache=cache)(put)
    if variant == "invalidate-pattern":
        def write(row_id: int, value: str) -> None:
            put(row_id, value)
            cache.invalidate("sql:users:*")

        return read_row, write
    if variant == "invalidate-entry":
        def write_one(row_id: int, value: str) -> None:
            put(row_id, value)
            read_row.invalidate(row_id)

        return read_row, write_one
    assert variant == "update_data_in_table"

    def read_sql(row_id: int) -> Row:
        rows: Row = cache.get_data_from_table("users", ["id", "value"], [f"id = {row_id}"],
                                              fetcher=lambda: dict(db[row_id]), ttl_seconds=60)
        return rows

    def write_sql(row_id: int, value: str) -> None:
        cache.update_data_in_table("users", {"value": value}, ["value"], [f"id = {row_id}"],
                                   writer=lambda: put(row_id, value))

    return read_sql, write_sql


def _inject(cache: RedisCaching, write: Writer, row_id: int) -> list[bool]:
    """Make the next store on ``cache`` run ``write(row_id, "new")`` first; returns the flag
    that turns False once it has run."""
    armed = [True]

    def before_store(key: str) -> None:
        if armed[0]:
            armed[0] = False
            write(row_id, "new")

    cache.before_store = before_store
    return armed


def _stale_reads(cache: RedisCaching, variant: str, trials: int) -> int:
    db: dict[int, Row] = {}
    read, write = _scenario(cache, variant, db)
    stale = 0
    try:
        for row_id in range(trials):
            db[row_id] = {"id": row_id, "value": "old"}
            armed = _inject(cache, write, row_id)
            # The reader returns what it computed (the old row); only its store is at stake.
            assert read(row_id) == {"id": row_id, "value": "old"}
            assert not armed[0], "the race was not injected: no store was attempted"
            after = read(row_id)
            assert after["id"] == row_id
            if after["value"] != "new":
                stale += 1
    finally:
        cache.before_store = None
    return stale


@pytest.mark.parametrize("variant", VARIANTS)
def test_no_stale_read_after_invalidation_races_a_store(cache: RedisCaching, variant: str) -> None:
    """1,000 injected invalidate-before-store races leave 0 stale reads."""
    assert _stale_reads(cache, variant, TRIALS) == 0


@pytest.mark.parametrize("variant", VARIANTS)
def test_stale_reads_appear_without_race_protection(cache: RedisCaching, variant: str) -> None:
    """The same injected races serve stale rows once race protection is switched off."""
    cache.race_protection = False
    assert _stale_reads(cache, variant, 200) > 0


def test_no_stale_read_after_invalidation_races_an_async_store(cache: RedisCaching) -> None:
    """Async functions: 200 injected races, 0 stale reads."""
    db: dict[int, Row] = {}

    @cached(cache=cache, prefix="sql:users", ttl=60)
    async def read_row(row_id: int) -> Row:
        return dict(db[row_id])

    @invalidates("sql:users:*", cache=cache)
    def write(row_id: int, value: str) -> None:
        db[row_id] = {"id": row_id, "value": value}

    async def trials() -> int:
        stale = 0
        try:
            for row_id in range(200):
                db[row_id] = {"id": row_id, "value": "old"}
                armed = _inject(cache, write, row_id)
                assert (await read_row(row_id))["value"] == "old"
                assert not armed[0]
                stale += (await read_row(row_id))["value"] != "new"
        finally:
            cache.before_store = None
            await cache.aclose()
        return stale

    assert asyncio.run(trials()) == 0


# -- a call after an invalidation never joins a computation from before it ---------------------


class _Computation:
    """``read_row(1)`` on a thread; its first run reads the row, then blocks until released."""

    def __init__(self, cache: RedisCaching, db: dict[int, Row], *, block: bool = True) -> None:
        self.db = db
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.runs: list[str] = []

        @cached(cache=cache, prefix="sql:users", ttl=60)
        def read_row(row_id: int) -> Row:
            row = dict(self.db[row_id])
            self.runs.append(row["value"])
            if block and len(self.runs) == 1:
                self.entered.set()
                self.gate.wait(HANG)
            return row

        self.read_row = read_row
        self.result: Row | None = None
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        self.result = self.read_row(1)

    def start(self) -> None:
        self.thread.start()
        assert self.entered.wait(HANG)

    def finish(self) -> Row | None:
        self.gate.set()
        self.thread.join(HANG)
        return self.result


@pytest.mark.parametrize("how", ["invalidates-decorator", "invalidate-entry"])
def test_call_after_invalidation_never_joins_an_earlier_computation(
    cache: RedisCaching, how: str
) -> None:
    """A call after an invalidation runs its own body instead of joining an earlier computation."""
    db: dict[int, Row] = {1: {"id": 1, "value": "old"}}
    first = _Computation(cache, db)

    @invalidates("sql:users:*", cache=cache)
    def update(value: str) -> None:
        db[1] = {"id": 1, "value": value}

    first.start()
    try:
        if how == "invalidates-decorator":
            update("new")
        else:
            db[1] = {"id": 1, "value": "new"}
            first.read_row.invalidate(1)
        started = time.monotonic()
        assert first.read_row(1) == {"id": 1, "value": "new"}
        assert time.monotonic() - started < 2.0
        assert first.thread.is_alive()
    finally:
        assert first.finish() == {"id": 1, "value": "old"}
    # The early computation's store was refused: the cache holds the new row.
    assert first.read_row(1) == {"id": 1, "value": "new"}
    assert first.runs == ["old", "new"]


def test_other_process_after_invalidation_does_not_wait_for_an_earlier_lock(
    server: EmbeddedServer, cache: RedisCaching
) -> None:
    """Another process calling after an invalidation ignores the lock of an earlier computation."""
    db: dict[int, Row] = {1: {"id": 1, "value": "old"}}
    first = _Computation(cache, db)
    other_cache = RedisCaching(server.args(), lock_wait=5.0)
    other = _Computation(other_cache, db, block=False)
    first.start()
    try:
        db[1] = {"id": 1, "value": "new"}
        cache.invalidate("sql:users:*")
        started = time.monotonic()
        assert other.read_row(1) == {"id": 1, "value": "new"}
        assert time.monotonic() - started < 2.0
        assert first.thread.is_alive()
    finally:
        assert first.finish() == {"id": 1, "value": "old"}
        other_cache.close()
    assert first.read_row(1) == {"id": 1, "value": "new"}
    assert first.runs == ["old"]
    assert other.runs == ["new"]


def test_async_call_after_invalidation_never_joins_an_earlier_task(cache: RedisCaching) -> None:
    """A task started after an invalidation runs its own body, not awaiting an earlier one."""
    db: dict[int, Row] = {1: {"id": 1, "value": "old"}}
    runs: list[str] = []

    async def main() -> tuple[Row, Row, Row]:
        entered, gate = asyncio.Event(), asyncio.Event()

        @cached(cache=cache, prefix="sql:users", ttl=60)
        async def read_row(row_id: int) -> Row:
            row = dict(db[row_id])
            runs.append(row["value"])
            if len(runs) == 1:
                entered.set()
                await gate.wait()
            return row

        try:
            early = asyncio.ensure_future(read_row(1))
            await asyncio.wait_for(entered.wait(), HANG)
            db[1] = {"id": 1, "value": "new"}
            await read_row.invalidate(1)
            late = await asyncio.wait_for(read_row(1), 2.0)
            assert not early.done()
            gate.set()
            return await early, late, await read_row(1)
        finally:
            await cache.aclose()

    early, late, after = asyncio.run(main())
    assert early["value"] == "old"
    assert late["value"] == "new"
    assert after["value"] == "new"
    assert runs == ["old", "new"]


def test_refused_store_leaves_no_lock_behind(cache: RedisCaching) -> None:
    """A store refused by an invalidation releases the single-flight lock with it."""
    db: dict[int, Row] = {1: {"id": 1, "value": "old"}}
    read, write = _scenario(cache, "invalidates-decorator", db)
    armed = _inject(cache, write, 1)
    read(1)
    assert not armed[0]
    cache.before_store = None
    started = time.monotonic()
    assert read(1) == {"id": 1, "value": "new"}
    assert time.monotonic() - started < 1.0
    admin = cache.client
    assert not [k for k in admin.scan_iter(match="__memo__:lock:*")]


# -- invalidation across outages ----------------------------------------------------------------


def test_invalidation_is_kept_while_the_breaker_is_open_and_applied_first_when_it_closes(
    server_factory: ServerFactory,
) -> None:
    """While the breaker is open an invalidation is kept without touching the socket; once a
    call gets through, it is applied before that call reads, so a value another process stored
    meanwhile (computed before the write) is never served afterwards."""
    server = server_factory()
    now = [0.0]
    writer_cache = RedisCaching(server.args())
    writer_cache.breaker = CircuitBreaker(3, 1.0, clock=lambda: now[0])
    db: dict[int, Row] = {1: {"id": 1, "value": "old"}}

    @invalidates("sql:users:*", cache=writer_cache)
    def update(value: str) -> None:
        db[1] = {"id": 1, "value": value}

    reader_cache = RedisCaching(server.args())  # another process: its breaker is closed
    try:
        server.kill()
        for _ in range(writer_cache.breaker.failure_threshold):
            writer_cache.get("probe")
        server.restart()
        reader = _Computation(reader_cache, db, block=False)
        writer_reads = _Computation(writer_cache, db, block=False)
        assert reader.read_row(1)["value"] == "old"
        assert writer_cache.breaker.is_open
        started = time.monotonic()
        update("new")
        assert time.monotonic() - started < 0.5  # kept, not sent
        assert writer_reads.read_row(1)["value"] == "new"  # uncached in the writer meanwhile
        now[0] += 2.0  # the cool-down is over: the writer's next call goes through
        assert writer_reads.read_row(1)["value"] == "new"
        assert not writer_cache.breaker.is_open
        assert reader.read_row(1)["value"] == "new"  # the kept invalidation was applied
    finally:
        reader_cache.close()
        writer_cache.close()


def test_invalidation_lost_in_a_crash_does_not_let_an_earlier_computation_store(
    server_factory: ServerFactory,
) -> None:
    """An invalidation lost in a crash and restart does not let an earlier computation store."""
    server = server_factory()
    db: dict[int, Row] = {1: {"id": 1, "value": "old"}}
    with RedisCaching(server.args()) as cache:
        read, write = _scenario(cache, "invalidates-decorator", db)
        armed = [True]

        def crash_after_write(key: str) -> None:
            if armed[0]:
                armed[0] = False
                write(1, "new")
                server.kill()
                server.restart()

        cache.before_store = crash_after_write
        assert read(1)["value"] == "old"
        cache.before_store = None
        assert read(1)["value"] == "new"
