"""``fn.many([...])``: many calls of a ``@cached`` function with one round trip for every lookup
and one for every store, against real private servers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, ParamSpec, TypeVar

import pytest
import redis
import redis.asyncio.connection
import redis.connection
from support import command_calls, reset_stats, run

from memo_redis import (
    CachedFunction,
    CacheUnavailable,
    RedisCaching,
    cached,
    disabled,
    set_default_cache,
)
from memo_redis.decorators import Args
from memo_redis.embedded import EmbeddedServer
from memo_redis.testing import ServerFactory

T = TypeVar("T")
P = ParamSpec("P")
R = TypeVar("R")


def memo(**options: Any) -> Callable[[Callable[P, R]], CachedFunction[P, R]]:
    """``cached(**options)``, typed for the checker."""
    decorator: Callable[[Callable[P, R]], CachedFunction[P, R]] = cached(**options)
    return decorator


def memo_member(**options: Any) -> Callable[[Any], Any]:
    """``cached(**options)`` for class members (classmethod and staticmethod objects too)."""
    decorator: Callable[[Any], Any] = cached(**options)
    return decorator


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every client->server write (one per command, one per pipeline) of every redis-py
    connection, sync or async: ``len(round_trips)`` after the code under test."""
    sent: list[str] = []
    sync_send: Callable[..., None] = redis.connection.AbstractConnection.send_packed_command
    async_send: Callable[..., Awaitable[None]] = (
        redis.asyncio.connection.AbstractConnection.send_packed_command
    )

    def counting(self: Any, command: Any, check_health: bool = True) -> None:
        sent.append("sync")
        sync_send(self, command, check_health)

    async def acounting(self: Any, command: Any, check_health: bool = True) -> None:
        sent.append("async")
        await async_send(self, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)
    monkeypatch.setattr(redis.asyncio.connection.AbstractConnection, "send_packed_command",
                        acounting)
    return sent


@pytest.fixture
def dead_cache(server_factory: ServerFactory) -> Iterator[RedisCaching]:
    """A cache whose server has been killed."""
    srv = server_factory()
    cache = RedisCaching(srv.args())
    assert cache.check_cache_health()
    srv.kill()
    try:
        yield cache
    finally:
        cache.close()


# --- results ---------------------------------------------------------------------------------


def test_many_returns_results_in_order_for_every_item_form(cache: RedisCaching) -> None:
    """Tuples, dicts, Args and plain values are positional args, kwargs, both, and one arg."""
    calls: list[tuple[int, int]] = []

    @memo(cache=cache, ttl=60)
    def area(w: int, h: int = 1) -> int:
        calls.append((w, h))
        return w * h

    items = [(2, 3), {"w": 4, "h": 5}, Args(6, h=7), 8]
    assert area.many(items) == [6, 20, 42, 8]
    assert calls == [(2, 3), (4, 5), (6, 7), (8, 1)]
    assert area.many(items) == [6, 20, 42, 8]
    assert area(2, 3) == 6 and area(w=8) == 8
    assert len(calls) == 4
    assert area.cache_info().hits == 6


def test_many_args_passes_a_tuple_as_one_argument(cache: RedisCaching) -> None:
    """A bare tuple spreads into positional arguments; Args((1, 2)) passes the tuple itself."""

    @memo(cache=cache, ttl=60)
    def first(pair: tuple[int, int] | int, default: int = 0) -> Any:
        return pair[0] if isinstance(pair, tuple) else (pair, default)

    assert first.many([Args((1, 2)), (3, 4), Args(pair=(5, 6))]) == [1, (3, 4), 5]


def test_many_accepts_any_iterable_and_the_empty_batch(cache: RedisCaching,
                                                       round_trips: list[str]) -> None:
    """A generator of items works; an empty batch returns [] without a round trip."""

    @memo(cache=cache, ttl=60)
    def double(x: int) -> int:
        return 2 * x

    assert double.many(x for x in range(4)) == [0, 2, 4, 6]
    round_trips.clear()
    assert double.many([]) == []
    assert round_trips == []


def test_many_computes_each_distinct_miss_once(cache: RedisCaching) -> None:
    """Duplicates inside one batch (also spelled differently) run the body once."""
    calls: list[int] = []

    @memo(cache=cache, ttl=60)
    def square(x: int, power: int = 2) -> int:
        calls.append(x)
        return int(x**power)

    assert square.many([3, (3,), {"x": 3}, Args(3, power=2), 4, 3]) == [9, 9, 9, 9, 16, 9]
    assert calls == [3, 4]
    info = square.cache_info()
    assert (info.misses, info.stores) == (2, 2)


def test_many_and_single_calls_share_entries(cache: RedisCaching) -> None:
    """An entry stored by a single call is a hit in a batch, and the other way round."""
    calls: list[int] = []

    @memo(cache=cache, ttl=60)
    def neg(x: int) -> int:
        calls.append(x)
        return -x

    assert neg(1) == -1
    assert neg.many([1, 2]) == [-1, -2]
    assert neg(2) == -2
    assert calls == [1, 2]


def test_many_stores_with_the_function_ttl(cache: RedisCaching, raw: redis.Redis) -> None:
    """Batch stores use the decorator's TTL, like single calls."""

    @memo(cache=cache, ttl=120)
    def ident(x: int) -> int:
        return x

    ident.many([1, 2])
    ttls = [raw.pttl(ident.cache_key(x)) for x in (1, 2)]
    assert all(110_000 < t <= 120_000 for t in ttls), ttls


def test_many_propagates_an_exception_and_caches_nothing_for_it(cache: RedisCaching) -> None:
    """A body raising inside a batch raises out of many(); the failed call is never cached."""
    calls: list[int] = []

    @memo(cache=cache, ttl=60)
    def inverse(x: int) -> float:
        calls.append(x)
        return 1 / x

    with pytest.raises(ZeroDivisionError):
        inverse.many([1, 0, 2])
    assert inverse.many([4]) == [0.25]
    with pytest.raises(ZeroDivisionError):
        inverse.many([0])
    assert calls.count(0) == 2


def test_many_respects_unless_and_cache_none(cache: RedisCaching) -> None:
    """Results rejected by unless= or None with cache_none=False are returned, not stored."""
    calls: list[int] = []

    @memo(cache=cache, ttl=60, unless=lambda r: r is not None and r < 0, cache_none=False)
    def classify(x: int) -> int | None:
        calls.append(x)
        return None if x == 0 else x

    assert classify.many([0, -1, 1]) == [None, -1, 1]
    assert classify.many([0, -1, 1]) == [None, -1, 1]
    assert calls == [0, -1, 1, 0, -1]
    assert classify.cache_info().stores == 1


def test_many_with_caching_disabled_runs_every_call_without_redis(
    cache: RedisCaching, round_trips: list[str]
) -> None:
    """Inside disabled(), many() runs the body for every item and sends nothing."""
    calls: list[int] = []

    @memo(cache=cache, ttl=60)
    def ident(x: int) -> int:
        calls.append(x)
        return x

    with disabled():
        assert ident.many([1, 1, 2]) == [1, 1, 2]
    assert calls == [1, 1, 2]
    assert round_trips == []


# --- round trips -----------------------------------------------------------------------------


def test_many_is_one_round_trip_for_lookups_and_one_for_stores(
    cache: RedisCaching, raw: redis.Redis, round_trips: list[str]
) -> None:
    """n lookups are n MGET in one pipeline; the misses are armed (EVALSHA) in one more before
    they run, and stored (EVALSHA) in a third."""
    calls: list[int] = []

    @memo(cache=cache, prefix="sql:rows", ttl=60)
    def row(x: int) -> dict[str, int]:
        calls.append(x)
        return {"id": x}

    row.many([0, 1, 2])  # generations exist and the store script is loaded from here on
    reset_stats(raw)
    round_trips.clear()
    items = list(range(8))
    assert row.many(items) == [{"id": x} for x in items]
    assert len(round_trips) == 3
    stats = command_calls(raw)
    assert stats["mget"] == 8 + 5  # the lookups, and the arming scripts' reads
    assert stats["evalsha"] == 5 + 5
    assert calls == items

    reset_stats(raw)
    round_trips.clear()
    assert row.many(items) == [{"id": x} for x in items]
    assert len(round_trips) == 1
    assert "evalsha" not in command_calls(raw)


def test_many_on_an_empty_keyspace_creates_generations_in_one_round_trip(
    cache: RedisCaching, raw: redis.Redis, round_trips: list[str]
) -> None:
    """On a new or flushed server the missing generations of every key are created together
    with the fences that arm the misses: lookups, arming and stores take 3 round trips whatever
    the batch size."""
    raw.script_flush()

    @memo(cache=cache, ttl=60)
    def ident(x: int) -> int:
        return x

    cache.client.ping()
    round_trips.clear()
    assert ident.many(range(20)) == list(range(20))
    assert len(round_trips) == 3
    assert ident.many(range(20)) == list(range(20))
    assert ident.cache_info().hits == 20


def test_async_many(cache: RedisCaching, round_trips: list[str]) -> None:
    """await afn.many([...]): results in order, each distinct miss computed once, then hits;
    one round trip for the lookups, one to arm the misses and one for the stores."""
    calls: list[int] = []

    @memo(cache=cache, prefix="app:async", ttl=60)
    async def triple(x: int) -> int:
        calls.append(x)
        await asyncio.sleep(0)
        return 3 * x

    async def scenario() -> tuple[list[int], int, list[int], int]:
        await triple(100)  # generations exist and the async connection is open
        cache.client.ping()  # batch stores run on the sync client in a worker thread
        round_trips.clear()
        first = await triple.many([1, 2, Args(x=1), {"x": 3}])
        trips = len(round_trips)
        round_trips.clear()
        second = await triple.many([3, 2, 1])
        return first, trips, second, len(round_trips)

    first, trips, second, hit_trips = run(cache, scenario())
    assert first == [3, 6, 3, 9]
    assert trips == 3  # lookups, arming the misses, stores
    assert second == [9, 6, 3]
    assert hit_trips == 1
    assert calls == [100, 1, 2, 3]


class Repo:
    """Methods of every kind, cached."""

    scale = 10
    calls: list[Any] = []

    @memo_member(ttl=60)
    def method(self, x: int) -> int:
        Repo.calls.append(("method", x))
        return x * self.scale

    @memo_member(ttl=60)
    @classmethod
    def klass(cls, x: int) -> int:
        Repo.calls.append(("klass", x))
        return x * cls.scale

    @memo_member(ttl=60)
    @staticmethod
    def static(x: int) -> int:
        Repo.calls.append(("static", x))
        return x * 10

    @memo_member(ttl=60)
    async def amethod(self, x: int) -> int:
        Repo.calls.append(("amethod", x))
        return x * self.scale


@pytest.fixture
def default_cache(cache: RedisCaching) -> Iterator[RedisCaching]:
    """``cache`` as the process default (for decorators without ``cache=``), reset afterwards."""
    set_default_cache(cache)
    Repo.calls.clear()
    try:
        yield cache
    finally:
        set_default_cache(None)


@pytest.mark.parametrize("kind", ["method", "klass", "static"],
                         ids=["method", "classmethod", "staticmethod"])
def test_many_on_methods(kind: str, default_cache: RedisCaching) -> None:
    """obj.method.many([...]) binds the instance (or class) like a call does."""
    handle = getattr(Repo(), kind)
    assert handle.many([1, 2, 1]) == [10, 20, 10]
    assert handle.many([2, 3]) == [20, 30]
    assert Repo.calls == [(kind, 1), (kind, 2), (kind, 3)]
    assert handle(1) == 10
    if kind != "method":
        assert getattr(Repo, kind).many([3, 1]) == [30, 10]
    assert len(Repo.calls) == 3


def test_many_on_unbound_method_takes_the_instance_first(default_cache: RedisCaching) -> None:
    """Class.method.many([(obj, x), ...]) is obj.method.many([x, ...])."""
    repo = Repo()
    assert repo.method.many([5]) == [50]
    assert Repo.method.many([(repo, 5), (repo, 6)]) == [50, 60]
    assert Repo.calls == [("method", 5), ("method", 6)]


def test_async_many_on_a_method(default_cache: RedisCaching) -> None:
    """await obj.amethod.many([...]) works on async methods."""
    repo = Repo()
    assert run(default_cache, repo.amethod.many([1, 1, 2])) == [10, 10, 20]
    assert run(default_cache, repo.amethod.many([2])) == [20]
    assert Repo.calls == [("amethod", 1), ("amethod", 2)]


# --- failures --------------------------------------------------------------------------------


def test_many_fails_open_when_the_server_is_dead(dead_cache: RedisCaching) -> None:
    """A dead server: every result is still returned (duplicates computed once), the error is
    counted, nothing raises."""
    calls: list[int] = []

    @memo(cache=dead_cache, ttl=60)
    def ident(x: int) -> int:
        calls.append(x)
        return x

    assert ident.many([1, 2, 1]) == [1, 2, 1]
    assert calls == [1, 2]
    info = ident.cache_info()
    assert info.errors == 1
    assert info.stores == 0


def test_async_many_fails_open_when_the_server_is_dead(dead_cache: RedisCaching) -> None:
    """The async batch falls back the same way."""
    calls: list[int] = []

    @memo(cache=dead_cache, ttl=60)
    async def ident(x: int) -> int:
        calls.append(x)
        return x

    assert run(dead_cache, ident.many([1, 2, 1])) == [1, 2, 1]
    assert calls == [1, 2]
    assert ident.cache_info().errors == 1


def test_many_strict_raises_when_the_server_is_dead(dead_cache: RedisCaching) -> None:
    """strict=True turns the failed batch lookup into CacheUnavailable, before any body runs."""
    calls: list[int] = []

    @memo(cache=dead_cache, ttl=60, strict=True)
    def ident(x: int) -> int:
        calls.append(x)
        return x

    with pytest.raises(CacheUnavailable) as caught:
        ident.many([1, 2])
    assert isinstance(caught.value.__cause__, (redis.RedisError, OSError))
    assert calls == []


def test_many_fails_open_when_the_store_fails(server_factory: ServerFactory) -> None:
    """A server that dies during the batch (after the lookups) still yields every result."""
    srv = server_factory()
    with RedisCaching(srv.args()) as cache:
        calls: list[int] = []

        @memo(cache=cache, ttl=60)
        def ident(x: int) -> int:
            calls.append(x)
            if x == 2:
                srv.kill()
            return x

        assert ident.many([1, 2, 3]) == [1, 2, 3]
        assert calls == [1, 2, 3]
        info = ident.cache_info()
        assert (info.misses, info.errors, info.stores) == (3, 1, 0)


# --- race-free stores ------------------------------------------------------------------------


@pytest.mark.parametrize("protected", [True, False], ids=["race_protection", "unprotected"])
@pytest.mark.parametrize("how", ["pattern", "entry", "before_store"])
def test_many_never_stores_a_value_read_before_an_invalidation(
    cache: RedisCaching, server: EmbeddedServer, how: str, protected: bool
) -> None:
    """A row read by a batch, then updated and invalidated by another client before the batch
    stores it, is not stored: the next call reads the new row. Without race protection the
    stale row is served (the test can fail)."""
    cache.race_protection = protected
    db = {1: "old", 2: "old"}

    @memo(cache=cache, prefix="sql:users", ttl=60)
    def read(row_id: int) -> str:
        value = db[row_id]
        if row_id == 1 and how != "before_store":
            write(1)
        return value

    with RedisCaching(server.args()) as writer:

        def write(row_id: int) -> None:
            db[row_id] = "new"
            if how == "entry":
                writer.invalidate_key(read.cache_key(row_id))
            else:
                writer.invalidate("sql:users:*")

        if how == "before_store":
            fired: list[str] = []

            def before_store(key: str) -> None:
                if not fired:
                    fired.append(key)
                    write(1)

            cache.before_store = before_store
        assert read.many([1, 2]) == ["old", "old"]
        cache.before_store = None
        got = read.many([1])
    if protected:
        assert got == ["new"]
    else:
        assert got == ["old"]
