"""Stampede protection: concurrent misses of one key run the body once.

Covers threads and processes (the in-process flight table plus the Redis lock), asyncio tasks,
a lock holder that dies mid-body, ``single_flight=False``, and the ``lock_wait`` bound on waiters.
Every test runs on a private server; child processes use the "spawn" start method and build
their own ``RedisCaching`` from the server's socket path.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import queue
import signal
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import redis

from memo_redis import RedisArgs, RedisCaching, cached
from memo_redis.embedded import EmbeddedServer
from memo_redis.testing import ServerFactory

RUNS_KEY = "test:body-runs"
READY_KEY = "test:ready"
GO_KEY = "test:go"
SPAWN = multiprocessing.get_context("spawn")
# Bounds for waits that normally take milliseconds; only reached when something hangs.
HANG = 60.0


def _report(results: Any, work: Any) -> None:
    """Run ``work()`` in a child and put ``(pid, outcome)`` on ``results``, errors included."""
    try:
        results.put((os.getpid(), "ok", work()))
    except BaseException:
        results.put((os.getpid(), "error", traceback.format_exc()))


def _stampede_child(socket_path: str, threads: int, results: Any, options: dict[str, Any],
                    holder: Any = None, started: Any = None) -> None:
    """One process of a stampede: ``threads`` threads call ``hot("cold")`` once the test opens
    the start gate.

    The body counts its runs with INCR on the same server. When ``holder`` is given, the first
    run publishes its pid, sets ``started`` and blocks until the test SIGKILLs this process.
    """

    def work() -> list[Any]:
        cache = RedisCaching(RedisArgs(socket_path=socket_path), **options)
        counter = redis.Redis(unix_socket_path=socket_path)

        @cached(cache=cache, prefix="stampede", ttl=60)
        def hot(item: str) -> dict[str, Any]:
            run = int(counter.incr(RUNS_KEY))
            if holder is not None and run == 1:
                holder.value = os.getpid()
                started.set()
                threading.Event().wait(HANG)  # killed here by the test
            time.sleep(0.2)  # the expensive part of the body
            return {"item": item, "run": run, "nonce": uuid.uuid4().hex}

        out: list[Any] = []
        lock = threading.Lock()

        def caller() -> None:
            counter.rpush(READY_KEY, 1)
            assert counter.blpop([GO_KEY], timeout=HANG) is not None
            value = hot("cold")
            with lock:
                out.append(value)

        workers = [threading.Thread(target=caller) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(HANG)
        cache.close()
        counter.close()
        return out

    _report(results, work)


class _Stampede:
    """Child processes running :func:`_stampede_child`, all callers released at once.

    The start barrier is a pair of Redis lists rather than a ``multiprocessing.Barrier``: a
    process SIGKILLed while one of its threads is still leaving such a barrier takes the
    barrier's lock with it and hangs the survivors.
    """

    def __init__(self, server: EmbeddedServer, processes: int, threads: int,
                 options: dict[str, Any], holder: Any = None, started: Any = None) -> None:
        self.results = SPAWN.Queue()
        self.children = [
            SPAWN.Process(
                target=_stampede_child,
                args=(server.socket_path, threads, self.results, options, holder, started),
                daemon=True,
            )
            for _ in range(processes)
        ]
        for child in self.children:
            child.start()
        callers = processes * threads
        admin = server.client()
        try:
            for _ in range(callers):
                assert admin.blpop([READY_KEY], timeout=HANG) is not None
            admin.rpush(GO_KEY, *[1] * callers)
        finally:
            admin.close()

    def collect(self, count: int) -> dict[int, list[Any]]:
        """The values returned in ``count`` children, by pid; fails fast if children die."""
        outcomes: dict[int, list[Any]] = {}
        deadline = time.monotonic() + HANG
        while len(outcomes) < count:
            try:
                pid, status, payload = self.results.get(timeout=0.5)
            except queue.Empty:
                alive = sum(child.is_alive() for child in self.children)
                assert alive + len(outcomes) >= count, "a child died without reporting"
                assert time.monotonic() < deadline, "children did not finish"
                continue
            assert status == "ok", payload
            outcomes[pid] = payload
        return outcomes

    def join(self) -> list[int | None]:
        """Wait for every child; their exit codes, sorted."""
        for child in self.children:
            child.join(HANG)
        return sorted((child.exitcode for child in self.children), key=lambda code: code or 0)


def test_stampede_across_processes_and_threads_runs_the_body_once(
    server_factory: ServerFactory,
) -> None:
    """4 processes x 16 threads missing one cold key run its body once and all get that value."""
    server = server_factory()
    stampede = _Stampede(server, processes=4, threads=16, options={})
    outcomes = stampede.collect(4)
    assert stampede.join() == [0, 0, 0, 0]

    values = [value for out in outcomes.values() for value in out]
    assert len(values) == 64
    assert int(server.client().get(RUNS_KEY)) == 1
    assert all(value == values[0] for value in values)
    assert values[0]["run"] == 1


def test_stampede_survives_the_lock_holder_being_killed(server_factory: ServerFactory) -> None:
    """A computing process SIGKILLed mid-body is taken over by the others when its lock expires."""
    server = server_factory()
    holder = SPAWN.Value("q", 0)
    started = SPAWN.Event()
    options = {"lock_timeout": 1.0, "lock_wait": 5.0}
    stampede = _Stampede(server, processes=3, threads=4, options=options, holder=holder,
                         started=started)
    assert started.wait(HANG)
    killed_at = time.monotonic()
    os.kill(holder.value, signal.SIGKILL)

    outcomes = stampede.collect(2)
    recovered_after = time.monotonic() - killed_at
    assert stampede.join() == [-signal.SIGKILL, 0, 0]

    assert holder.value not in outcomes
    values = [value for out in outcomes.values() for value in out]
    assert len(values) == 8
    assert all(value == values[0] for value in values)
    assert values[0]["item"] == "cold"
    assert values[0]["run"] == 2
    assert int(server.client().get(RUNS_KEY)) == 2
    # The survivors waited for the 1 s lock to expire, never for their whole lock_wait.
    assert recovered_after < 4.0


def test_asyncio_tasks_single_flight(cache: RedisCaching) -> None:
    """50 tasks awaiting one cold key run the async body once and get the same value."""
    runs = []

    @cached(cache=cache, prefix="async-stampede", ttl=60)
    async def hot(item: str) -> dict[str, Any]:
        runs.append(item)
        await asyncio.sleep(0.1)
        return {"item": item, "nonce": uuid.uuid4().hex}

    async def main() -> list[dict[str, Any]]:
        try:
            return await asyncio.gather(*(hot("cold") for _ in range(50)))
        finally:
            await cache.aclose()

    values = asyncio.run(main())
    assert runs == ["cold"]
    assert len(values) == 50
    assert all(value == values[0] for value in values)


def test_threads_single_flight_in_one_process(cache: RedisCaching) -> None:
    """32 threads of one process missing one key together run its body once."""
    runs = []
    barrier = threading.Barrier(32)
    values: list[Any] = []

    @cached(cache=cache, prefix="thread-stampede", ttl=60)
    def hot(item: str) -> str:
        runs.append(item)
        time.sleep(0.1)
        return f"{item}-{uuid.uuid4().hex}"

    def caller() -> None:
        barrier.wait(HANG)
        values.append(hot("cold"))

    workers = [threading.Thread(target=caller) for _ in range(32)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(HANG)
    assert runs == ["cold"]
    assert len(values) == 32 and len(set(values)) == 1


def test_single_flight_false_runs_the_body_per_caller(cache: RedisCaching) -> None:
    """With single_flight=False, 4 concurrent misses run 4 bodies at the same time."""
    inside = threading.Barrier(4)
    runs = []

    @cached(cache=cache, prefix="no-flight", ttl=60, single_flight=False)
    def hot(item: str) -> str:
        runs.append(item)
        # Returns only once 4 bodies are running together; single-flight would break it.
        inside.wait(10)
        return item.upper()

    values: list[str] = []
    workers = [threading.Thread(target=lambda: values.append(hot("cold"))) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(HANG)
    assert not inside.broken
    assert len(runs) == 4
    assert values == ["COLD"] * 4


def _cached_call(cache: RedisCaching, prefix: str, body: Callable[[str], Any],
                 **options: Any) -> Any:
    """``@cached`` ``compute(item)`` returning ``body(item)``.

    Every function built here has the same module and qualname, hence the same keys: two of
    them on two caches stand for one function running in two processes.
    """

    @cached(cache=cache, prefix=prefix, ttl=60, **options)
    def compute(item: str) -> Any:
        return body(item)

    return compute


def _blocking_function(cache: RedisCaching, prefix: str, gate: threading.Event,
                       entered: threading.Event, **options: Any) -> Any:
    """A cached function whose first run blocks on ``gate``; later runs return at once."""
    runs: list[int] = []

    def body(item: str) -> str:
        runs.append(1)
        run = len(runs)
        if run == 1:
            entered.set()
            gate.wait(HANG)
        return f"{item}-run{run}"

    function = _cached_call(cache, prefix, body, **options)
    function.runs = runs
    return function


def _observe_lock_waits(monkeypatch: pytest.MonkeyPatch, cache: RedisCaching) -> threading.Event:
    """An event set once ``cache`` failed to take a single-flight lock (another holds it)."""
    refused = threading.Event()
    requests = cache.engine.requests
    parse_claim = requests.parse_claim

    def observed(*args: Any, **kwargs: Any) -> Any:
        seen = parse_claim(*args, **kwargs)
        if seen.held:
            refused.set()
        return seen

    monkeypatch.setattr(requests, "parse_claim", observed)
    return refused


def test_other_process_waits_at_most_lock_wait_then_runs_the_body(
    server: EmbeddedServer, cache: RedisCaching, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A caller blocked by another process's lock gives up after lock_wait and computes itself."""
    gate, entered = threading.Event(), threading.Event()
    holder = _blocking_function(cache, "lock-wait", gate, entered)
    # A second cache stands for another process: only the Redis lock connects the two.
    other_cache = RedisCaching(server.args(), lock_wait=0.5)
    refused = _observe_lock_waits(monkeypatch, other_cache)
    other_runs = []

    def other_body(item: str) -> str:
        other_runs.append(item)
        return f"{item}-other"

    other = _cached_call(other_cache, "lock-wait", other_body)
    first = threading.Thread(target=holder, args=("k",))
    first.start()
    try:
        assert entered.wait(HANG)
        started = time.monotonic()
        assert other("k") == "k-other"
        waited = time.monotonic() - started
        assert refused.is_set()  # it did find the holder's lock
        assert first.is_alive()  # the lock holder is still computing
    finally:
        gate.set()
        first.join(HANG)
        other_cache.close()
    assert other_runs == ["k"]
    assert 0.4 <= waited < 1.5


def test_thread_follower_waits_at_most_lock_wait_then_runs_the_body(server: EmbeddedServer) -> None:
    """A thread waiting on another thread's computation computes itself after lock_wait in total."""
    client = server.client()
    client.flushall()
    client.close()
    cache = RedisCaching(server.args(), lock_wait=0.5)
    gate, entered = threading.Event(), threading.Event()
    slow = _blocking_function(cache, "follower-wait", gate, entered)
    first = threading.Thread(target=slow, args=("k",))
    first.start()
    try:
        assert entered.wait(HANG)
        started = time.monotonic()
        assert slow("k") == "k-run2"
        waited = time.monotonic() - started
        assert first.is_alive()
    finally:
        gate.set()
        first.join(HANG)
        cache.close()
    assert len(slow.runs) == 2
    assert 0.4 <= waited < 0.9


def test_async_task_follower_waits_at_most_lock_wait(server: EmbeddedServer) -> None:
    """A task waiting on another task's computation computes itself after lock_wait."""
    client = server.client()
    client.flushall()
    client.close()
    cache = RedisCaching(server.args(), lock_wait=0.5)
    runs: list[int] = []

    async def main() -> tuple[str, str, float]:
        gate, entered = asyncio.Event(), asyncio.Event()

        @cached(cache=cache, prefix="async-follower-wait", ttl=60)
        async def slow(item: str) -> str:
            runs.append(1)
            run = len(runs)
            if run == 1:
                entered.set()
                await gate.wait()
            return f"{item}-run{run}"

        try:
            first = asyncio.ensure_future(slow("k"))
            await asyncio.wait_for(entered.wait(), HANG)
            started = time.monotonic()
            second = await slow("k")
            waited = time.monotonic() - started
            gate.set()
            return await first, second, waited
        finally:
            await cache.aclose()

    first, second, waited = asyncio.run(main())
    assert (first, second) == ("k-run1", "k-run2")
    assert 0.4 <= waited < 0.9



def test_waiters_are_released_when_the_result_is_not_stored(
    server: EmbeddedServer, cache: RedisCaching, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An uncacheable result releases the lock: waiters in other processes compute at once."""
    gate, entered = threading.Event(), threading.Event()
    holder = _blocking_function(cache, "uncacheable", gate, entered, unless=lambda r: True)
    other_cache = RedisCaching(server.args(), lock_wait=10.0)
    refused = _observe_lock_waits(monkeypatch, other_cache)
    other = _cached_call(other_cache, "uncacheable", lambda item: f"{item}-other",
                         unless=lambda r: True)
    first = threading.Thread(target=holder, args=("k",))
    first.start()
    results: list[tuple[str, float]] = []
    try:
        assert entered.wait(HANG)
        second = threading.Thread(target=lambda: results.append((other("k"), time.monotonic())))
        second.start()
        assert refused.wait(HANG)  # the other caller is waiting for the holder's lock
        released = time.monotonic()
        gate.set()
        first.join(HANG)
        second.join(HANG)
    finally:
        gate.set()
        other_cache.close()
    assert len(results) == 1
    value, finished = results[0]
    assert value == "k-other"
    assert finished - released < 1.0


def test_lock_taken_after_the_holder_stored_does_not_recompute(
    server: EmbeddedServer, cache: RedisCaching, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A caller getting the lock after the holder stored returns the stored value, not a rerun."""
    gate, entered = threading.Event(), threading.Event()
    holder = _blocking_function(cache, "late-lock", gate, entered)
    other_cache = RedisCaching(server.args())
    other_runs: list[str] = []

    def other_body(item: str) -> str:
        other_runs.append(item)
        return f"{item}-other"

    other = _cached_call(other_cache, "late-lock", other_body)
    at_lock, holder_done = threading.Event(), threading.Event()
    claim = other_cache.engine.requests.claim

    def late_lock(*args: Any, **kwargs: Any) -> Any:
        at_lock.set()
        assert holder_done.wait(HANG)
        return claim(*args, **kwargs)

    monkeypatch.setattr(other_cache.engine.requests, "claim", late_lock)
    first = threading.Thread(target=holder, args=("k",))
    first.start()
    results: list[str] = []
    second = threading.Thread(target=lambda: results.append(other("k")))
    try:
        assert entered.wait(HANG)
        second.start()
        assert at_lock.wait(HANG)  # the other caller missed and is about to take the lock
        gate.set()
        first.join(HANG)  # the holder stored its value and released the lock
        holder_done.set()
        second.join(HANG)
    finally:
        gate.set()
        holder_done.set()
        other_cache.close()
    assert results == ["k-run1"]
    assert other_runs == []
