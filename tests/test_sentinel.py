"""memo_redis behind Redis Sentinel (a primary, a replica, 3 sentinels): issue 7 item by item.

Selection from the environment (sync and async clients), fail-open on a wrong service name, and a
primary failover under concurrent decorated reads and writes. The failover test runs last.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import redis.asyncio.sentinel
import redis.sentinel

from memo_redis import RedisArgs, RedisCaching, cached, invalidates
from memo_redis.exceptions import CacheUnavailable, ConfigError
from memo_redis.servers import Address, LocalSentinel

pytestmark = pytest.mark.cluster

TABLES = ("users", "orders", "items")
FAILOVER_BOUND = 20.0
RESUME_BOUND = 10.0
# Strict tests must not fail because a loaded CI machine answered slower than the 1 s default
# timeouts; the failover tests drop these and run with the defaults, as production does.
PATIENT = {"REDIS_SOCKET_TIMEOUT": "10", "REDIS_SOCKET_CONNECT_TIMEOUT": "10"}


@pytest.fixture(scope="module")
def topology(memo_redis_binary: str) -> Iterator[LocalSentinel]:
    """A primary, its replica and 3 sentinels shared by this module."""
    with LocalSentinel(memo_redis_binary) as started:
        yield started


@pytest.fixture
def env(topology: LocalSentinel) -> dict[str, str]:
    """The environment selecting the sentinel-managed primary, after emptying it."""
    with contextlib.closing(topology.client()) as admin:
        admin.flushall()
    return {"REDIS_SENTINELS": topology.sentinels_env,
            "REDIS_SENTINEL_SERVICE": topology.service, **PATIENT}


def _has_key(address: Address, key: str) -> bool:
    """Whether the server at ``address`` itself holds ``key``."""
    with contextlib.closing(redis.Redis(host=address[0], port=address[1])) as node:
        return bool(node.exists(key))


class _Source:
    """One version per table: the source of truth the cached function reads."""

    def __init__(self) -> None:
        self.versions = dict.fromkeys(TABLES, 0)
        self.committed = dict.fromkeys(TABLES, 0)
        self.runs = dict.fromkeys(TABLES, 0)
        self.lock = threading.Lock()

    def read(self, table: str) -> tuple[str, int]:
        with self.lock:
            self.runs[table] += 1
            return (table, self.versions[table])

    def bump(self, table: str) -> int:
        with self.lock:
            self.versions[table] += 1
            return self.versions[table]


def _table_functions(cache: RedisCaching, source: _Source) -> tuple[Any, Any]:
    """``fetch(table)`` cached under ``sql:<table>`` and ``update(table)`` invalidating it."""

    @cached(cache=cache, prefix="sql:{table}", ttl=60)
    def fetch(table: str) -> tuple[str, int]:
        return source.read(table)

    @invalidates("sql:{table}:*", cache=cache)
    def update(table: str) -> int:
        return source.bump(table)

    return fetch, update


# --- selection -------------------------------------------------------------------------------


def test_environment_selects_the_sentinel_managed_primary(env: dict[str, str],
                                                         topology: LocalSentinel) -> None:
    """REDIS_SENTINELS + REDIS_SENTINEL_SERVICE give a redis.Redis whose pool asks the
    sentinels; entries land on the primary and replicate, with unchanged key names."""
    with RedisCaching(RedisArgs.from_env(env), strict=True) as cache:
        assert isinstance(cache.client, redis.Redis)
        pool = cache.client.connection_pool
        assert isinstance(pool, redis.sentinel.SentinelConnectionPool)
        assert pool.service_name == topology.service
        assert not cache.layout.tagged
        assert f"sentinel {topology.service} via 127.0.0.1:" in repr(cache)
        source = _Source()
        fetch, update = _table_functions(cache, source)
        assert fetch("users") == fetch("users") == ("users", 0)
        assert source.runs["users"] == 1
        key = fetch.cache_key("users")
        assert key.startswith("sql:users:data:")
        primary, replica = topology.data_nodes
        assert topology.primary_address() == primary
        assert _has_key(primary, key)
        execute: Any = cache.client.execute_command
        assert int(execute("WAIT", 1, 5000)) == 1
        assert _has_key(replica, key)
        assert update("users") == 1
        assert fetch("users") == ("users", 1)
        assert cache.check_cache_health() is True
        assert cache.hit_rate() > 0.0


def test_async_functions_use_the_async_sentinel_client(env: dict[str, str]) -> None:
    """An async @cached function runs on redis.asyncio with a sentinel pool: hit, invalidate."""
    source = _Source()
    cache = RedisCaching(RedisArgs.from_env(env), strict=True)

    @cached(cache=cache, prefix="sql:{table}", ttl=60)
    async def fetch(table: str) -> tuple[str, int]:
        return source.read(table)

    @invalidates("sql:{table}:*", cache=cache)
    async def update(table: str) -> int:
        return source.bump(table)

    async def scenario() -> list[Any]:
        try:
            pool = cache.async_client.connection_pool
            return [pool, await fetch("orders"), await fetch("orders"), await update("orders"),
                    await fetch("orders")]
        finally:
            await cache.aclose()

    pool, first, second, version, third = asyncio.run(scenario())
    assert isinstance(pool, redis.asyncio.sentinel.SentinelConnectionPool)
    assert first == second == ("orders", 0)
    assert version == 1 and third == ("orders", 1)
    assert source.runs["orders"] == 2
    assert fetch.cache_info().hits == 1


def test_a_given_sentinel_client_serves_sync_and_async(env: dict[str, str],
                                                      topology: LocalSentinel) -> None:
    """RedisCaching(client=<master_for client>) describes the service and builds an async
    sentinel client for async functions."""
    given = topology.client()
    cache = RedisCaching(client=given, strict=True)
    source = _Source()

    @cached(cache=cache, prefix="sql:{table}", ttl=60)
    async def fetch(table: str) -> tuple[str, int]:
        return source.read(table)

    async def scenario() -> tuple[Any, list[tuple[str, int]]]:
        try:
            pool = cache.async_client.connection_pool
            return pool, [await fetch(t) for t in TABLES * 2]
        finally:
            await cache.aclose()

    try:
        pool, results = asyncio.run(scenario())
        assert repr(cache).startswith(f"RedisCaching(client sentinel {topology.service} via ")
        assert isinstance(pool, redis.asyncio.sentinel.SentinelConnectionPool)
        assert pool.service_name == topology.service
        assert results == [(t, 0) for t in TABLES] * 2
        assert set(source.runs.values()) == {1}
        assert given.exists(fetch.cache_key("users")) == 1
    finally:
        given.close()


def test_service_without_sentinels_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """RedisCaching() from os.environ with only REDIS_SENTINEL_SERVICE names both variables."""
    monkeypatch.setenv("REDIS_SENTINEL_SERVICE", "mymaster")
    monkeypatch.delenv("REDIS_SENTINELS", raising=False)
    with pytest.raises(ConfigError,
                       match="REDIS_SENTINEL_SERVICE requires REDIS_SENTINELS"):
        RedisCaching()


def test_unknown_service_fails_open(env: dict[str, str]) -> None:
    """A service the sentinels do not know: calls run uncached and correct, health is False,
    strict mode raises CacheUnavailable."""
    source = _Source()
    args = RedisArgs.from_env({**env, "REDIS_SENTINEL_SERVICE": "nosuchservice"})
    with RedisCaching(args) as cache:
        fetch, _ = _table_functions(cache, source)
        assert fetch("items") == fetch("items") == ("items", 0)
        assert source.runs["items"] == 2
        assert fetch.cache_info().errors == 2
        assert cache.check_cache_health() is False
        with pytest.raises(CacheUnavailable, match="nosuchservice"):
            cache.get("sql:items:x", strict=True)


# --- failover --------------------------------------------------------------------------------


def test_failover_under_concurrent_reads_and_writes(env: dict[str, str],
                                                   topology: LocalSentinel) -> None:
    """While 4 threads read and write, the primary dies: every call returns a correct result,
    a later invalidation is honoured, and caching resumes on the promoted replica."""
    defaults = {name: value for name, value in env.items() if name not in PATIENT}
    cache = RedisCaching(RedisArgs.from_env(defaults))  # 1 s timeouts, fail-open: production
    source = _Source()
    fetch, update = _table_functions(cache, source)
    errors: list[BaseException] = []
    ops = [0]
    stop = threading.Event()
    progress = threading.Condition()

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        deadline = time.monotonic() + 40
        while not stop.is_set() and time.monotonic() < deadline:
            table = rng.choice(TABLES)
            try:
                if rng.random() < 0.15:
                    version = update(table)
                    with source.lock:
                        source.committed[table] = max(source.committed[table], version)
                else:
                    with source.lock:
                        low = source.committed[table]
                    name, version = fetch(table)
                    with source.lock:
                        high = source.versions[table]
                    if name != table or not low <= version <= high:
                        raise AssertionError(f"{table}: got v{version}, expected {low}..{high}")
            except BaseException as exc:  # every failure is reported below
                errors.append(exc)
                return
            with progress:
                ops[0] += 1
                progress.notify_all()

    def wait_ops(count: int) -> None:
        with progress:
            assert progress.wait_for(lambda: ops[0] >= count or errors, timeout=15), ops

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(4)]
    try:
        for table in TABLES:
            fetch(table)
        for thread in threads:
            thread.start()
        wait_ops(200)
        dead = topology.kill_primary()
        killed_at = ops[0]
        promoted = topology.wait_for_failover(timeout=FAILOVER_BOUND)
        during = ops[0] - killed_at
        wait_ops(ops[0] + 400)
        stop.set()
        for thread in threads:
            thread.join(15)
        assert not errors, errors[:3]
        assert during > 50  # the calls kept flowing through the switch
        assert fetch.cache_info().errors > 0  # and the switch was felt
        assert promoted != dead

        # an invalidation made after the failover is honoured
        version = update("users")
        assert fetch("users") == ("users", version)
        # caching resumes on the promoted replica (the circuit may be open for a moment)
        key = fetch.cache_key("users")
        deadline = time.monotonic() + RESUME_BOUND
        resumed = False
        while not resumed and time.monotonic() < deadline:
            hits = fetch.cache_info().hits
            assert fetch("users") == ("users", version)
            assert fetch("users") == ("users", version)
            resumed = fetch.cache_info().hits > hits and _has_key(promoted, key)
            if not resumed:
                time.sleep(0.05)  # the breaker's reset timeout publishes no event
        assert resumed
        assert cache.check_cache_health() is True
        runs = source.runs["users"]
        assert fetch("users") == ("users", version)
        assert source.runs["users"] == runs
    finally:
        stop.set()
        for thread in threads:
            thread.join(15)
        cache.close()
