"""The facade and its public read-through primitive: RedisCaching(client) positionally,
get_or_create / aget_or_create, and the classmethod handles Python 3.13 reaches unbound."""

from __future__ import annotations

import asyncio
import threading
import types
from typing import Any

import pytest
import redis

import memo_redis
from memo_redis import CacheUnavailable, ConfigError, RedisCaching, cached
from memo_redis.embedded import EmbeddedServer


def test_client_positionally_is_used_as_given(server: EmbeddedServer, raw: redis.Redis) -> None:
    """RedisCaching(redis.Redis(...)) uses that client, like client=, and leaves it open."""
    client = server.client()
    cache = RedisCaching(client)
    assert cache.client is client
    assert cache.set("k", 1) is True
    cache.close()
    assert client.ping() is True
    client.close()


def test_client_twice_is_a_config_error(server: EmbeddedServer) -> None:
    """A client positionally and client= together is refused, naming both."""
    client = server.client()
    with pytest.raises(ConfigError, match="positionally or as client="):
        RedisCaching(client, client=client)
    client.close()


def test_client_of_the_wrong_type_is_named() -> None:
    """client= that is not a redis-py client is a ConfigError naming its type."""
    with pytest.raises(ConfigError, match=r"client must be a redis-py client.*int"):
        RedisCaching(client=42)  # type: ignore[arg-type]


def test_get_or_create_runs_the_creator_once(cache: RedisCaching) -> None:
    """The first call creates and stores; later calls are hits without the creator."""
    calls: list[int] = []

    def create() -> dict[str, int]:
        calls.append(1)
        return {"n": len(calls)}

    assert cache.get_or_create("report:1", create, 60) == {"n": 1}
    assert cache.get_or_create("report:1", create, 60) == {"n": 1}
    assert calls == [1]
    assert cache.get("report:1") == {"n": 1}


def test_get_or_create_single_flight_across_threads(cache: RedisCaching) -> None:
    """Eight threads missing one key run the creator once and all get its result."""
    started, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def create() -> str:
        calls.append(1)
        started.set()
        assert release.wait(10)
        return "value"

    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(
        cache.get_or_create("shared:1", create, 60))) for _ in range(8)]
    for thread in threads:
        thread.start()
    assert started.wait(10)
    release.set()
    for thread in threads:
        thread.join(10)
    assert results == ["value"] * 8
    assert calls == [1]


def test_get_or_create_should_cache_false_is_not_stored(cache: RedisCaching) -> None:
    """A result should_cache refuses is returned and not stored."""
    assert cache.get_or_create("skip:1", lambda: [], 60, should_cache=bool) == []
    assert cache.get("skip:1", "absent") == "absent"


def test_get_or_create_fingerprint_mismatch_is_a_miss(cache: RedisCaching) -> None:
    """A value stored with one fingerprint is never served to a lookup with another."""
    first, second = b"A" * 16, b"B" * 16
    assert cache.get_or_create("fp:1", lambda: "a", 60, fingerprint=first) == "a"
    assert cache.get_or_create("fp:1", lambda: "b", 60, fingerprint=second) == "b"


def test_get_or_create_while_invalidated_is_not_stored(cache: RedisCaching) -> None:
    """A result computed while its key was invalidated is returned, not stored."""

    def create() -> str:
        cache.invalidate("race:*")
        return "stale"

    assert cache.get_or_create("race:1", create, 60) == "stale"
    assert cache.get("race:1") is None


def test_get_or_create_fails_open_and_strict_raises(server_factory: Any) -> None:
    """With Redis gone the creator's result is returned; strict=True raises CacheUnavailable."""
    dead = server_factory()
    cache = RedisCaching(dead.url, lock_wait=0.5)
    dead.stop()
    assert cache.get_or_create("k:1", lambda: 7, 60) == 7
    with pytest.raises(CacheUnavailable):
        cache.get_or_create("k:2", lambda: 8, 60, strict=True)
    cache.close()


def test_get_or_create_bad_ttl_and_key_are_named(cache: RedisCaching) -> None:
    """A zero TTL and a reserved key are refused with errors naming them."""
    with pytest.raises(ValueError, match="ttl"):
        cache.get_or_create("k:1", lambda: 1, 0)
    with pytest.raises(ConfigError, match="__memo__"):
        cache.get_or_create("__memo__:x", lambda: 1, 60)


def test_get_or_create_disabled_always_creates(cache: RedisCaching) -> None:
    """Inside memo_redis.disabled() the creator runs every time and nothing is stored."""
    calls: list[int] = []
    with memo_redis.disabled():
        for _ in range(2):
            cache.get_or_create("off:1", lambda: calls.append(1) or len(calls), 60)
    assert calls == [1, 1]
    assert cache.get("off:1") is None


def test_aget_or_create_single_flight_across_tasks(server: EmbeddedServer,
                                                   raw: redis.Redis) -> None:
    """Concurrent tasks missing one key await one creator run, natively async (the sync client
    is never built)."""
    cache = RedisCaching(server.url)
    calls: list[int] = []

    async def create() -> int:
        calls.append(1)
        await asyncio.sleep(0.05)
        return 42

    async def main() -> list[int]:
        try:
            return list(await asyncio.gather(
                *(cache.aget_or_create("async:1", create, 60) for _ in range(8))))
        finally:
            await cache.aclose()

    assert asyncio.run(main()) == [42] * 8
    assert calls == [1]
    assert cache.engine._client is None
    assert cache.get("async:1") == 42
    cache.close()


class Report:
    """A class whose classmethod is cached, with @classmethod stacked above @cached."""

    table = "reports"

    @classmethod
    @cached(prefix="sql:{table}", ttl=60)
    def build(cls, table: str, n: int) -> str:
        return f"{cls.__name__}:{table}:{n}"


def test_classmethod_handles_without_cls_as_python_313_reaches_them(
    cache: RedisCaching,
) -> None:
    """On Python >= 3.13 ``Report.build`` is ``MethodType(wrapper, Report)`` and its handles
    arrive without cls: they still address the entry a call creates."""
    memo_redis.set_default_cache(cache)
    try:
        wrapper = Report.__dict__["build"].__func__
        as_313 = types.MethodType(wrapper, Report)  # what classmethod.__get__ returns on 3.13
        assert as_313("reports", 1) == "Report:reports:1"
        key = Report.build.cache_key("reports", 1)
        assert as_313.cache_key("reports", 1) == key
        assert cache.client.exists(key) == 1
        assert as_313.invalidate("reports", 1) == 1
        assert as_313.refresh("reports", 1) == "Report:reports:1"
        assert cache.client.exists(key) == 1
    finally:
        memo_redis.set_default_cache(None)
