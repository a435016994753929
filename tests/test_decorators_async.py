"""@cached and @invalidates on ``async def`` callables (redis.asyncio), against real servers."""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import sys
import threading
import time
from typing import Any, TypeVar

import pytest
import redis
from support import run

from memo_redis import (
    CacheInfo,
    CacheUnavailable,
    RedisCaching,
    cached,
    disabled,
    invalidates,
)
from memo_redis.flight import AsyncFlights, Flights
from memo_redis.testing import ServerFactory

T = TypeVar("T")

HEX16 = r"[0-9a-f]{16}"


def memo_warnings(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    """memo_redis log records at WARNING whose message contains ``text``."""
    return [
        r for r in caplog.records
        if r.name == "memo_redis" and r.levelno == logging.WARNING and text in r.getMessage()
    ]


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


def test_async_function_is_cached(cache: RedisCaching, raw: redis.Redis) -> None:
    """Awaiting twice runs the body once; keys follow the same binding rules as sync ones."""
    calls: list[tuple[int, int]] = []

    @cached(cache=cache)
    async def fetch(x: int, y: int = 1) -> int:
        calls.append((x, y))
        await asyncio.sleep(0)
        return x + y

    async def scenario() -> list[int]:
        return [await fetch(1), await fetch(1, 1), await fetch(x=1, y=1), await fetch(2)]

    assert run(cache, scenario()) == [2, 2, 2, 3]
    assert calls == [(1, 1), (2, 1)]
    assert fetch.cache_key(1) == fetch.cache_key(x=1, y=1)
    assert re.fullmatch(rf"memo:{re.escape(fetch.__module__)}\.[\w.<>]+\.fetch:data:{HEX16}",
                        fetch.cache_key(1))
    assert raw.exists(fetch.cache_key(1), fetch.cache_key(2)) == 2
    assert fetch.cache_info() == CacheInfo(hits=2, misses=2, errors=0, stores=2)


def _async_kinds(cache: RedisCaching, calls: list[tuple[str, int]]) -> type:
    """A class with async methods of every kind, decorated in both orders Python allows."""

    class Service:
        @cache.cached()
        async def method(self, x: int) -> int:
            """Doc of method."""
            calls.append(("method", x))
            return x * 2

        @cache.cached()
        @classmethod
        async def cached_classmethod(cls, x: int) -> int:
            """Doc of cached_classmethod."""
            calls.append(("cached_classmethod", x))
            return x * 2

        @classmethod
        @cache.cached()
        async def classmethod_cached(cls, x: int) -> int:
            """Doc of classmethod_cached."""
            calls.append(("classmethod_cached", x))
            return x * 2

        @cache.cached()
        @staticmethod
        async def cached_staticmethod(x: int) -> int:
            """Doc of cached_staticmethod."""
            calls.append(("cached_staticmethod", x))
            return x * 2

        @staticmethod
        @cache.cached()
        async def staticmethod_cached(x: int) -> int:
            """Doc of staticmethod_cached."""
            calls.append(("staticmethod_cached", x))
            return x * 2

    return Service


@pytest.mark.parametrize(
    "kind",
    [
        "method",
        "cached_classmethod",
        pytest.param("classmethod_cached", marks=pytest.mark.xfail(
            sys.version_info >= (3, 13), strict=True,
            reason="Python >= 3.13: handles of @classmethod over @cached need cls passed",
        )),
        "cached_staticmethod",
        "staticmethod_cached",
    ],
    ids=["method", "cached-over-classmethod", "classmethod-over-cached",
         "cached-over-staticmethod", "staticmethod-over-cached"],
)
def test_async_method_kinds(kind: str, cache: RedisCaching, raw: redis.Redis) -> None:
    """Async methods of every kind are coroutine functions, cached with self/cls left out."""
    calls: list[tuple[str, int]] = []
    service = _async_kinds(cache, calls)
    first, second = service(), service()
    attr = getattr(first, kind)
    assert attr.__name__ == kind
    assert attr.__doc__ == f"Doc of {kind}."
    assert str(inspect.signature(attr)) == "(x: 'int') -> 'int'"
    assert inspect.iscoroutinefunction(attr)

    async def scenario() -> list[int]:
        results = [await getattr(first, kind)(3), await getattr(second, kind)(3)]
        if kind == "method":
            results.append(await service.method(first, 3))
        else:
            results.append(await getattr(service, kind)(3))
        results.append(await getattr(first, kind).refresh(3))
        assert await getattr(first, kind).invalidate(3) == 1
        return results

    assert run(cache, scenario()) == [6, 6, 6, 6]
    assert calls == [(kind, 3), (kind, 3)]
    assert getattr(first, kind).cache_key(3) == getattr(second, kind).cache_key(3)
    assert raw.exists(getattr(first, kind).cache_key(3)) == 0


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


def test_async_handles_return_awaitables(cache: RedisCaching, raw: redis.Redis) -> None:
    """On async functions invalidate/refresh/cache_clear are awaitable; cache_key is plain."""
    version = [1]

    @cached(cache=cache)
    async def f(x: int) -> list[int]:
        return [x, version[0]]

    async def scenario() -> list[Any]:
        out: list[Any] = [await f(1), await f(2)]
        version[0] = 2
        out.append(await f(1))
        out.append(await f.refresh(1))
        out.append(await f(1))
        invalidation = f.invalidate(2)
        assert inspect.isawaitable(invalidation)
        out.append(await invalidation)
        clearing = f.cache_clear()
        assert inspect.isawaitable(clearing)
        out.append(await clearing)
        return out

    assert isinstance(f.cache_key(1), str)
    assert run(cache, scenario()) == [[1, 1], [2, 1], [1, 1], [1, 2], [1, 2], 1, 1]
    assert raw.exists(f.cache_key(1), f.cache_key(2)) == 0


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


# --- @invalidates --------------------------------------------------------------------------


def test_async_invalidates_after_return_and_after_raise(cache: RedisCaching,
                                                        raw: redis.Redis) -> None:
    """Async @invalidates runs after the coroutine returns or raises; both pass through."""
    result = object()
    error = RuntimeError("half-done")

    @cached(cache=cache, prefix="sql:{table}")
    async def read(table: str) -> str:
        return table

    @cache.invalidates("sql:{table}:*")
    async def write(table: str, fail: bool = False) -> object:
        assert raw.exists(read.cache_key(table)) == 1
        await asyncio.sleep(0)
        if fail:
            raise error
        return result

    async def scenario() -> None:
        await read("users")
        await read("users*")
        await read("users2")
        assert await write("users*") is result
        assert raw.exists(read.cache_key("users*")) == 0
        assert raw.exists(read.cache_key("users"), read.cache_key("users2")) == 2
        with pytest.raises(RuntimeError) as caught:
            await write("users", fail=True)
        assert caught.value is error
        assert raw.exists(read.cache_key("users")) == 0
        assert raw.exists(read.cache_key("users2")) == 1

    assert inspect.iscoroutinefunction(write)
    assert write.__name__ == "write"
    run(cache, scenario())


# --- what is cached and failures ---------------------------------------------------------------


def test_async_exceptions_never_cached_and_ttl(cache: RedisCaching, raw: redis.Redis) -> None:
    """An async call that raises stores nothing; a stored result gets the category TTL."""
    attempts: list[int] = []

    @cached(cache=cache, category="count")
    async def flaky(x: int) -> int:
        attempts.append(x)
        if len(attempts) == 1:
            raise ValueError("first attempt fails")
        return x

    async def scenario() -> list[int]:
        with pytest.raises(ValueError, match="first attempt"):
            await flaky(1)
        assert raw.exists(flaky.cache_key(1)) == 0
        return [await flaky(1), await flaky(1)]

    assert run(cache, scenario()) == [1, 1]
    assert attempts == [1, 1]
    assert 55 <= raw.ttl(flaky.cache_key(1)) <= 60


def test_async_dead_server_fails_open_with_one_warning(server_factory: ServerFactory,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    """With Redis down, awaited calls return their own results; one warning; errors counted."""
    srv = server_factory()
    flaky = RedisCaching(srv.args(), failure_threshold=1000)
    calls: list[int] = []

    @cached(cache=flaky)
    async def f(x: int) -> int:
        calls.append(x)
        return x * 10

    @cached(cache=flaky, strict=True)
    async def strict(x: int) -> int:
        calls.append(-x)
        return x

    async def scenario() -> list[int]:
        first = [await f(1), await f(1)]
        srv.kill()
        later = [await f(1) for _ in range(4)]
        with pytest.raises(CacheUnavailable):
            await strict(1)
        return first + later

    caplog.set_level(logging.WARNING, logger="memo_redis")
    assert run(flaky, scenario()) == [10] * 6
    assert calls == [1] * 5
    assert f.cache_info().errors == 4
    assert strict.cache_info().errors == 1
    assert len(memo_warnings(caplog, "Redis unavailable")) == 1


def test_async_invalidates_with_dead_server(server_factory: ServerFactory) -> None:
    """Async @invalidates fails open (result passes) and raises CacheUnavailable when strict."""
    srv = server_factory()
    flaky = RedisCaching(srv.args(), failure_threshold=1000)

    @invalidates("sql:users:*", cache=flaky)
    async def lenient() -> str:
        return "ok"

    @invalidates("sql:users:*", cache=flaky, strict=True)
    async def strict() -> str:
        return "ok"

    async def scenario() -> str:
        srv.kill()
        with pytest.raises(CacheUnavailable):
            await strict()
        return await lenient()

    assert run(flaky, scenario()) == "ok"
