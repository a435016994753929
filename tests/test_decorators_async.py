"""@cached and @invalidates on ``async def`` callables (redis.asyncio), against real servers:
what only async code has (event loops, tasks, cancellation, coroutine objects, the asyncio
client alone). Everything async functions share with sync ones is pinned for both by the
``driver``-parametrized tests of test_decorators.py and test_core.py."""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from typing import Any, TypeVar

import pytest
import redis
from support import run

from memo_redis import (
    CacheInfo,
    RedisCaching,
    cached,
    disabled,
    invalidates,
)
from memo_redis.embedded import EmbeddedServer
from memo_redis.flight import AsyncFlights, Flights

T = TypeVar("T")


# --- where the decorators work ---------------------------------------------------------------


def test_async_function_keeps_metadata_and_inspect_results(cache: RedisCaching) -> None:
    """An async def stays a coroutine function with its name, doc, signature and __wrapped__."""

    async def original(x: int, y: int = 1) -> int:
        """Add slowly."""
        return x + y

    fetch = cached(cache=cache)(original)
    assert fetch.__name__ == "original"
    assert fetch.__doc__ == "Add slowly."
    assert fetch.__wrapped__ is original
    assert inspect.signature(fetch) == inspect.signature(original)
    assert inspect.iscoroutinefunction(fetch)
    assert asyncio.iscoroutinefunction(fetch)
    pending = fetch(1)
    assert inspect.iscoroutine(pending)
    assert run(cache, pending) == 2


def test_cached_coroutine_does_not_block_the_event_loop(cache: RedisCaching) -> None:
    """While a cached coroutine computes, other tasks run (the body is awaited, not blocked)."""
    computed: list[int] = []

    @cached(cache=cache, ignore=("release",))  # an asyncio.Event cannot be part of a key
    async def slow(x: int, release: asyncio.Event) -> int:
        await release.wait()
        computed.append(x)
        return x

    async def scenario() -> tuple[int, int]:
        release = asyncio.Event()
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            for _ in range(20):
                ticks += 1
                await asyncio.sleep(0)
            release.set()

        result, _ = await asyncio.wait_for(asyncio.gather(slow(5, release), ticker()), 30)
        return result, ticks

    assert run(cache, scenario()) == (5, 20)
    assert computed == [5]


def test_redis_io_does_not_block_the_event_loop(cache: RedisCaching, raw: redis.Redis) -> None:
    """While the server is paused, another task keeps ticking during the cached call's lookup."""

    @cached(cache=cache)
    async def value(x: int) -> int:
        return x

    async def scenario() -> tuple[float, list[float]]:
        ticks: list[float] = []
        stop = asyncio.Event()

        async def ticker() -> None:
            while not stop.is_set():
                ticks.append(time.monotonic())
                await asyncio.sleep(0.005)

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        raw.execute_command("CLIENT", "PAUSE", "400", "ALL")
        started = time.monotonic()
        try:
            assert await value(1) == 1
        finally:
            took = time.monotonic() - started
            stop.set()
            await task
        return took, [t - started for t in ticks if t >= started]

    try:
        took, ticks = run(cache, scenario())
    finally:
        raw.execute_command("CLIENT", "UNPAUSE")
    assert took >= 0.3  # the lookup really waited for the paused server
    during = [t for t in ticks if t < took]
    assert len(during) >= 10
    assert max(b - a for a, b in zip([0.0, *during[:-1]], during, strict=True)) < 0.2


def test_async_generators_are_rejected(cache: RedisCaching) -> None:
    """Decorating an async generator is a TypeError at decoration time."""

    async def stream() -> Any:
        yield 1

    with pytest.raises(TypeError, match="async generator"):
        cached(cache=cache)(stream)
    with pytest.raises(TypeError, match="async generator"):
        invalidates("x:*", cache=cache)(stream)


# --- handles, disabled(), single flight ------------------------------------------------------


def test_disabled_is_task_local(cache: RedisCaching, raw: redis.Redis) -> None:
    """A task inside disabled() does not stop another task from caching meanwhile."""
    calls: list[int] = []

    @cached(cache=cache)
    async def f(x: int) -> int:
        calls.append(x)
        return x

    async def scenario() -> None:
        inside = asyncio.Event()
        finish = asyncio.Event()

        async def disabled_task() -> None:
            with disabled():
                await f(1)
                inside.set()
                await finish.wait()
                await f(1)

        task = asyncio.create_task(disabled_task())
        await inside.wait()
        assert await f(2) == await f(2) == 2
        finish.set()
        await task

    run(cache, scenario())
    assert calls.count(1) == 2
    assert calls.count(2) == 1
    assert raw.exists(f.cache_key(1)) == 0
    assert raw.exists(f.cache_key(2)) == 1


def test_cache_info_counts_are_exact_under_tasks(cache: RedisCaching) -> None:
    """Counters lose no update when many tasks of one loop call at once."""

    @cached(cache=cache)
    async def f(x: int) -> int:
        return x

    async def scenario() -> None:
        await f(0)

        async def worker() -> None:
            for _ in range(50):
                await f(0)

        await asyncio.gather(*(worker() for _ in range(8)))

    run(cache, scenario())
    info = f.cache_info()
    assert (info.hits, info.misses) == (400, 1)


def test_concurrent_tasks_share_one_computation(cache: RedisCaching) -> None:
    """Concurrent misses of one key in one loop run the body once (single flight)."""
    calls: list[int] = []

    async def scenario() -> list[int]:
        gate = asyncio.Event()

        @cached(cache=cache, ignore=("gate",))
        async def f(x: int, gate: asyncio.Event) -> int:
            calls.append(x)
            await gate.wait()
            return x

        tasks = [asyncio.create_task(f(1, gate)) for _ in range(10)]
        while not calls:
            await asyncio.sleep(0)
        gate.set()
        return await asyncio.gather(*tasks)

    assert run(cache, scenario()) == [1] * 10
    assert calls == [1]


def test_cancelled_leader_does_not_cancel_followers(cache: RedisCaching,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """When the task computing a key is cancelled, a task waiting for it computes itself."""
    calls: list[str] = []
    original_run = AsyncFlights.run
    arrivals: list[str] = []
    follower_in: list[asyncio.Event] = []

    async def observed_run(self: AsyncFlights, *args: Any) -> Any:
        arrivals.append("in")
        if len(arrivals) == 2:
            # original_run reaches its first await (the wait for the leader) before we resume.
            follower_in[0].set()
        return await original_run(self, *args)

    @cached(cache=cache, ignore=("hang",))
    async def f(x: int, hang: asyncio.Event) -> str:
        calls.append("run")
        if len(calls) == 1:
            await hang.wait()
        return "computed"

    async def scenario() -> str:
        follower_in.append(asyncio.Event())
        hang = asyncio.Event()
        leader = asyncio.create_task(f(1, hang))
        while not calls:
            await asyncio.sleep(0)
        follower = asyncio.create_task(f(1, hang))
        await follower_in[0].wait()
        leader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leader
        return await asyncio.wait_for(follower, 30)

    monkeypatch.setattr(AsyncFlights, "run", observed_run)
    assert run(cache, scenario()) == "computed"
    assert calls == ["run", "run"]


def test_interrupted_thread_leader_does_not_interrupt_followers(
    cache: RedisCaching, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A BaseException (not Exception) in the computing thread is not re-raised in waiters."""

    class Abort(BaseException):
        """Stands in for KeyboardInterrupt / SystemExit in the leader thread."""

    calls: list[str] = []
    leader_started = threading.Event()
    follower_entered = threading.Event()
    original_run = Flights.run

    def observed_run(self: Flights, *args: Any) -> Any:
        if leader_started.is_set():
            follower_entered.set()
        return original_run(self, *args)

    @cached(cache=cache)
    def f(x: int) -> str:
        calls.append("run")
        if len(calls) == 1:
            leader_started.set()
            follower_entered.wait(30)
            raise Abort
        return "computed"

    monkeypatch.setattr(Flights, "run", observed_run)
    outcome: list[BaseException | str] = []

    def leader() -> None:
        try:
            f(1)
        except Abort as exc:
            outcome.append(exc)

    thread = threading.Thread(target=leader)
    thread.start()
    assert leader_started.wait(30)
    started = time.monotonic()
    assert f(1) == "computed"
    # Woken at once, not after waiting out lock_wait (10 s) for a leader that is gone.
    assert time.monotonic() - started < cache.lock_wait / 2
    thread.join(30)
    assert isinstance(outcome[0], Abort)
    assert calls == ["run", "run"]


# --- the asyncio client alone ----------------------------------------------------------------


def test_decorated_async_functions_never_build_the_sync_client(server: EmbeddedServer,
                                                                raw: redis.Redis) -> None:
    """A decorated async function's miss, hit, refresh, invalidate, many and cache_clear, and an
    async @invalidates, run on the loop's asyncio client: the lazily built sync client of a
    fresh RedisCaching(url) is never created."""
    fresh = RedisCaching(server.url)
    calls: list[int] = []

    @cached(cache=fresh, prefix="squares", ttl=60)
    async def square(x: int) -> int:
        calls.append(x)
        return x * x

    @invalidates("squares:*", cache=fresh)
    async def wipe() -> str:
        return "wiped"

    async def scenario() -> tuple[list[Any], bool]:
        results: list[Any] = [await square(3), await square(3)]  # a miss, then a hit
        results.append(await square.refresh(3))
        results.append(await square.invalidate(3))
        results.append(await square.many([3, 4]))
        results.append(await square.cache_clear())
        results.append(await square(5))
        results.append(await wipe())
        return results, fresh.engine._client is not None  # checked before aclose() runs

    results, built = run(fresh, scenario())
    assert results == [9, 9, 9, 1, [9, 16], 2, 25, "wiped"]
    assert calls == [3, 3, 3, 4, 5]
    assert raw.exists(square.cache_key(5)) == 0
    assert square.cache_info() == CacheInfo(hits=0, misses=1, errors=0, stores=1)
    assert not built, "a decorated async function built the sync client"
