"""RedisCaching against real private servers: the seed's snippets, keys, values, TTLs,
invalidation, batching, health, errors and the race-free store."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import re
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from datetime import time as dtime
from decimal import Decimal
from typing import Any

import pytest
import redis
import redis.asyncio.connection
import redis.connection
from support import Driver, command_calls, protocol, reset_stats, run, wait_until

import memo_redis
from memo_redis import (
    DEFAULT_TTLS,
    CacheUnavailable,
    ConfigError,
    MemoRedisError,
    RedisArgs,
    RedisCaching,
    SerializationError,
    Serializer,
    build_cache_key,
    cached,
    envelope,
    layout,
)
from memo_redis.embedded import EmbeddedServer
from memo_redis.protocol.entries import MISS
from memo_redis.testing import ServerFactory

PASSWORD = "s3cret-pw"
WRONG_PASSWORD = "wr0ng-pw"

REDIS_ENV = (
    "REDIS_URL", "REDIS_SOCKET_PATH", "REDIS_HOST", "REDIS_PORT", "REDIS_USERNAME",
    "REDIS_PASSWORD", "REDIS_DB", "REDIS_DECODE_RESPONSES", "REDIS_MAX_CONNECTIONS",
    "REDIS_SOCKET_TIMEOUT", "REDIS_SOCKET_CONNECT_TIMEOUT", "REDIS_CLUSTER",
    "REDIS_CLUSTER_NODES", "REDIS_SENTINELS", "REDIS_SENTINEL_SERVICE",
)  # fmt: skip


# --- helpers -----------------------------------------------------------------------------------


@pytest.fixture
def env_socket(monkeypatch: pytest.MonkeyPatch, server: EmbeddedServer, raw: redis.Redis) -> str:
    """Only REDIS_SOCKET_PATH set, pointing at the session server (keyspace flushed by ``raw``)."""
    for name in REDIS_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REDIS_SOCKET_PATH", server.socket_path)
    return server.socket_path


@pytest.fixture
def make_cache(server: EmbeddedServer, raw: redis.Redis) -> Iterator[Callable[..., RedisCaching]]:
    """Build extra RedisCaching objects on the session server; all closed at the end."""
    made: list[RedisCaching] = []

    def make(**options: Any) -> RedisCaching:
        args = options.pop("args", None) or server.args()
        cache = RedisCaching(args, **options)
        made.append(cache)
        return cache

    yield make
    for cache in made:
        cache.close()


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts client->server writes (one per command or per pipeline) of every redis-py
    connection, sync or asyncio: ``len(round_trips)`` after the code under test."""
    sent: list[int] = []
    original = redis.connection.AbstractConnection.send_packed_command
    original_async = redis.asyncio.connection.AbstractConnection.send_packed_command

    def counting(self: Any, command: Any, check_health: bool = True) -> None:
        sent.append(1)
        original(self, command, check_health)

    async def counting_async(self: Any, command: Any, check_health: bool = True) -> None:
        sent.append(1)
        await original_async(self, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)
    monkeypatch.setattr(redis.asyncio.connection.AbstractConnection, "send_packed_command",
                        counting_async)
    return sent


def seed_build_cache_key(table: str, columns: list[str], where: list[str]) -> str:
    """The seed document's algorithm, verbatim."""
    params = {"table": table, "columns": sorted(columns), "where": sorted(where)}
    params_json = json.dumps(params, sort_keys=True)
    param_hash = hashlib.sha256(params_json.encode()).hexdigest()[:8]
    return f"sql:{table}:data:{param_hash}"


@dataclass(frozen=True)
class Point:
    """A user type only pickle can store."""

    x: int
    y: int


# --- the seed's snippets -----------------------------------------------------------------------


def test_seed_default_initialization_reads_socket_from_env(env_socket: str) -> None:
    """RedisCaching() connects to REDIS_SOCKET_PATH and cache.client.ping() answers True."""
    cache = RedisCaching()
    try:
        assert cache.args.socket_path == env_socket
        assert cache.client.ping() is True
    finally:
        cache.close()


def test_seed_redis_args_snippet(monkeypatch: pytest.MonkeyPatch) -> None:
    """The seed's RedisArgs example: attributes and the exact redis-py kwargs."""
    for name in REDIS_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REDIS_SOCKET_PATH", "/var/run/redis/redis.sock")
    monkeypatch.setenv("REDIS_PASSWORD", "your_redis_password")
    monkeypatch.setenv("REDIS_DECODE_RESPONSES", "true")
    args = RedisArgs.from_env()
    assert args.socket_path == "/var/run/redis/redis.sock"
    assert args.password == "your_redis_password"
    assert args.to_redis_kwargs() == {
        "unix_socket_path": "/var/run/redis/redis.sock",
        "password": "your_redis_password",
        "decode_responses": True,
    }


def test_seed_manual_key_operations(env_socket: str, driver: Driver) -> None:
    """set/get/delete and client.exists behave as the seed's manual key operations show."""
    cache = RedisCaching()
    try:
        assert driver.call(cache, "set", "my_key", {"data": "value"}, ttl=600) is True
        assert driver.call(cache, "get", "my_key") == {"data": "value"}
        assert cache.client.exists("my_key") == 1
        assert driver.call(cache, "delete", "my_key") == 1
        assert cache.client.exists("my_key") == 0
        assert driver.call(cache, "get", "my_key") is None
        assert driver.call(cache, "delete", "my_key") == 0
    finally:
        cache.close()


def test_seed_pattern_invalidation_returns_count(cache: RedisCaching, driver: Driver) -> None:
    """invalidate("sql:users:*") returns how many keys it deleted, as the seed prints."""
    for i in range(3):
        driver.call(cache, "set", f"sql:users:data:{i:08x}", [i])
    driver.call(cache, "set", "sql:users:count:", 3)
    driver.call(cache, "set", "sql:orders:data:0000000a", ["o"])
    deleted_count = driver.call(cache, "invalidate", "sql:users:*")
    assert f"Deleted {deleted_count} keys" == "Deleted 4 keys"
    assert driver.call(cache, "invalidate", "sql:users:data:*") == 0
    assert driver.call(cache, "invalidate", "sql:*") == 1
    assert driver.call(cache, "get", "sql:orders:data:0000000a") is None


def test_seed_ttl_inspection(cache: RedisCaching, driver: Driver) -> None:
    """client.ttl gives the remaining seconds, -1 for ttl=None and -2 for a missing key."""
    key = "sql:users:data:a3f7c21e"
    driver.call(cache, "set", key, [{"id": 1}], ttl=600)
    assert 599 <= cache.client.ttl(key) <= 600
    config = driver.call(cache, "set", "app_config", {"debug": False}, ttl=None)
    assert config is True
    assert cache.client.ttl("app_config") == -1
    assert driver.call(cache, "get", "app_config") == {"debug": False}
    assert cache.client.ttl("never_set") == -2


def test_seed_integration_test(env_socket: str, driver: Driver) -> None:
    """The seed's test_redis_integration, run as written against a private server."""
    cache = RedisCaching()
    try:
        driver.call(cache, "set", "test_key", {"test": "data"}, ttl=10)
        value = driver.call(cache, "get", "test_key")
        assert value == {"test": "data"}
        driver.call(cache, "delete", "test_key")
        value = driver.call(cache, "get", "test_key")
        assert value is None
    finally:
        cache.close()


def test_seed_ttl_expiration(env_socket: str, driver: Driver) -> None:
    """A value set with a short TTL is there at once and gone after it expires."""
    cache = RedisCaching()
    try:
        driver.call(cache, "set", "expiring_key", "value", ttl=0.2)
        assert driver.call(cache, "get", "expiring_key") == "value"
        assert 0 < cache.client.pttl("expiring_key") <= 200
        assert wait_until(lambda: cache.client.exists("expiring_key") == 0)
        assert driver.call(cache, "get", "expiring_key") is None
    finally:
        cache.close()


def test_seed_health_check_function(env_socket: str, driver: Driver) -> None:
    """The seed's check_redis_health() returns True against a live server."""

    def check_redis_health() -> bool:
        try:
            cache = RedisCaching()
            return bool(driver.call(cache, "check_cache_health"))
        except Exception:
            return False

    assert check_redis_health() is True


def test_seed_batch_pipeline_values_are_readable(cache: RedisCaching, driver: Driver) -> None:
    """Values written by the seed's pipeline snippet (json.dumps) are read back by get()."""
    data_dict = {"key1": {"a": 1}, "key2": [1, 2], "key3": "x"}
    pipe = cache.client.pipeline()
    for key, value in data_dict.items():
        pipe.set(key, json.dumps(value), ex=300)
    pipe.execute()
    assert driver.call(cache, "get_many", list(data_dict)) == data_dict
    assert driver.call(cache, "get", "key1") == {"a": 1}


def test_seed_hit_rate_formula(cache: RedisCaching, raw: redis.Redis, driver: Driver) -> None:
    """hit_rate() is the seed's keyspace_hits / (hits + misses) * 100, and 0.0 with no lookups."""
    reset_stats(raw)
    assert driver.call(cache, "hit_rate") == 0.0
    raw.set("k", b"v")
    raw.get("k")
    raw.get("k")
    raw.get("k")
    raw.get("missing")
    assert driver.call(cache, "hit_rate") == 75.0


def test_seed_scan_iter_and_info(cache: RedisCaching, driver: Driver) -> None:
    """The seed's monitoring snippets work on cache.client (str keys with decode_responses)."""
    driver.call(cache, "set", "sql:users:data:00000001", [1])
    keys = list(cache.client.scan_iter(match="sql:*", count=100))
    assert keys == ["sql:users:data:00000001"]
    assert cache.client.type("sql:users:data:00000001") == "string"
    info = cache.client.info()
    assert info["db0"]["keys"] >= 1
    assert "total_commands_processed" in cache.client.info("stats")


# --- construction and the client ------------------------------------------------------------


def test_url_target(server: EmbeddedServer, raw: redis.Redis, driver: Driver) -> None:
    """RedisCaching("redis://...") and RedisCaching("unix://...") connect where the URL says."""
    assert server.tcp_url is not None
    for url in (server.tcp_url, server.url):
        with RedisCaching(url) as cache:
            assert driver.call(cache, "set", "k", url) is True
            assert driver.call(cache, "get", "k") == url
        raw.delete("k")


def test_redis_args_target(server: EmbeddedServer, raw: redis.Redis) -> None:
    """RedisCaching(args) uses the RedisArgs as given, including decode_responses."""
    with RedisCaching(server.args(decode_responses=False)) as cache:
        cache.client.set("plain", "text")
        assert cache.client.get("plain") == b"text"


def test_client_honours_decode_responses(server: EmbeddedServer, raw: redis.Redis) -> None:
    """.client returns str with decode_responses=True (the default) and bytes without."""
    raw.set("k", "välue".encode())
    with RedisCaching(server.args()) as text, RedisCaching(
        server.args(decode_responses=False)
    ) as binary:
        assert text.client.get("k") == "välue"
        assert text.client.keys("k") == ["k"]
        assert binary.client.get("k") == "välue".encode()


def test_client_is_created_once_and_shares_its_pool(cache: RedisCaching) -> None:
    """.client is one client object whose pool every call reuses."""
    first = cache.client
    cache.set("k", 1)
    cache.get("k")
    assert cache.client is first
    pool = first.connection_pool
    assert pool.connection_kwargs["decode_responses"] is True
    # Every command above went through the same pool: one connection is enough.
    assert len(pool._available_connections) + len(pool._in_use_connections) == 1


@pytest.mark.parametrize("decode", [True, False], ids=["decode", "bytes"])
def test_client_target(server: EmbeddedServer, raw: redis.Redis, decode: bool,
                       driver: Driver) -> None:
    """RedisCaching(client=r) uses r itself (same pool; the async API a twin of it) and stores
    binary-safe values."""
    r = redis.Redis(unix_socket_path=server.socket_path, decode_responses=decode)
    try:
        cache = RedisCaching(client=r)
        assert cache.client is r
        assert driver.call(cache, "set", "k", b"\x00\xff") is True
        assert driver.call(cache, "get", "k") == b"\x00\xff"
        assert r.exists("k") == 1
        cache.close()
        assert r.ping() is True  # a client passed in is left open
    finally:
        r.close()


def test_target_and_client_are_exclusive(server: EmbeddedServer) -> None:
    """Passing a target and client= at once is a ConfigError."""
    r = server.client()
    try:
        with pytest.raises(ConfigError, match="not both"):
            RedisCaching(server.url, client=r)
    finally:
        r.close()


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"target": 42}, "target"),
        ({"target": "http://cache:6390/0"}, "url"),
        ({"target": "redis://cache:6390/x"}, "url"),
        ({"target": None, "digest_length": 0}, "digest_length"),
        ({"target": None, "digest_length": 65}, "digest_length"),
        ({"target": None, "namespace": ""}, "namespace"),
        ({"target": None, "namespace": "a*"}, "namespace"),
        ({"target": None, "lock_timeout": 0}, "lock_timeout"),
        ({"target": None, "fence_ttl": -1}, "fence_ttl"),
        ({"target": None, "max_value_size": 0}, "max_value_size"),
        ({"target": None, "serializer": "yaml"}, "codec"),
        ({"target": None, "failure_threshold": 0}, "failure_threshold"),
        ({"target": None, "default_ttls": {"data": 0}}, "default_ttls"),
    ],
    ids=[
        "target-type", "url-scheme", "url-db", "digest-0", "digest-65", "namespace-empty",
        "namespace-glob", "lock-timeout", "fence-ttl", "max-value-size", "serializer",
        "failure-threshold", "default-ttls",
    ],
)
def test_bad_options_raise_before_connecting(
    monkeypatch: pytest.MonkeyPatch, kwargs: dict[str, Any], needle: str
) -> None:
    """Bad constructor input raises a ValueError naming the parameter, without connecting."""
    for name in REDIS_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REDIS_SOCKET_PATH", "/nonexistent/redis.sock")
    target = kwargs.pop("target")
    with pytest.raises(ValueError, match=needle):
        RedisCaching(target, **kwargs)


def test_bad_environment_raises_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """RedisCaching() with REDIS_PORT=abc raises ConfigError naming the variable and value."""
    for name in REDIS_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REDIS_PORT", "abc")
    with pytest.raises(ConfigError, match=r"REDIS_PORT.*'abc'"):
        RedisCaching()


def test_construction_is_lazy(driver: Driver) -> None:
    """Nothing connects until the first command: a cache on a missing socket builds fine."""
    cache = RedisCaching("unix:///nonexistent/dir/redis.sock")
    assert driver.call(cache, "get", "k", "fallback") == "fallback"
    assert driver.call(cache, "check_cache_health") is False


# --- values are binary-safe -------------------------------------------------------------------


@pytest.mark.parametrize("decode", [True, False], ids=["decode", "bytes"])
@pytest.mark.parametrize(
    "value",
    [b"", b"\x00\x01\x02", b"\xff\xfe\xfd\x80", bytes(range(256)), "ünïcødé ✓", "\x00nul"],
    ids=["empty", "low", "non-utf8", "all-bytes", "unicode", "nul-str"],
)
def test_values_are_binary_safe(
    server: EmbeddedServer, raw: redis.Redis, decode: bool, value: bytes | str, driver: Driver
) -> None:
    """bytes (non-UTF-8 too) and str round trip whatever decode_responses says."""
    with RedisCaching(server.args(decode_responses=decode)) as cache:
        assert driver.call(cache, "set", "bin", value) is True
        got = driver.call(cache, "get", "bin")
        assert type(got) is type(value)
        assert got == value
        assert driver.call(cache, "get_many", ["bin"]) == {"bin": value}


# --- TTLs --------------------------------------------------------------------------------------


def test_ttl_none_means_no_expiry(cache: RedisCaching, driver: Driver) -> None:
    """ttl=None stores without expiry (TTL -1), also through set_many."""
    driver.call(cache, "set", "forever", 1, ttl=None)
    driver.call(cache, "set_many", {"a": 1, "b": 2}, ttl=None)
    assert [cache.client.ttl(k) for k in ("forever", "a", "b")] == [-1, -1, -1]


@pytest.mark.parametrize("ttl", [0, -1, -0.5, 0.0, timedelta(0), timedelta(seconds=-3),
                                 float("nan"), float("inf")],
                         ids=["0", "-1", "-0.5", "0.0", "td0", "td-3", "nan", "inf"])
def test_non_positive_ttl_is_value_error(cache: RedisCaching, raw: redis.Redis, ttl: Any,
                                         driver: Driver) -> None:
    """A zero, negative (or NaN/inf) ttl raises ValueError naming ttl; nothing is written."""
    with pytest.raises(ValueError, match=r"\bttl\b"):
        driver.call(cache, "set", "k", 1, ttl=ttl)
    with pytest.raises(ValueError, match=r"\bttl\b"):
        driver.call(cache, "set_many", {"k": 1}, ttl=ttl)
    assert raw.exists("k") == 0


@pytest.mark.parametrize("ttl", ["60", True, [1]], ids=["str", "bool", "list"])
def test_ttl_of_wrong_type_is_type_error(cache: RedisCaching, ttl: Any, driver: Driver) -> None:
    """A ttl that is not a number, timedelta or None raises TypeError naming ttl."""
    with pytest.raises(TypeError, match=r"\bttl\b"):
        driver.call(cache, "set", "k", 1, ttl=ttl)


def test_ttl_accepts_seconds_floats_and_timedelta(cache: RedisCaching, driver: Driver) -> None:
    """ttl takes int or float seconds and timedelta; the key's PTTL follows it."""
    driver.call(cache, "set", "int", 1, ttl=30)
    driver.call(cache, "set", "float", 1, ttl=1.5)
    driver.call(cache, "set", "td", 1, ttl=timedelta(minutes=2))
    assert 29_000 < cache.client.pttl("int") <= 30_000
    assert 1_000 < cache.client.pttl("float") <= 1_500
    assert 119_000 < cache.client.pttl("td") <= 120_000


def test_default_ttls_per_category(cache: RedisCaching) -> None:
    """The seed's default TTLs: data 300, schema 3600, metadata 7200, count 60."""
    expected = {"data": 300, "schema": 3600, "metadata": 7200, "count": 60}
    assert dict(DEFAULT_TTLS) == expected
    assert {c: cache.ttl_for(c) for c in expected} == expected
    assert cache.ttl_for("anything-else") == 300


def test_set_without_ttl_uses_data_default(cache: RedisCaching, driver: Driver) -> None:
    """set() without ttl expires after the data category's TTL (300 s)."""
    driver.call(cache, "set", "k", 1)
    driver.call(cache, "set_many", {"m": 1})
    assert 299 <= cache.client.ttl("k") <= 300
    assert 299 <= cache.client.ttl("m") <= 300


def test_default_ttls_can_be_overridden(make_cache: Callable[..., RedisCaching],
                                        driver: Driver) -> None:
    """default_ttls= overrides categories for this cache only."""
    cache = make_cache(default_ttls={"data": 30, "reports": 900})
    assert cache.ttl_for("data") == 30
    assert cache.ttl_for("reports") == 900
    assert cache.ttl_for("schema") == 3600
    driver.call(cache, "set", "k", 1)
    assert 29 <= cache.client.ttl("k") <= 30
    assert DEFAULT_TTLS["data"] == 300


# --- invalidation ------------------------------------------------------------------------------


def test_invalidate_uses_scan_and_unlink_never_keys(cache: RedisCaching, raw: redis.Redis,
                                                    driver: Driver) -> None:
    """invalidate() runs SCAN and UNLINK; KEYS is never called."""
    for i in range(20):
        driver.call(cache, "set", f"sql:users:data:{i}", i)
    reset_stats(raw)
    assert driver.call(cache, "invalidate", "sql:users:*") == 20
    assert driver.call(cache, "invalidate", "sql:us*") == 0
    calls = command_calls(raw)
    assert "keys" not in calls
    assert calls["scan"] >= 2
    assert calls["unlink"] >= 1


def test_invalidate_unlinks_in_batches(make_cache: Callable[..., RedisCaching],
                                       raw: redis.Redis, driver: Driver) -> None:
    """Matches are unlinked in batches of scan_count keys (35 keys, batches of 10 -> 4)."""
    cache = make_cache(scan_count=10)
    driver.call(cache, "set_many", {f"t:{i}": i for i in range(35)})
    reset_stats(raw)
    assert driver.call(cache, "invalidate", "t:*") == 35
    assert command_calls(raw)["unlink"] == 4
    assert raw.dbsize() == len(raw.keys("__memo__:*"))


@pytest.mark.parametrize(
    ("pattern", "gone"),
    [
        ("user:*", {"user:1", "user:2", "user:1:profile"}),
        ("user*", {"user:1", "user:2", "user:1:profile", "users:1", "user"}),
        ("*:profile", {"user:1:profile", "team:9:profile"}),
        ("user:?", {"user:1", "user:2"}),
        ("user:[1]*", {"user:1", "user:1:profile"}),
        ("*", {"user:1", "user:2", "user:1:profile", "users:1", "user", "team:9:profile",
               "team:9", "other"}),
    ],
    ids=["prefix", "glob-segment", "leading-star", "question", "class", "all"],
)
def test_invalidate_deletes_exactly_the_matches(
    cache: RedisCaching, raw: redis.Redis, pattern: str, gone: set[str], driver: Driver
) -> None:
    """invalidate(pattern) deletes the matching keys, returns their number, and leaves every
    other key readable."""
    keys = ["user:1", "user:2", "user:1:profile", "users:1", "user", "team:9:profile", "team:9",
            "other"]
    for key in keys:
        driver.call(cache, "set", key, f"v-{key}")
    assert driver.call(cache, "invalidate", pattern) == len(gone)
    for key in keys:
        if key in gone:
            assert raw.exists(key) == 0, key
            assert driver.call(cache, "get", key) is None, key
        else:
            assert driver.call(cache, "get", key) == f"v-{key}", key


def test_invalidate_removes_foreign_keys_too(cache: RedisCaching, raw: redis.Redis,
                                             driver: Driver) -> None:
    """Keys written by other clients (the seed's plain JSON) are deleted by the scan too."""
    raw.set("sql:users:data:0badf00d", json.dumps([{"id": 1}]))
    raw.set("sql:users:raw", b"\xff")
    driver.call(cache, "set", "sql:users:data:00000001", [1])
    assert driver.call(cache, "invalidate", "sql:users:*") == 3
    assert raw.keys("sql:*") == []


def test_invalidate_handles_keys_that_are_not_utf8(cache: RedisCaching, raw: redis.Redis,
                                                   driver: Driver) -> None:
    """A non-UTF-8 key under the pattern is deleted even though .client decodes responses."""
    raw.set(b"sql:users:\xff\xfe", b"x")
    driver.call(cache, "set", "sql:users:data:1", 1)
    assert driver.call(cache, "invalidate", "sql:users:*") == 2
    assert driver.call(cache, "invalidate", "sql:us*") == 0
    assert raw.exists(b"sql:users:\xff\xfe") == 0


def test_invalidate_without_wildcard_is_one_key(cache: RedisCaching, raw: redis.Redis,
                                                driver: Driver) -> None:
    """A pattern without wildcards invalidates that one key; escaped wildcards are literal."""
    driver.call(cache, "set", "a*b", 1)
    driver.call(cache, "set", "axb", 2)
    assert driver.call(cache, "invalidate", "a\\*b") == 1
    assert driver.call(cache, "get", "axb") == 2
    assert driver.call(cache, "invalidate", "axb") == 1
    assert driver.call(cache, "invalidate", "axb") == 0
    assert raw.keys("a*") == []


def test_invalidate_keeps_bookkeeping_and_cache_keeps_working(
    cache: RedisCaching, raw: redis.Redis, driver: Driver
) -> None:
    """invalidate("*") counts only user keys and never deletes memo_redis's own keys."""
    driver.call(cache, "set_many", {"a:1": 1, "b:2": 2})
    internal_before = set(raw.keys("__memo__:*"))
    assert driver.call(cache, "invalidate", "*") == 2
    assert internal_before <= set(raw.keys("__memo__:*"))
    driver.call(cache, "set", "a:1", 3)
    assert driver.call(cache, "get", "a:1") == 3


@pytest.mark.parametrize("pattern", [123, None, b"a:*"], ids=["int", "none", "bytes"])
def test_invalidate_rejects_non_str_pattern(cache: RedisCaching, pattern: Any,
                                            driver: Driver) -> None:
    """A pattern that is not a str is a TypeError naming pattern."""
    with pytest.raises(TypeError, match="pattern"):
        driver.call(cache, "invalidate", pattern)


def test_invalidate_rejects_empty_pattern(cache: RedisCaching, driver: Driver) -> None:
    """An empty pattern is a ValueError naming pattern."""
    with pytest.raises(ValueError, match="pattern"):
        driver.call(cache, "invalidate", "")


INDEX_KEYS = [
    "sql:users:data:00000001",
    "sql:users:data:00000002",
    "sql:users:count:",
    "sql:users:count:0000000a",
    "sql:users:version",
    "sql:users:data:deep:00000003",
    "sql:users2:data:00000001",
    "sql:orders:data:00000001",
    "sql:x",
    "other",
]


@pytest.mark.parametrize(
    "pattern",
    ["sql:users:*", "sql:users:data:*", "sql:users:count:*", "sql:*", "*"],
    ids=["table", "category", "count", "one-segment", "all"],
)
def test_index_path_deletes_the_same_set(
    make_cache: Callable[..., RedisCaching], raw: redis.Redis, pattern: str, driver: Driver
) -> None:
    """The per-table index path (scan_threshold=0) deletes exactly what SCAN deletes; a prefix
    deeper than a table (sql:users:data:*) takes the index at any keyspace size."""
    deep = pattern.count(":") >= 3
    outcomes = []
    for threshold in (10**9, 0):
        raw.flushall()
        cache = make_cache(scan_threshold=threshold)
        for key in INDEX_KEYS:
            driver.call(cache, "set", key, key)
        reset_stats(raw)
        count = driver.call(cache, "invalidate", pattern)
        remaining = sorted(k for k in raw.keys("*") if not layout.is_internal(k))
        readable = sorted(k for k in INDEX_KEYS if driver.call(cache, "get", k) == k)
        outcomes.append((count, remaining, readable, command_calls(raw).get("scan", 0)))
    (scan_count, scan_left, scan_readable, scans), (idx_count, idx_left, idx_readable, _) = outcomes
    assert scans == 0 if deep else scans >= 1
    assert (idx_count, idx_left, idx_readable) == (scan_count, scan_left, scan_readable)
    assert scan_count == sum(1 for k in INDEX_KEYS if memo_redis.keys.matches(pattern, k))
    assert scan_left == sorted(k.encode() for k in INDEX_KEYS
                               if not memo_redis.keys.matches(pattern, k))


def test_index_path_avoids_scan(make_cache: Callable[..., RedisCaching], raw: redis.Redis,
                                driver: Driver) -> None:
    """With a keyspace above scan_threshold, a table is invalidated from its index, no SCAN."""
    cache = make_cache(scan_threshold=0)
    for key in INDEX_KEYS:
        driver.call(cache, "set", key, key)
    reset_stats(raw)
    assert driver.call(cache, "invalidate", "sql:users:*") == 6
    calls = command_calls(raw)
    assert "scan" not in calls
    assert calls.get("sscan", 0) + calls.get("spop", 0) >= 1  # drained from the index set
    assert driver.call(cache, "get", "sql:users2:data:00000001") == "sql:users2:data:00000001"


# --- batches: one round trip each ------------------------------------------------------------


def test_get_many_is_one_mget(cache: RedisCaching, raw: redis.Redis,
                              round_trips: list[int], driver: Driver) -> None:
    """get_many() reads every key (and its bookkeeping) with one MGET in one round trip."""
    driver.call(cache, "set_many", {"sql:users:data:1": 1, "b": (2,), "c": None})
    raw.set("seed", json.dumps({"s": 1}))
    driver.call(cache, "check_cache_health")  # connection established before counting
    reset_stats(raw)
    round_trips.clear()
    got = driver.call(cache, "get_many", ["sql:users:data:1", "b", "missing", "c", "seed", "b"])
    assert len(round_trips) == 1
    assert got == {"sql:users:data:1": 1, "b": (2,), "c": None, "seed": {"s": 1}}
    calls = command_calls(raw)
    assert calls["mget"] == 1
    assert set(calls) == {"mget", "config|resetstat"}


def test_set_many_is_one_pipeline(make_cache: Callable[..., RedisCaching], raw: redis.Redis,
                                  round_trips: list[int], driver: Driver) -> None:
    """set_many() stores n values with n EVALSHA in one pipeline, even on first use."""
    raw.script_flush()
    cache = make_cache()
    driver.call(cache, "check_cache_health")  # connection established before counting
    reset_stats(raw)
    round_trips.clear()
    mapping = {f"k:{i}": [i, str(i)] for i in range(25)}
    assert driver.call(cache, "set_many", mapping, ttl=60) is True
    assert len(round_trips) == 1
    assert command_calls(raw)["evalsha"] == 25
    assert driver.call(cache, "get_many", list(mapping)) == mapping
    assert all(55 <= raw.ttl(k) <= 60 for k in mapping)
    round_trips.clear()
    assert driver.call(cache, "set_many", {"x": 1, "y": 2}) is True
    assert len(round_trips) == 1


def test_set_many_after_script_flush_still_stores(make_cache: Callable[..., RedisCaching],
                                                  raw: redis.Redis, driver: Driver) -> None:
    """A server that lost its scripts (restart, SCRIPT FLUSH) gets them reloaded."""
    cache = make_cache()
    assert driver.call(cache, "set_many", {"a": 1}) is True
    raw.script_flush()
    assert driver.call(cache, "set_many", {"b": 2}) is True
    assert driver.call(cache, "set", "c", 3) is True
    assert driver.call(cache, "get_many", ["a", "b", "c"]) == {"a": 1, "b": 2, "c": 3}


def test_empty_batches_send_nothing(cache: RedisCaching, round_trips: list[int],
                                    driver: Driver) -> None:
    """get_many([]) and set_many({}) answer without a round trip."""
    assert driver.call(cache, "get_many", []) == {}
    assert driver.call(cache, "set_many", {}) is True
    assert driver.call(cache, "delete") == 0
    assert round_trips == []


def test_delete_many_keys_counts_existing(cache: RedisCaching, driver: Driver) -> None:
    """delete(*keys) returns how many of the keys existed."""
    driver.call(cache, "set_many", {"a": 1, "b": 2})
    assert driver.call(cache, "delete", "a", "b", "c") == 2


# --- health, stats, lifecycle -------------------------------------------------------------------


def test_check_cache_health_live_and_killed(server_factory: ServerFactory, driver: Driver) -> None:
    """check_cache_health() is True on a live server and False (no exception) once killed."""
    srv = server_factory()
    with RedisCaching(srv.args()) as cache:
        assert driver.call(cache, "check_cache_health") is True
        srv.kill()
        assert driver.call(cache, "check_cache_health") is False


def test_hit_rate_on_dead_server_fails_open(server_factory: ServerFactory, driver: Driver) -> None:
    """hit_rate() returns 0.0 on a dead server, or raises CacheUnavailable when strict."""
    srv = server_factory()
    srv.kill()
    with RedisCaching(srv.args()) as cache:
        assert driver.call(cache, "hit_rate") == 0.0
    with RedisCaching(srv.args(), strict=True) as cache, pytest.raises(CacheUnavailable):
        driver.call(cache, "hit_rate")


def _client_count(raw: redis.Redis) -> int:
    return len(raw.client_list())


def test_context_manager_closes_the_pool(server: EmbeddedServer, raw: redis.Redis) -> None:
    """Leaving `with RedisCaching(...)` disconnects the cache's connections."""
    baseline = _client_count(raw)
    with RedisCaching(server.args()) as cache:
        assert cache.set("k", 1) is True
        assert _client_count(raw) == baseline + 1
    assert wait_until(lambda: _client_count(raw) == baseline)


def test_close_is_idempotent(server: EmbeddedServer, raw: redis.Redis) -> None:
    """close() can be called twice; the cache reconnects if used again."""
    cache = RedisCaching(server.args())
    cache.set("k", 1)
    cache.close()
    cache.close()
    assert cache.get("k") == 1
    cache.close()


def test_async_client_is_created_once_per_loop_and_shares_its_pool(server: EmbeddedServer,
                                                                   raw: redis.Redis) -> None:
    """On one event loop the async API uses one asyncio client whose pool every call reuses."""

    async def scenario() -> tuple[bool, int]:
        async with RedisCaching(server.args()) as cache:
            first = cache.engine.async_client
            await cache.aset("k", 1)
            await cache.aget("k")
            pool = first.connection_pool
            connections = len(pool._available_connections) + len(pool._in_use_connections)
            return cache.engine.async_client is first, connections

    same, connections = asyncio.run(scenario())
    assert same
    assert connections == 1


def test_async_context_manager_closes_the_pool(server: EmbeddedServer, raw: redis.Redis) -> None:
    """Leaving `async with RedisCaching(...)` disconnects the cache's connections."""
    baseline = _client_count(raw)

    async def scenario() -> int:
        async with RedisCaching(server.args()) as cache:
            assert await cache.aset("k", 1) is True
            return _client_count(raw)

    assert asyncio.run(scenario()) == baseline + 1
    assert wait_until(lambda: _client_count(raw) == baseline)


def test_aclose_is_idempotent(server: EmbeddedServer, raw: redis.Redis) -> None:
    """aclose() can be awaited twice; the cache reconnects if used again."""

    async def scenario() -> Any:
        cache = RedisCaching(server.args())
        await cache.aset("k", 1)
        await cache.aclose()
        await cache.aclose()
        try:
            return await cache.aget("k")
        finally:
            await cache.aclose()

    assert asyncio.run(scenario()) == 1


# --- keys ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "columns", "where"),
    [
        ("users", ["id", "username", "email"], []),
        ("users", ["email", "id", "username"], ["active=1"]),
        ("orders", ["*"], ["created_at > NOW() - INTERVAL 1 HOUR"]),
        ("countries", [], []),
        ("ünïcode", ["naïve", "x"], ["b=2", "a=1"]),
    ],
    ids=["users", "users-where", "orders", "empty", "unicode"],
)
def test_build_cache_key_is_the_seed_algorithm(
    table: str, columns: list[str], where: list[str]
) -> None:
    """build_cache_key() returns exactly the seed's key (sql:<table>:data:<8 hex>)."""
    key = build_cache_key(table, columns, where)
    assert key == seed_build_cache_key(table, columns, where)
    assert re.fullmatch(rf"sql:{re.escape(table)}:data:[0-9a-f]{{8}}", key)


def test_build_cache_key_pinned_values() -> None:
    """Pinned keys: a change would orphan every deployed entry."""
    assert build_cache_key("users", ["id", "name"], ["active=1"]) == "sql:users:data:cb668aec"
    assert build_cache_key("users", ["name", "id"], []) == "sql:users:data:2dd67780"
    assert build_cache_key("users", ["name", "id"], [], digest_length=12).startswith(
        "sql:users:data:2dd67780"
    )


def test_build_cache_key_is_order_insensitive_and_shared(cache: RedisCaching,
                                                         driver: Driver) -> None:
    """Column/condition order gives the same key; entries under it fall to sql:users:*."""
    key = build_cache_key("users", ["id", "username", "email"], ["b=1", "a=2"])
    assert key == build_cache_key("users", ["email", "username", "id"], ["a=2", "b=1"])
    assert re.fullmatch(r"sql:users:data:[0-9a-f]{8}", key)
    driver.call(cache, "set", key, [{"id": 1}])
    assert driver.call(cache, "get", key) == [{"id": 1}]
    assert driver.call(cache, "invalidate", "sql:users:*") == 1


def test_digest_collision_never_returns_another_calls_result(
    make_cache: Callable[..., RedisCaching], driver: Driver,
) -> None:
    """With 1-hex-character digests, 200 argument values collide, yet each call gets its own."""
    cache = make_cache(digest_length=1)
    calls: list[int] = []

    @cached(cache=cache, prefix="collide", ttl=60)
    @driver.define
    def square(x: int) -> tuple[str, int]:
        calls.append(x)
        return ("square", x * x)

    keys = {square.cache_key(i) for i in range(200)}
    assert len(keys) <= 16
    assert all(re.fullmatch(r"collide:data:[0-9a-f]", k) for k in keys)
    for _ in range(2):
        for i in range(200):
            assert driver.call_fn(square, i) == ("square", i * i)
    # A call right after the same call hits: the shared key holds the last call's entry.
    assert driver.call_fn(square, 7) == ("square", 49)
    before = len(calls)
    assert driver.call_fn(square, 7) == ("square", 49)
    assert len(calls) == before


def test_digest_collision_with_decorator_digest_length(cache: RedisCaching,
                                                       driver: Driver) -> None:
    """cached(digest_length=1) on a normal cache: colliding calls still get their own result."""

    @cached(cache=cache, digest_length=1, ttl=60)
    @driver.define
    def ident(x: str) -> str:
        return f"result-{x}"

    assert len({ident.cache_key(str(i)) for i in range(100)}) <= 16
    for _ in range(2):
        for i in range(100):
            assert driver.call_fn(ident, str(i)) == f"result-{i}"


def test_fingerprint_mismatch_is_a_miss(cache: RedisCaching) -> None:
    """A stored fingerprint that differs from the lookup's is a miss, the same one a hit."""
    fp_a, fp_b = b"A" * 16, b"B" * 16
    assert protocol(cache).store("sql:users:data:f", "for-A", 60_000, fingerprint=fp_a) is True
    assert protocol(cache).lookup("sql:users:data:f", fp_b).value is MISS
    assert protocol(cache).lookup("sql:users:data:f", fp_a).value == "for-A"


# --- values ----------------------------------------------------------------------------------


ROUND_TRIP_VALUES: list[tuple[str, Any]] = [
    ("none", None),
    ("true", True),
    ("false", False),
    ("zero", 0),
    ("int64-min", -(2**63)),
    ("uint64-max", 2**64 - 1),
    ("big-int", 2**200 + 17),
    ("big-negative", -(10**40)),
    ("float", 3.141592653589793),
    ("neg-zero", -0.0),
    ("inf", math.inf),
    ("neg-inf", -math.inf),
    ("str", "héllo wörld"),
    ("empty-str", ""),
    ("bytes", b"\x00\xff\x80"),
    ("list", [1, "a", None, [2.5]]),
    ("tuple", (1, (2, "x"), ())),
    ("dict", {"a": 1, "b": [1, 2]}),
    ("dict-non-str-keys", {1: "int", (1, 2): "tuple", None: "none", 2.5: "float"}),
    ("set", {1, 2, 3}),
    ("frozenset", frozenset({"a", "b"})),
    ("nested", {"s": {frozenset({1}), (1, 2)}, "t": ({"a": (1,)},)}),
    ("datetime-naive", datetime(2024, 2, 29, 23, 59, 59, 123456)),
    ("datetime-aware", datetime(2024, 1, 1, 12, tzinfo=timezone(timedelta(hours=5, minutes=30)))),
    ("datetime-utc", datetime(2024, 1, 1, tzinfo=timezone.utc)),
    ("date", date(1999, 12, 31)),
    ("time", dtime(8, 30, 15, 250)),
    ("time-aware", dtime(8, 30, tzinfo=timezone(timedelta(hours=-3)))),
    ("timedelta", timedelta(days=-2, seconds=5, microseconds=7)),
    ("decimal", Decimal("1234.5600")),
    ("decimal-neg-zero", Decimal("-0.00")),
    ("uuid", uuid.UUID("12345678-1234-5678-1234-567812345678")),
]


def _same(got: Any, want: Any) -> bool:
    """Exact equality: same type all the way down, same value (NaN equal to NaN)."""
    if type(got) is not type(want):
        return False
    if isinstance(want, float):
        return (math.isnan(got) and math.isnan(want)) or (
            got == want and math.copysign(1, got) == math.copysign(1, want)
        )
    if isinstance(want, (list, tuple)):
        return len(got) == len(want) and all(_same(g, w) for g, w in zip(got, want, strict=True))
    if isinstance(want, dict):
        return got.keys() == want.keys() and all(_same(got[k], want[k]) for k in want)
    if isinstance(want, (datetime, dtime)):
        return got == want and got.utcoffset() == want.utcoffset()
    if isinstance(want, Decimal):
        return str(got) == str(want)
    return bool(got == want)


@pytest.mark.parametrize(
    ("name", "value"), ROUND_TRIP_VALUES, ids=[n for n, _ in ROUND_TRIP_VALUES]
)
def test_msgpack_round_trip_through_redis(cache: RedisCaching, name: str, value: Any,
                                          driver: Driver) -> None:
    """Every type issue 2 lists comes back from Redis with the same type and value."""
    assert driver.call(cache, "set", f"v:{name}", value) is True
    assert _same(driver.call(cache, "get", f"v:{name}", default=MISS), value)
    assert _same(driver.call(cache, "get_many", [f"v:{name}"])[f"v:{name}"], value)


def test_nan_round_trips(cache: RedisCaching, driver: Driver) -> None:
    """float('nan') is stored and read back as a NaN float."""
    driver.call(cache, "set", "nan", float("nan"))
    got = driver.call(cache, "get", "nan")
    assert isinstance(got, float)
    assert math.isnan(got)


def test_cached_none_is_not_a_miss(cache: RedisCaching, driver: Driver) -> None:
    """A stored None is returned as None, not as the default."""
    driver.call(cache, "set", "none", None)
    assert driver.call(cache, "get", "none", "default") is None
    assert driver.call(cache, "get", "absent", "default") == "default"


def test_json_serializer_writes_the_seeds_plain_json(
    make_cache: Callable[..., RedisCaching], raw: redis.Redis, driver: Driver
) -> None:
    """serializer="json" stores json.dumps(value) text that any language can read."""
    cache = make_cache(serializer="json")
    value = {"users": [{"id": 1, "name": "Zoë"}], "total": 1.5, "ok": True, "none": None}
    assert driver.call(cache, "set", "j", value, ttl=60) is True
    assert raw.get("j") == json.dumps(value).encode()
    assert json.loads(raw.get("j")) == value
    assert driver.call(cache, "get", "j") == value
    assert 55 <= raw.ttl("j") <= 60
    big = {"rows": ["same text"] * 500}
    driver.call(cache, "set", "big", big)
    assert raw.get("big") == json.dumps(big).encode()  # never compressed
    assert driver.call(cache, "set_many", {"m": [1, 2]}) is True
    assert raw.get("m") == b"[1, 2]"
    driver.call(cache, "set", "t", (1, 2))
    assert driver.call(cache, "get", "t") == [1, 2]  # JSON has no tuples


def test_json_serializer_refuses_non_json_values(
    make_cache: Callable[..., RedisCaching], raw: redis.Redis, driver: Driver
) -> None:
    """The JSON codec refuses sets, bytes and non-str dict keys with SerializationError."""
    cache = make_cache(serializer="json")
    for value, type_name in (({1}, "set"), (b"x", "bytes"), ({1: "a"}, "int")):
        with pytest.raises(SerializationError, match=type_name):
            driver.call(cache, "set", "bad", value)
    assert raw.exists("bad") == 0


def test_json_values_are_readable_by_the_default_codec(
    make_cache: Callable[..., RedisCaching],
    driver: Driver,
) -> None:
    """A msgpack cache reads what a JSON cache wrote, and the other way round for JSON types."""
    json_cache = make_cache(serializer="json")
    msgpack_cache = make_cache()
    driver.call(json_cache, "set", "a", {"x": [1]})
    driver.call(msgpack_cache, "set", "b", {"y": [2]})
    assert driver.call(msgpack_cache, "get", "a") == {"x": [1]}
    assert driver.call(json_cache, "get", "b") == {"y": [2]}


def test_compression_above_threshold(make_cache: Callable[..., RedisCaching],
                                     raw: redis.Redis, driver: Driver) -> None:
    """Values above compress_threshold are stored zlib-compressed (smaller) and round trip."""
    value = {"rows": [{"name": "row", "n": i % 3} for i in range(2000)]}
    compressed = make_cache(compress_threshold=512)
    uncompressed = make_cache(compress_threshold=None)
    driver.call(compressed, "set", "c", value)
    driver.call(uncompressed, "set", "u", value)
    assert len(raw.get("c")) * 5 < len(raw.get("u"))
    assert driver.call(compressed, "get", "c") == value
    assert driver.call(uncompressed, "get", "c") == value
    small = make_cache(compress_threshold=100_000)  # above the 26 kB body
    driver.call(small, "set", "s", value)
    assert len(raw.get("s")) == len(raw.get("u"))


def test_pickle_only_when_chosen(make_cache: Callable[..., RedisCaching],
                                 raw: redis.Redis, driver: Driver) -> None:
    """Pickle stores user types only when chosen; other caches never unpickle its entries."""
    default = make_cache()
    with pytest.raises(SerializationError, match="Point"):
        driver.call(default, "set", "p", Point(1, 2))
    assert raw.exists("p") == 0
    pickling = make_cache(serializer="pickle", signing_key=b"a signing key of 32 bytes, test.")
    assert driver.call(pickling, "set", "p", Point(1, 2)) is True
    assert driver.call(pickling, "get", "p") == Point(1, 2)
    assert driver.call(default, "get", "p", "not unpickled") == "not unpickled"


def test_serializer_instance_is_used(make_cache: Callable[..., RedisCaching],
                                     raw: redis.Redis, driver: Driver) -> None:
    """A Serializer passed in is used as is (here JSON with compression)."""
    cache = make_cache(serializer=Serializer("json", compress_threshold=64))
    value = ["repeat"] * 200
    driver.call(cache, "set", "k", value)
    assert len(raw.get("k")) < len(json.dumps(value))
    assert driver.call(cache, "get", "k") == value


@pytest.mark.parametrize(
    ("value", "type_name"),
    [(object(), "object"), (lambda: 1, "function"), ({"a": [1, {2: object()}]}, "object"),
     (Point(1, 2), "Point"), (open, "builtin_function_or_method")],
    ids=["object", "lambda", "nested", "dataclass", "builtin"],
)
def test_unserializable_value_raises_and_writes_nothing(
    cache: RedisCaching, raw: redis.Redis, value: Any, type_name: str, driver: Driver
) -> None:
    """A value that cannot be serialized raises SerializationError naming its type; the key
    keeps its previous state."""
    with pytest.raises(SerializationError, match=type_name) as info:
        driver.call(cache, "set", "new", value)
    assert isinstance(info.value, ValueError)
    assert raw.exists("new") == 0
    driver.call(cache, "set", "old", "previous")
    with pytest.raises(SerializationError):
        driver.call(cache, "set", "old", value)
    assert driver.call(cache, "get", "old") == "previous"
    with pytest.raises(SerializationError):
        driver.call(cache, "set_many", {"fine": 1, "bad": value})
    assert raw.exists("fine", "bad") == 0


@pytest.mark.parametrize(
    "stored",
    [b"\xc1\x00garbage", b"\x80\x81 not json", b"{truncated json", b"\xc1"],
    ids=["fake-envelope", "binary", "bad-json", "lone-magic"],
)
def test_foreign_value_is_a_logged_miss(
    cache: RedisCaching, raw: redis.Redis, caplog: pytest.LogCaptureFixture, stored: bytes,
    driver: Driver
) -> None:
    """Undecodable bytes make get() return the default and log one warning, never raise."""
    raw.set("foreign", stored)
    with caplog.at_level(logging.WARNING, logger="memo_redis"):
        assert driver.call(cache, "get", "foreign", "default") == "default"
        assert driver.call(cache, "get", "foreign") is None
        assert driver.call(cache, "get_many", ["foreign"]) == {}
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "foreign" in warnings[0].getMessage()


def test_corrupt_body_is_a_logged_miss(
    cache: RedisCaching, raw: redis.Redis, caplog: pytest.LogCaptureFixture, driver: Driver
) -> None:
    """A valid envelope with a corrupt body is a miss with one warning, never an exception."""
    driver.call(cache, "set", "k", [1, 2, 3])
    good = raw.get("k")
    assert good is not None
    raw.set("k", good[: 2 + envelope.STAMP_SIZE] + b"\xc1\xc1\xc1")
    with caplog.at_level(logging.WARNING, logger="memo_redis"):
        assert driver.call(cache, "get", "k", "default") == "default"
        assert driver.call(cache, "get", "k", "default") == "default"
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


def test_plain_json_from_the_seed_is_readable(cache: RedisCaching, raw: redis.Redis,
                                              driver: Driver) -> None:
    """Values the seed wrote with json.dumps (no envelope) are read as hits."""
    raw.set("sql:users:data:a3f7c21e", json.dumps([{"id": 1, "username": "ann"}]))
    raw.set("n", json.dumps(None))
    assert driver.call(cache, "get", "sql:users:data:a3f7c21e") == [{"id": 1, "username": "ann"}]
    assert driver.call(cache, "get", "n", "default") is None


def test_value_above_max_value_size_is_not_stored(
    make_cache: Callable[..., RedisCaching], raw: redis.Redis, driver: Driver
) -> None:
    """set() of a value larger than max_value_size returns False and writes nothing."""
    cache = make_cache(max_value_size=1000, compress_threshold=None)
    assert driver.call(cache, "set", "big", "x" * 2000) is False
    assert raw.exists("big") == 0
    assert driver.call(cache, "set", "small", "x" * 10) is True


def test_stored_stamp_matches_python_computation(cache: RedisCaching, raw: redis.Redis,
                                                 driver: Driver) -> None:
    """The stamp the store script writes equals envelope.compute_stamp of the current gens."""
    driver.call(cache, "set", "sql:users:data:1", 1)
    stored = raw.get("sql:users:data:1")
    assert stored is not None
    gens = raw.mget(layout.generation_keys("sql:users:data"))
    assert all(g is not None for g in gens)
    assert stored[2 : 2 + envelope.STAMP_SIZE] == envelope.compute_stamp(gens)


# --- errors --------------------------------------------------------------------------------------


def test_error_hierarchy_and_exports() -> None:
    """One base; ConfigError and SerializationError are ValueErrors; all exported."""
    assert issubclass(ConfigError, MemoRedisError)
    assert issubclass(ConfigError, ValueError)
    assert issubclass(SerializationError, MemoRedisError)
    assert issubclass(SerializationError, ValueError)
    assert issubclass(CacheUnavailable, MemoRedisError)
    assert not issubclass(CacheUnavailable, ValueError)
    for name in ("MemoRedisError", "ConfigError", "SerializationError", "CacheUnavailable"):
        assert name in memo_redis.__all__


@pytest.fixture
def dead_server(server_factory: ServerFactory) -> EmbeddedServer:
    """A private server that was started and then killed."""
    srv = server_factory(tcp=True)
    srv.kill()
    return srv


# (id, method, arguments, fallback): the API's calls and what they fall back to.
OPERATIONS: list[tuple[str, str, tuple[Any, ...], Any]] = [
    ("get", "get", ("k", "default"), "default"),
    ("set", "set", ("k", 1), False),
    ("delete", "delete", ("k",), 0),
    ("invalidate", "invalidate", ("sql:users:*",), 0),
    ("invalidate-glob", "invalidate", ("sql:us*",), 0),
    ("invalidate-key", "invalidate", ("k",), 0),
    ("invalidate_key", "invalidate_key", ("k",), 0),
    ("get_many", "get_many", (["a", "b"],), {}),
    ("set_many", "set_many", ({"a": 1},), False),
    ("hit_rate", "hit_rate", (), 0.0),
]


@pytest.mark.parametrize(("name", "method", "args", "fallback"), OPERATIONS,
                         ids=[o[0] for o in OPERATIONS])
def test_fail_open_on_dead_server(
    dead_server: EmbeddedServer, name: str, method: str, args: tuple[Any, ...], fallback: Any,
    driver: Driver,
) -> None:
    """By default a dead server gives the fallback (default / False / 0 / {}), no exception."""
    with RedisCaching(dead_server.args()) as cache:
        assert driver.call(cache, method, *args) == fallback
        assert driver.call(cache, "check_cache_health") is False


@pytest.mark.parametrize(("name", "method", "args", "fallback"), OPERATIONS,
                         ids=[o[0] for o in OPERATIONS])
def test_strict_raises_cache_unavailable_from_redis_error(
    dead_server: EmbeddedServer, name: str, method: str, args: tuple[Any, ...], fallback: Any,
    driver: Driver,
) -> None:
    """strict=True raises CacheUnavailable whose __cause__ is redis-py's ConnectionError."""
    with RedisCaching(dead_server.args(), strict=True) as cache:
        for _ in range(5):  # also once the circuit breaker has opened
            with pytest.raises(CacheUnavailable) as info:
                driver.call(cache, method, *args)
            assert isinstance(info.value.__cause__, redis.ConnectionError)


def test_strict_per_call_overrides_cache(dead_server: EmbeddedServer, driver: Driver) -> None:
    """strict=True on one call raises even on a fail-open cache; strict=False the reverse."""
    assert dead_server.tcp_url is not None
    with RedisCaching(dead_server.tcp_url) as cache, pytest.raises(CacheUnavailable):
        driver.call(cache, "get", "k", strict=True)
    with RedisCaching(dead_server.args(), strict=True) as cache:
        assert driver.call(cache, "get", "k", "d", strict=False) == "d"


def test_outage_is_logged_once(dead_server: EmbeddedServer,
                               caplog: pytest.LogCaptureFixture, driver: Driver) -> None:
    """A dead server is reported by one warning, not one per call."""
    with caplog.at_level(logging.WARNING, logger="memo_redis"), RedisCaching(
        dead_server.args()
    ) as cache:
        for _ in range(10):
            driver.call(cache, "get", "k")
    unavailable = [r for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(unavailable) == 1


def test_recovers_when_server_returns(server_factory: ServerFactory, driver: Driver) -> None:
    """After a restart the same cache stores and reads again."""
    srv = server_factory()
    with RedisCaching(srv.args(), reset_timeout=0.05) as cache:
        assert driver.call(cache, "set", "k", 1) is True
        srv.kill()
        assert driver.call(cache, "get", "k", "down") == "down"
        srv.restart()
        assert wait_until(lambda: driver.call(cache, "set", "k", 2))
        assert driver.call(cache, "get", "k") == 2


@pytest.fixture
def password_server(server_factory: ServerFactory) -> EmbeddedServer:
    """A private server that requires PASSWORD."""
    return server_factory(tcp=True, config={"requirepass": PASSWORD})


def test_password_never_shown_in_repr(password_server: EmbeddedServer, driver: Driver) -> None:
    """repr/str of RedisArgs and RedisCaching never contain the password."""
    args = password_server.args(password=PASSWORD)
    url = f"redis://user:{PASSWORD}@127.0.0.1:{password_server.port}/0"
    client = redis.Redis(unix_socket_path=password_server.socket_path, password=PASSWORD)
    try:
        objects: list[object] = [
            args, RedisArgs.from_url(url), RedisCaching(args), RedisCaching(url),
            RedisCaching(client=client),
        ]
        for obj in objects:
            assert PASSWORD not in repr(obj)
            assert PASSWORD not in str(obj)
        assert driver.call(RedisCaching(args), "get", "k", "d") == "d"
        assert driver.call(RedisCaching(args), "set", "k", 1) is True
        assert driver.call(RedisCaching(client=client), "get", "k") == 1
    finally:
        client.close()


@pytest.mark.parametrize("how", ["args", "url", "client"])
def test_wrong_password_errors_hide_passwords(
    password_server: EmbeddedServer, caplog: pytest.LogCaptureFixture, how: str, driver: Driver
) -> None:
    """A wrong password gives CacheUnavailable (strict) and logs that show neither password."""
    client = None
    if how == "args":
        cache = RedisCaching(password_server.args(password=WRONG_PASSWORD), strict=True)
    elif how == "url":
        cache = RedisCaching(
            f"redis://:{WRONG_PASSWORD}@127.0.0.1:{password_server.port}/0", strict=True
        )
    else:
        client = redis.Redis(unix_socket_path=password_server.socket_path,
                             password=WRONG_PASSWORD)
        cache = RedisCaching(client=client, strict=True)
    try:
        with caplog.at_level(logging.DEBUG, logger="memo_redis"):
            with pytest.raises(CacheUnavailable) as info:
                driver.call(cache, "get", "k")
            assert driver.call(cache, "check_cache_health") is False
        assert isinstance(info.value.__cause__, redis.ConnectionError)
        for text in (str(info.value), repr(info.value), caplog.text, repr(cache)):
            assert WRONG_PASSWORD not in text
            assert PASSWORD not in text
    finally:
        cache.close()
        if client is not None:
            client.close()


def test_config_errors_hide_passwords() -> None:
    """ConfigError for a bad URL masks the password it contains."""
    for url in (f"http://:{PASSWORD}@cache:6390/0", f"redis://:{PASSWORD}@cache:6390/db"):
        with pytest.raises(ConfigError) as info:
            RedisCaching(url)
        assert PASSWORD not in str(info.value)
        assert PASSWORD not in repr(info.value)


# --- race-free store ------------------------------------------------------------------------------


KEY = "sql:users:data:0000beef"


def test_checked_store_succeeds_without_invalidation(cache: RedisCaching, raw: redis.Redis
                                                     ) -> None:
    """A store checked against its armed lookup succeeds when nothing changed in between, and
    deletes the fence it was admitted by."""
    look = protocol(cache).arm(KEY)
    assert look.value is MISS
    assert look.fence is not None and None not in look.generations
    assert raw.exists(cache.layout.fence_key(KEY)) == 1
    assert protocol(cache).store(KEY, "fresh", 60_000, seen=look) is True
    assert cache.get(KEY) == "fresh"
    assert raw.exists(cache.layout.fence_key(KEY)) == 0


def test_checked_store_without_an_armed_fence_is_refused(cache: RedisCaching) -> None:
    """A store checked against a plain lookup (no fence armed) is refused: an absent fence
    never admits a store."""
    look = protocol(cache).lookup(KEY)
    assert look.fence is None
    assert protocol(cache).store(KEY, "unproven", 60_000, seen=look) is False
    assert cache.get(KEY) is None


@pytest.mark.parametrize("which", ["fence", "generation"])
def test_store_is_refused_when_a_bookkeeping_key_vanished(
    cache: RedisCaching, raw: redis.Redis, which: str
) -> None:
    """A fence or generation that vanished (expired, evicted, flushed) refuses the store, and
    the token created in its place is a new one."""
    look = protocol(cache).arm(KEY)
    gone = (cache.layout.fence_key(KEY) if which == "fence"
            else cache.layout.generation_keys(KEY)[-1])
    old_token = raw.get(gone)
    raw.delete(gone)  # exactly what an eviction does
    assert protocol(cache).store(KEY, "stale", 60_000, seen=look) is False
    again = protocol(cache).arm(KEY)
    assert raw.get(gone) not in (None, old_token)
    assert protocol(cache).store(KEY, "stale", 60_000, seen=look) is False
    assert protocol(cache).store(KEY, "fresh", 60_000, seen=again) is True
    assert cache.get(KEY) == "fresh"


@pytest.mark.parametrize(
    ("method", "target"),
    [
        ("invalidate", "sql:users:*"),
        ("invalidate", "sql:*"),
        ("invalidate", "*"),
        ("invalidate", KEY),
        ("invalidate_key", KEY),
    ],
    ids=["table", "namespace", "all", "exact", "invalidate_key"],
)
def test_store_after_invalidation_is_refused(
    cache: RedisCaching, raw: redis.Redis, method: str, target: str, driver: Driver
) -> None:
    """invalidate() between a lookup and its store makes the checked store refuse."""
    look = protocol(cache).arm(KEY)
    driver.call(cache, method, target)
    assert protocol(cache).store(KEY, "stale", 60_000, seen=look) is False
    assert raw.exists(KEY) == 0
    assert driver.call(cache, "get", KEY) is None


def test_store_of_unrelated_scope_is_not_refused(cache: RedisCaching, driver: Driver) -> None:
    """Invalidating another table does not refuse this table's store."""
    look = protocol(cache).arm(KEY)
    driver.call(cache, "invalidate", "sql:orders:*")
    driver.call(cache, "invalidate", "sql:users2:*")
    assert protocol(cache).store(KEY, "fresh", 60_000, seen=look) is True


def test_glob_invalidation_fences_locked_computation(cache: RedisCaching, raw: redis.Redis,
                                                     driver: Driver) -> None:
    """A non-prefix glob fences a matching computation that holds the single-flight lock."""
    token = envelope.new_token()
    claim = protocol(cache).claim(KEY, protocol(cache).lookup(KEY), token)
    assert claim.taken
    look = claim.look
    assert protocol(cache).lock_held(KEY, look) is True
    driver.call(cache, "set", "sql:users2:data:1", "kept")
    assert driver.call(cache, "invalidate", "sql:users*") == 1
    assert protocol(cache).store(KEY, "stale", 60_000, seen=look, token=token) is False
    assert raw.exists(KEY) == 0
    assert protocol(cache).lock_held(KEY, look) is False  # the refused store released the lock


def test_glob_invalidation_fences_a_computation_without_lock(cache: RedisCaching,
                                                             raw: redis.Redis,
                                                             driver: Driver) -> None:
    """A non-prefix glob also fences a computation running without the lock (it armed a fence
    before running); a computation of a key the glob does not match keeps its fence."""
    look = protocol(cache).arm(KEY)
    other = protocol(cache).arm("sql:orders:data:1")
    assert driver.call(cache, "invalidate", "sql:us*") == 0
    assert protocol(cache).store(KEY, "stale", 60_000, seen=look) is False
    assert raw.exists(KEY) == 0
    assert protocol(cache).store("sql:orders:data:1", "kept", 60_000, seen=other) is True


def test_race_protection_switch(cache: RedisCaching, driver: Driver) -> None:
    """With race_protection=False the same store lands (the switch the race tests flip)."""
    cache.race_protection = False
    look = protocol(cache).arm(KEY)
    driver.call(cache, "invalidate", "sql:users:*")
    assert protocol(cache).store(KEY, "stale", 60_000, seen=look) is True
    assert driver.call(cache, "get", KEY) == "stale"


def test_invalidated_entries_are_misses_at_once(cache: RedisCaching, raw: redis.Redis,
                                                driver: Driver) -> None:
    """After the generation bump an entry still physically present is already a miss."""
    driver.call(cache, "set", KEY, "old")
    stored = raw.get(KEY)
    driver.call(cache, "invalidate", "sql:users:*")
    raw.set(KEY, stored)  # as if the unlink had not happened yet
    assert driver.call(cache, "get", KEY) is None


# --- key validation; the async API never builds the sync client ---------------------------------


# A call of the API with one key: (driver, cache, key) -> result.
KeyedCall = Callable[[Driver, RedisCaching, Any], Any]

KEYED_CALLS: dict[str, KeyedCall] = {
    "get": lambda d, c, k: d.call(c, "get", k),
    "set": lambda d, c, k: d.call(c, "set", k, 1),
    "delete": lambda d, c, k: d.call(c, "delete", k),
    "get_many": lambda d, c, k: d.call(c, "get_many", [k]),
    "set_many": lambda d, c, k: d.call(c, "set_many", {k: 1}),
    "invalidate_key": lambda d, c, k: d.call(c, "invalidate_key", k),
}


@pytest.mark.parametrize("call", list(KEYED_CALLS), ids=list(KEYED_CALLS))
def test_bad_keys_are_rejected(cache: RedisCaching, call: str, driver: Driver) -> None:
    """A key that is not a str is a TypeError, an empty key a ValueError; both name key."""
    with pytest.raises(TypeError, match="key must be a str"):
        KEYED_CALLS[call](driver, cache, b"bytes-key")
    with pytest.raises(TypeError, match="key must be a str"):
        KEYED_CALLS[call](driver, cache, 42)
    with pytest.raises(ValueError, match="key must be a non-empty str"):
        KEYED_CALLS[call](driver, cache, "")


def test_get_set_invalidate_and_invalidate_key(cache: RedisCaching, raw: redis.Redis,
                                               driver: Driver) -> None:
    """set/get/invalidate/invalidate_key in one sequence: a stored tuple holding bytes reads
    back, a table invalidation counts it and leaves a miss, invalidate_key deletes the key."""
    results: list[Any] = [driver.call(cache, "set", "sql:users:data:a", (1, b"\xff"), ttl=60)]
    results.append(driver.call(cache, "get", "sql:users:data:a"))
    results.append(driver.call(cache, "invalidate", "sql:users:*"))
    results.append(driver.call(cache, "get", "sql:users:data:a", "gone"))
    driver.call(cache, "set", "k", 1)
    results.append(driver.call(cache, "invalidate_key", "k"))
    assert results == [True, (1, b"\xff"), 1, "gone", 1]
    assert raw.exists("k") == 0


async def _create_report() -> dict[str, int]:
    return {"n": 1}


# (id, the async call on a fresh cache, what it returns with the entries the test planted)
ASYNC_CALLS: list[tuple[str, Callable[[RedisCaching], Awaitable[Any]], Any]] = [
    ("aset", lambda c: c.aset("sql:users:data:9", 9), True),
    ("aget", lambda c: c.aget("sql:users:data:1"), 1),
    ("aget_many", lambda c: c.aget_many(["a", "b", "missing"]), {"a": "A", "b": "B"}),
    ("aset_many", lambda c: c.aset_many({"x": 1, "y": 2}), True),
    ("adelete", lambda c: c.adelete("a", "b", "missing"), 2),
    ("ainvalidate-prefix", lambda c: c.ainvalidate("sql:users:*"), 2),
    ("ainvalidate-glob", lambda c: c.ainvalidate("sql:us*:1"), 1),
    ("ainvalidate_key", lambda c: c.ainvalidate_key("sql:users:data:1"), 1),
    ("ahit_rate", lambda c: c.ahit_rate(), 50.0),
    ("acheck_cache_health", lambda c: c.acheck_cache_health(), True),
    ("aget_or_create", lambda c: c.aget_or_create("report:1", _create_report, 60), {"n": 1}),
]


@pytest.mark.parametrize(("name", "call", "expected"), ASYNC_CALLS,
                         ids=[c[0] for c in ASYNC_CALLS])
def test_async_api_never_builds_the_sync_client(
    server: EmbeddedServer, cache: RedisCaching, raw: redis.Redis, name: str,
    call: Callable[[RedisCaching], Awaitable[Any]], expected: Any,
) -> None:
    """Each async method of a fresh RedisCaching(url) does its work on the loop's asyncio
    client: the lazily built sync client is never created (no sync client in a thread)."""
    cache.set_many({"sql:users:data:1": 1, "sql:users:data:2": 2, "a": "A", "b": "B"})
    reset_stats(raw)
    raw.get("sql:users:data:1")
    raw.get("missing")  # 1 hit, 1 miss: hit_rate 50.0
    fresh = RedisCaching(server.url)

    async def scenario() -> tuple[Any, bool]:
        result = await call(fresh)
        return result, fresh.engine._client is not None  # checked before aclose() runs

    result, built = run(fresh, scenario())
    assert result == expected
    assert not built, f"{name} built the sync client"


# --- plain values at decorated keys; the reserved namespace ------------------------------------


def test_plain_value_at_a_decorated_key_is_a_miss(cache: RedisCaching, raw: redis.Redis,
                                                  driver: Driver) -> None:
    """A plain (non-envelope) value planted at a decorated function's key is never served,
    by a call or .many(): it has no stamp or fingerprint to check."""
    runs: list[int] = []

    @cached(cache=cache, prefix="sql:users", ttl=60)
    @driver.define
    def row(i: int) -> dict[str, int]:
        runs.append(i)
        return {"id": i}

    planted = json.dumps({"id": 666}).encode()
    raw.set(row.cache_key(1), planted)
    raw.set(row.cache_key(2), planted)
    raw.set(row.cache_key(3), planted)
    assert driver.call_fn(row, 1) == {"id": 1}
    assert driver.call_fn(row, 2) == {"id": 2}
    assert driver.handle(row.many, [3]) == [{"id": 3}]
    assert runs == [1, 2, 3]
    # the computed values replaced them
    assert driver.call_fn(row, 1) == {"id": 1} and driver.call_fn(row, 3) == {"id": 3}
    assert runs == [1, 2, 3]


def test_seed_api_still_reads_plain_json(cache: RedisCaching, raw: redis.Redis,
                                         driver: Driver) -> None:
    """cache.get/get_many and get_data_from_table keep serving the seed's plain JSON values."""
    raw.set("app_config", json.dumps({"debug": False}))
    assert driver.call(cache, "get", "app_config") == {"debug": False}
    assert driver.call(cache, "get_many", ["app_config"]) == {"app_config": {"debug": False}}
    key = build_cache_key("users", ["id"], [])
    raw.set(key, json.dumps([[1]]))
    rows = cache.get_data_from_table("users", ["id"], fetcher=lambda: [[2]])
    assert rows == [[1]]


RESERVED_CALLS: dict[str, KeyedCall] = {
    **KEYED_CALLS,
    "invalidate": lambda d, c, k: d.call(c, "invalidate", k),
    "invalidate-glob": lambda d, c, k: d.call(c, "invalidate", k + "*"),
}


@pytest.mark.parametrize("call", list(RESERVED_CALLS), ids=list(RESERVED_CALLS))
def test_reserved_namespace_is_refused(cache: RedisCaching, raw: redis.Redis, call: str,
                                       driver: Driver) -> None:
    """Keys and patterns in the __memo__: namespace are a ValueError (ConfigError) naming the
    key, and nothing is written or deleted."""
    driver.call(cache, "set", "sql:users:data:1", "kept")
    before = {k: raw.dump(k) for k in raw.keys("*")}
    for key in ("__memo__:gen:", "__memo__:fence:sql:users:data:1"):
        with pytest.raises(ConfigError, match=re.escape(repr(key)[:-1])) as info:
            RESERVED_CALLS[call](driver, cache, key)
        assert isinstance(info.value, ValueError)
    assert {k: raw.dump(k) for k in raw.keys("*")} == before
    assert driver.call(cache, "get", "sql:users:data:1") == "kept"


def test_invalidate_everything_keeps_working_and_keeps_bookkeeping(cache: RedisCaching,
                                                                    raw: redis.Redis,
                                                                    driver: Driver) -> None:
    """invalidate("*") is not refused: it invalidates every entry and deletes no __memo__ key
    but the generation it replaces."""
    driver.call(cache, "set", "a:1", 1)
    protocol(cache).arm("b:2")
    internal = set(raw.keys("__memo__:*"))
    assert driver.call(cache, "invalidate", "*") == 1
    assert set(raw.keys("__memo__:*")) == internal
    assert driver.call(cache, "get", "a:1") is None


@pytest.mark.parametrize("options", [{"prefix": "__memo__:gen"}, {"prefix": "__memo__"},
                                     {"namespace": "__memo__"}], ids=["prefix", "bare", "ns"])
def test_decorated_keys_cannot_be_in_the_reserved_namespace(cache: RedisCaching,
                                                            options: dict[str, str],
                                                            driver: Driver) -> None:
    """@cached with a prefix or namespace in __memo__: is refused at decoration time."""
    with pytest.raises(ConfigError, match="reserved"):
        cached(cache=cache, **options)(driver.define(lambda x: x))
    with pytest.raises(ConfigError, match="reserved"):
        RedisCaching(cache.args, namespace="__memo__")
