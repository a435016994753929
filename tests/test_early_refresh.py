"""Hot keys without latency spikes: early (XFetch) refresh and TTL jitter.

XFetch recomputes an entry early when ``now + delta * beta * -ln(random()) >= expiry``, where
``delta`` is how long the body took. The tests pin ``random.random`` so that the decision is
deterministic: 1.0 makes ``-ln`` zero (never early before expiry), 0.5 makes it 0.69, which with
``beta = 1e6`` puts every entry inside its refresh window.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

from memo_redis import RedisCaching, cached

HANG = 60.0
NOT_DUE = 1.0
DUE = 0.5


@pytest.fixture
def draw(monkeypatch: pytest.MonkeyPatch) -> Callable[[float], None]:
    """``draw(x)`` makes ``random.random()`` return ``x`` until the test ends."""

    def pin(value: float) -> None:
        monkeypatch.setattr(random, "random", lambda: value)

    return pin


def test_one_caller_refreshes_early_while_others_get_the_cached_value(
    cache: RedisCaching, draw: Callable[[float], None]
) -> None:
    """In the refresh window one caller recomputes while the others get the cached value."""
    entered, gate = threading.Event(), threading.Event()
    runs: list[int] = []

    @cached(cache=cache, prefix="hot", ttl=60, early_refresh=1e6)
    def hot() -> str:
        runs.append(1)
        if len(runs) == 1:
            time.sleep(0.02)  # a measurable compute time: XFetch scales its window by it
        if len(runs) == 2:
            entered.set()
            gate.wait(HANG)
        return f"v{len(runs)}"

    draw(NOT_DUE)
    assert hot() == "v1"
    assert hot() == "v1"
    assert len(runs) == 1

    draw(DUE)
    refresher_result: list[str] = []
    refresher = threading.Thread(target=lambda: refresher_result.append(hot()))
    refresher.start()
    try:
        assert entered.wait(HANG)
        started = time.monotonic()
        others = [hot() for _ in range(10)]
        served_in = time.monotonic() - started
        assert refresher.is_alive()
    finally:
        gate.set()
        refresher.join(HANG)
    assert others == ["v1"] * 10
    assert served_in < 1.0  # nobody waited for the refresh
    assert refresher_result == ["v2"]
    assert len(runs) == 2

    draw(NOT_DUE)
    assert hot() == "v2"
    assert len(runs) == 2


def test_early_refresh_resets_the_ttl(cache: RedisCaching, raw: redis.Redis,
                                      draw: Callable[[float], None]) -> None:
    """An early refresh stores the new value with a full TTL."""
    runs: list[int] = []

    @cached(cache=cache, prefix="hot-ttl", ttl=60, early_refresh=1e6)
    def hot() -> int:
        runs.append(1)
        time.sleep(0.02)
        return len(runs)

    draw(NOT_DUE)
    assert hot() == 1
    key = hot.cache_key()
    raw.pexpire(key, 5_000)  # as if the entry were about to expire
    draw(DUE)
    assert hot() == 2
    assert 55_000 < raw.pttl(key) <= 60_000


def test_fresh_entries_are_not_refreshed(cache: RedisCaching,
                                         draw: Callable[[float], None]) -> None:
    """With early_refresh=True (beta 1) an entry far from expiry is served, never recomputed."""
    runs: list[int] = []

    @cached(cache=cache, prefix="warm", ttl=60, early_refresh=True)
    def warm() -> int:
        runs.append(1)
        time.sleep(0.02)
        return 7

    draw(DUE)
    assert [warm() for _ in range(20)] == [7] * 20
    assert len(runs) == 1


def test_early_refresh_true_recomputes_near_expiry(cache: RedisCaching, raw: redis.Redis,
                                                   draw: Callable[[float], None]) -> None:
    """early_refresh=True recomputes an entry whose remaining TTL is inside its XFetch window."""
    runs: list[int] = []

    @cached(cache=cache, prefix="near", ttl=1, early_refresh=True)
    def near() -> int:
        runs.append(1)
        time.sleep(0.05)
        return len(runs)

    draw(NOT_DUE)
    assert near() == 1
    assert raw.pttl(near.cache_key()) > 0
    # A window of -ln(1e-9) * 50 ms * beta 1 = 1.04 s: more than the 1 s TTL has left.
    draw(1e-9)
    assert near() == 2
    assert len(runs) == 2


def test_without_early_refresh_a_hit_never_recomputes(cache: RedisCaching,
                                                      draw: Callable[[float], None]) -> None:
    """Early refresh is off by default: hits are served until expiry whatever random() says."""
    runs: list[int] = []

    @cached(cache=cache, prefix="plain", ttl=60)
    def plain() -> int:
        runs.append(1)
        time.sleep(0.02)
        return 1

    draw(DUE)
    for _ in range(5):
        assert plain() == 1
    draw(1e-12)
    assert plain() == 1
    assert len(runs) == 1


def test_async_early_refresh_serves_others_the_cached_value(
    cache: RedisCaching, draw: Callable[[float], None]
) -> None:
    """Async: one task refreshes early; the other tasks get the cached value without waiting."""
    runs: list[int] = []

    async def main() -> tuple[list[Any], Any, Any]:
        entered, gate = asyncio.Event(), asyncio.Event()

        @cached(cache=cache, prefix="hot-async", ttl=60, early_refresh=1e6)
        async def hot() -> str:
            runs.append(1)
            if len(runs) == 1:
                await asyncio.sleep(0.02)
            if len(runs) == 2:
                entered.set()
                await gate.wait()
            return f"v{len(runs)}"

        try:
            draw(NOT_DUE)
            assert await hot() == "v1"
            draw(DUE)
            refresher = asyncio.ensure_future(hot())
            await asyncio.wait_for(entered.wait(), HANG)
            others = await asyncio.wait_for(asyncio.gather(*(hot() for _ in range(10))), 1.0)
            gate.set()
            refreshed = await refresher
            draw(NOT_DUE)
            return others, refreshed, await hot()
        finally:
            await cache.aclose()

    others, refreshed, after = asyncio.run(main())
    assert others == ["v1"] * 10
    assert refreshed == "v2"
    assert after == "v2"
    assert len(runs) == 2


def test_jitter_spreads_ttls_between_half_and_full(cache: RedisCaching, raw: redis.Redis) -> None:
    """jitter=0.5 stores each entry with a TTL in [ttl/2, ttl], spread over that range."""

    @cached(cache=cache, prefix="jittered", ttl=100, jitter=0.5)
    def jittered(item: int) -> int:
        return item

    for item in range(60):
        jittered(item)
    ttls = [raw.pttl(jittered.cache_key(item)) for item in range(60)]
    assert all(50_000 - 1_000 <= ttl <= 100_000 for ttl in ttls), ttls
    assert max(ttls) - min(ttls) > 20_000


def test_no_jitter_stores_the_exact_ttl(cache: RedisCaching, raw: redis.Redis) -> None:
    """Without jitter every entry gets the full TTL."""

    @cached(cache=cache, prefix="exact", ttl=100)
    def exact(item: int) -> int:
        return item

    for item in range(10):
        exact(item)
    ttls = [raw.pttl(exact.cache_key(item)) for item in range(10)]
    assert all(98_000 < ttl <= 100_000 for ttl in ttls), ttls
