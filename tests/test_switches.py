"""The process-wide off switch: ``set_caching_enabled()`` and ``MEMO_REDIS_DISABLED``."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
import redis

import memo_redis
from memo_redis import ConfigError, RedisCaching, cached
from memo_redis.config import disabled_by_environment
from memo_redis.embedded import EmbeddedServer


@pytest.fixture
def switched_off() -> Iterator[None]:
    """Caching off for the process during the test, back on afterwards."""
    memo_redis.set_caching_enabled(False)
    try:
        yield
    finally:
        memo_redis.set_caching_enabled(True)


def test_off_switch_reaches_other_threads(cache: RedisCaching, raw: redis.Redis,
                                          switched_off: None) -> None:
    """With caching off process-wide, a call on another thread runs the body and stores nothing."""
    calls: list[int] = []

    @cached(cache=cache)
    def double(x: int) -> int:
        calls.append(x)
        return 2 * x

    results: list[int] = []
    worker = threading.Thread(target=lambda: results.extend([double(2), double(2)]))
    worker.start()
    worker.join(timeout=30)
    assert results == [4, 4]
    assert calls == [2, 2]
    assert raw.exists(double.cache_key(2)) == 0
    assert not memo_redis.caching_enabled()


def test_switching_back_on_caches_again(cache: RedisCaching, raw: redis.Redis) -> None:
    """After set_caching_enabled(True) the next call stores and the one after is a hit."""
    calls: list[int] = []

    @cached(cache=cache)
    def square(x: int) -> int:
        calls.append(x)
        return x * x

    memo_redis.set_caching_enabled(False)
    try:
        square(3)
    finally:
        memo_redis.set_caching_enabled(True)
    assert memo_redis.caching_enabled()
    square(3)
    square(3)
    assert calls == [3, 3]
    assert raw.exists(square.cache_key(3)) == 1


def test_set_caching_enabled_refuses_non_bool() -> None:
    """set_caching_enabled("no") is a TypeError naming the parameter."""
    with pytest.raises(TypeError, match="enabled must be a bool"):
        memo_redis.set_caching_enabled("no")  # type: ignore[arg-type]  # deliberately wrong


@pytest.mark.parametrize(
    ("raw_value", "expected"),
    [("1", True), ("true", True), ("On", True), ("0", False), ("no", False), ("", False)],
)
def test_environment_variable_parsing(raw_value: str, expected: bool) -> None:
    """MEMO_REDIS_DISABLED accepts the usual boolean spellings; empty or unset means on."""
    assert disabled_by_environment({"MEMO_REDIS_DISABLED": raw_value}) is expected
    assert disabled_by_environment({}) is False


def test_bad_environment_value_names_the_variable() -> None:
    """MEMO_REDIS_DISABLED=maybe is a ConfigError naming the variable and the value."""
    with pytest.raises(ConfigError, match="MEMO_REDIS_DISABLED") as info:
        disabled_by_environment({"MEMO_REDIS_DISABLED": "maybe"})
    assert "'maybe'" in str(info.value)


def test_environment_turns_caching_off_in_a_new_process(server: EmbeddedServer) -> None:
    """A process started with MEMO_REDIS_DISABLED=1 runs bodies every time and stores nothing."""
    code = (
        "import sys, memo_redis\n"
        "from memo_redis import RedisCaching, cached\n"
        "cache = RedisCaching(sys.argv[1])\n"
        "calls = []\n"
        "@cached(cache=cache)\n"
        "def f(x):\n"
        "    calls.append(x)\n"
        "    return x\n"
        "f(1); f(1)\n"
        "print(len(calls), memo_redis.caching_enabled(), cache.client.exists(f.cache_key(1)))\n"
    )
    env = {**os.environ, "MEMO_REDIS_DISABLED": "1"}
    done = subprocess.run([sys.executable, "-c", code, server.url], capture_output=True,
                          text=True, timeout=60, check=False, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["2", "False", "0"]
