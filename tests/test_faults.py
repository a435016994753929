"""Fail open, fast: decorated calls return the function's result whatever Redis does.

Each fault is injected on a private server the test starts: never started, SIGKILLed,
restarted, paused beyond the socket timeout, out of memory, a read-only replica. Only
``strict=True`` lets :class:`CacheUnavailable` reach the caller. The circuit breaker keeps the
cost of a call while Redis is down far below a socket timeout, and caching resumes within 2 s
of the server coming back.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from support import run

from memo_redis import CacheUnavailable, RedisArgs, RedisCaching, cached, invalidates
from memo_redis.breaker import CircuitBreaker
from memo_redis.testing import ServerFactory

# How long caching may take to resume after the server is back (the promise), plus
# scheduling slack for loaded CI machines.
RECOVERY_BOUND = 2.0
SLACK = 0.5


class Square:
    """A cached ``square(x)`` on ``cache`` that records each run of its body."""

    def __init__(self, cache: RedisCaching, *, strict: bool | None = None,
                 prefix: str = "faults:square") -> None:
        self.runs: list[int] = []

        @cached(cache=cache, prefix=prefix, ttl=60, strict=strict)
        def square(x: int) -> int:
            self.runs.append(x)
            return x * x

        self.fn = square

    def __call__(self, x: int) -> int:
        result: int = self.fn(x)
        return result

    def hits(self) -> int:
        return self.fn.cache_info().hits


def _wait_for_hit(square: Square, x: int, bound: float = 5.0) -> float:
    """Call ``square(x)`` until a call is a cache hit; seconds it took (fails after ``bound``)."""
    started = time.monotonic()
    while True:
        before = square.hits()
        assert square(x) == x * x
        if square.hits() > before:
            return time.monotonic() - started
        if time.monotonic() - started > bound:
            pytest.fail(f"caching did not resume within {bound} s")
        time.sleep(0.01)  # polling an external state: nothing to await


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def blackhole() -> Iterator[int]:
    """A TCP port that accepts connections (into the backlog) but never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield listener.getsockname()[1]


def _down_args(kind: str, tmp_path: Path) -> RedisArgs:
    if kind == "socket-missing":
        return RedisArgs(socket_path=str(tmp_path / "no-server.sock"))
    return RedisArgs(host="127.0.0.1", port=_free_port())


# -- server down at start ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["socket-missing", "port-closed"])
def test_server_down_at_start_runs_uncached(tmp_path: Path, kind: str) -> None:
    """With no server at all, calls return the function's result and count errors."""
    with RedisCaching(_down_args(kind, tmp_path)) as cache:
        square = Square(cache)
        assert [square(3) for _ in range(5)] == [9] * 5
        assert square.runs == [3] * 5
        info = square.fn.cache_info()
        assert info.errors >= 1
        assert info.hits == 0


def test_server_down_at_start_runs_async_functions_uncached(tmp_path: Path) -> None:
    """Async functions fail open too when no server runs."""
    runs: list[int] = []
    cache = RedisCaching(RedisArgs(socket_path=str(tmp_path / "no-server.sock")))

    @cached(cache=cache, prefix="faults:async", ttl=60)
    async def double(x: int) -> int:
        runs.append(x)
        return 2 * x

    async def main() -> list[int]:
        try:
            return [await double(4) for _ in range(3)]
        finally:
            await cache.aclose()

    assert asyncio.run(main()) == [8, 8, 8]
    assert runs == [4, 4, 4]


@pytest.mark.parametrize("where", ["decorator", "cache"])
def test_strict_raises_cache_unavailable_when_down(tmp_path: Path, where: str) -> None:
    """strict=True on the decorator or the cache raises CacheUnavailable chained to the cause."""
    args = RedisArgs(socket_path=str(tmp_path / "no-server.sock"))
    with RedisCaching(args, strict=where == "cache") as cache:
        square = Square(cache, strict=True if where == "decorator" else None)
        with pytest.raises(CacheUnavailable) as caught:
            square(3)
        assert isinstance(caught.value.__cause__, (redis.RedisError, OSError))
        assert square.runs == []


# -- server killed, restarted -----------------------------------------------------------------


def test_killed_server_fails_open_and_restart_resumes_caching(
    server_factory: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """After SIGKILL calls stay correct (one warning); caching resumes within 2 s of a restart,
    and the outage is logged as over once no call has failed for the quiet period."""
    server = server_factory()
    caplog.set_level(logging.WARNING, logger="memo_redis")
    with RedisCaching(server.args()) as cache:
        later = [0.0]
        cache.engine.gate.clock = lambda: time.monotonic() + later[0]
        square = Square(cache)
        assert square(2) == square(2) == 4
        assert square.runs == [2]

        server.kill()
        assert [square(x) for x in (2, 3, 2, 3) * 5] == [4, 9, 4, 9] * 5
        assert square.runs == [2] + [2, 3] * 10
        assert square.fn.cache_info().errors >= 1
        assert cache.breaker.is_open
        down = [r for r in caplog.records if "unavailable" in r.getMessage()]
        assert len(down) == 1

        server.restart()
        recovery = _wait_for_hit(square, 5)
        assert recovery <= RECOVERY_BOUND + SLACK
        assert not [r for r in caplog.records if "is back" in r.getMessage()]
        later[0] += cache.engine.gate.quiet_period
        assert square(2) == 4
        back = [r for r in caplog.records if "is back" in r.getMessage()]
        assert len(back) == 1


def test_killed_server_fails_open_for_async_functions(server_factory: ServerFactory) -> None:
    """Async functions stay correct after SIGKILL and cache again after a restart."""
    server = server_factory()
    cache = RedisCaching(server.args())
    runs: list[int] = []

    @cached(cache=cache, prefix="faults:async-kill", ttl=60)
    async def double(x: int) -> int:
        runs.append(x)
        return 2 * x

    async def main() -> float:
        try:
            assert await double(1) == await double(1) == 2
            server.kill()
            assert [await double(x) for x in (1, 2) * 5] == [2, 4] * 5
            server.restart()
            started = time.monotonic()
            while double.cache_info().hits < 2:
                assert await double(7) == 14
                assert time.monotonic() - started < 5.0
                await asyncio.sleep(0.01)
            return time.monotonic() - started
        finally:
            await cache.aclose()

    assert asyncio.run(main()) <= RECOVERY_BOUND + SLACK
    assert runs[:11] == [1] + [1, 2] * 5


def test_strict_raises_after_kill(server_factory: ServerFactory) -> None:
    """strict=True surfaces a killed server as CacheUnavailable, also with the breaker open."""
    server = server_factory()
    with RedisCaching(server.args(), strict=True) as cache:
        square = Square(cache)
        assert square(2) == 4
        server.kill()
        for _ in range(5):
            with pytest.raises(CacheUnavailable):
                square(2)
        assert cache.breaker.is_open


# -- slow server ------------------------------------------------------------------------------


def test_paused_server_beyond_socket_timeout_fails_open_fast(server_factory: ServerFactory
                                                            ) -> None:
    """A paused server costs at most failure_threshold socket timeouts, then calls skip Redis."""
    server = server_factory()
    admin = server.client()
    with RedisCaching(server.args(socket_timeout=0.2)) as cache:
        square = Square(cache)
        assert square(2) == square(2) == 4
        admin.execute_command("CLIENT", "PAUSE", 1000, "ALL")
        durations = []
        for x in range(20):
            started = time.monotonic()
            assert square(x) == x * x
            durations.append(time.monotonic() - started)
        assert max(durations) < 0.2 + SLACK
        assert sum(d >= 0.15 for d in durations) <= cache.breaker.failure_threshold
        assert sum(durations) < 3 * 0.2 + SLACK
        assert admin.ping()  # answered when the pause ends
        assert _wait_for_hit(square, 50) <= RECOVERY_BOUND + SLACK
    admin.close()


# -- refused commands: out of memory, read-only replica ---------------------------------------


def _fill_until_out_of_memory(admin: redis.Redis) -> None:
    """Write ballast until even small writes fail with OOM (big ones fail first: their query
    buffer counts against maxmemory while they are parsed)."""
    index = 0
    for size in (64 * 1024, 4096, 64):
        filler = random.Random(size).randbytes(size)
        for _ in range(2000):
            index += 1
            try:
                admin.set(f"ballast:{index}", filler)
            except redis.exceptions.OutOfMemoryError:
                break
        else:
            pytest.fail(f"the server never ran out of memory for {size}-byte values")


def test_out_of_memory_fails_open(server_factory: ServerFactory,
                                  caplog: pytest.LogCaptureFixture) -> None:
    """Under OOM stores fail open, cached entries are served and the breaker stays closed."""
    server = server_factory(config={"maxmemory": "2mb", "maxmemory-policy": "noeviction"})
    caplog.set_level(logging.WARNING, logger="memo_redis")
    admin = server.client()
    with RedisCaching(server.args()) as cache:
        square = Square(cache)
        assert square(1) == 1
        _fill_until_out_of_memory(admin)

        assert [square(x) for x in (2, 3, 2, 3)] == [4, 9, 4, 9]
        assert square.runs == [1, 2, 3, 2, 3]
        assert square(1) == 1  # reads still work: the entry stored before is served
        assert square.runs == [1, 2, 3, 2, 3]
        assert square.fn.cache_info().errors >= 1
        assert not cache.breaker.is_open
        refused = [r for r in caplog.records if "refused" in r.getMessage()]
        assert len(refused) == 1
        assert "maxmemory" in refused[0].getMessage()

        strict = Square(cache, strict=True, prefix="faults:strict")
        with pytest.raises(CacheUnavailable, match="maxmemory"):
            strict(4)
    admin.close()


def test_read_only_replica_serves_reads_and_fails_stores_open(server_factory: ServerFactory
                                                              ) -> None:
    """A read-only replica serves hits; READONLY stores fail open (strict raises)."""
    primary = server_factory(tcp=True, config={"repl-diskless-sync-delay": "0"})
    replica = server_factory()
    replica_admin = replica.client()
    replica_admin.execute_command("REPLICAOF", "127.0.0.1", primary.port)
    primary_admin = primary.client()
    with RedisCaching(primary.args()) as on_primary, RedisCaching(replica.args()) as on_replica:
        writer = Square(on_primary)
        assert writer(2) == 4
        assert primary_admin.execute_command("WAIT", 1, 10_000) == 1  # replicated
        # WAIT counts the acknowledgement; also see the keys on the replica before reading there
        deadline = time.monotonic() + 10
        while replica_admin.dbsize() < primary_admin.dbsize() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert replica_admin.dbsize() == primary_admin.dbsize()

        reader = Square(on_replica)
        assert reader(2) == 4
        assert reader.runs == []  # a hit on the replica
        assert [reader(3), reader(3)] == [9, 9]
        assert reader.runs == [3, 3]  # READONLY: never stored
        assert reader.fn.cache_info().errors >= 1
        assert not on_replica.breaker.is_open

        strict = Square(on_replica, strict=True)
        with pytest.raises(CacheUnavailable, match="read only replica"):
            strict(5)
    replica_admin.close()
    primary_admin.close()


# -- circuit breaker --------------------------------------------------------------------------


def test_breaker_skips_an_unresponsive_server(blackhole: int) -> None:
    """Against a silent server only failure_threshold calls pay the socket timeout."""
    args = RedisArgs(host="127.0.0.1", port=blackhole, socket_timeout=0.2,
                     socket_connect_timeout=0.2)
    with RedisCaching(args) as cache:
        square = Square(cache)
        durations = []
        for x in range(200):
            started = time.monotonic()
            assert square(x) == x * x
            durations.append(time.monotonic() - started)
        assert cache.breaker.is_open
    assert sum(durations) < 2.0
    assert sum(d >= 0.15 for d in durations) <= cache.breaker.failure_threshold + 1
    skipped = sorted(durations)[:190]
    assert sum(skipped) / len(skipped) < 0.005  # a few ms of overhead at most, per call


def test_breaker_makes_calls_cheap_while_killed_and_recovers_within_2s(
    server_factory: ServerFactory,
) -> None:
    """With the server killed 200 calls take < 2 s; caching resumes within 2 s of a restart."""
    server = server_factory()
    with RedisCaching(server.args()) as cache:
        square = Square(cache)
        assert square(1) == 1
        server.kill()
        started = time.monotonic()
        assert [square(x % 7) for x in range(200)] == [(x % 7) ** 2 for x in range(200)]
        assert time.monotonic() - started < 2.0
        assert cache.breaker.is_open
        server.restart()
        assert _wait_for_hit(square, 9) <= RECOVERY_BOUND + SLACK


def test_breaker_thresholds_are_configurable(server_factory: ServerFactory) -> None:
    """failure_threshold and reset_timeout passed to RedisCaching drive its breaker."""
    server = server_factory()
    with RedisCaching(server.args(), failure_threshold=5, reset_timeout=0.3) as cache:
        square = Square(cache)
        server.kill()
        for x in range(4):
            square(x)
        assert not cache.breaker.is_open
        square(4)
        assert cache.breaker.is_open
        assert cache.breaker.reset_timeout == 0.3


# -- values too large to cache ----------------------------------------------------------------


def test_values_larger_than_max_value_size_are_not_stored_with_one_warning(
    cache: RedisCaching, caplog: pytest.LogCaptureFixture
) -> None:
    """Results over max_value_size are returned, not stored, with exactly one warning."""
    caplog.set_level(logging.WARNING, logger="memo_redis")
    cache.max_value_size = 1000
    runs: list[int] = []

    @cached(cache=cache, prefix="faults:large", ttl=60)
    def blob(seed: int, size: int) -> bytes:
        runs.append(seed)
        return random.Random(seed).randbytes(size)  # incompressible

    expected = random.Random(1).randbytes(5000)
    assert blob(1, 5000) == expected
    assert blob(1, 5000) == expected
    assert blob(2, 4000) == random.Random(2).randbytes(4000)
    assert runs == [1, 1, 2]
    assert blob(3, 100) == blob(3, 100)
    assert runs == [1, 1, 2, 3]
    warnings = [r for r in caplog.records if "max_value_size" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING



# -- soak run ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_soak_run_sees_no_errors_and_no_stale_reads(memo_redis_binary: str) -> None:
    """A short bench/soak.py run with a server kill exits 0: no errors, stale or wrong reads."""
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, str(root / "bench" / "soak.py"), "--processes", "3", "--seconds", "4",
         "--kill-every", "1.5", "--server", memo_redis_binary],
        capture_output=True, text=True, timeout=120, env=env, cwd=root, check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    summary = [line for line in done.stdout.splitlines() if line.startswith("soak: ")]
    assert len(summary) == 1, output
    assert re.search(r" errors=0 stale=0 wrong=0 restarts=[1-9]\d* ", summary[0]), summary[0]
    assert summary[0].endswith(" ok")
    calls = re.search(r" calls=(\d+) ", summary[0])
    assert calls is not None and int(calls.group(1)) > 1000


# -- a store Redis refuses ----------------------------------------------------------------------


@pytest.mark.parametrize("how", ["acl-without-index-keys", "index-of-wrong-type"])
def test_refused_store_releases_its_lock_and_calls_stay_fast(
    server_factory: ServerFactory, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    """A store Redis answers with an error (NOPERM from an ACL user whose key patterns leave out
    the index sets, WRONGTYPE from an index key of the wrong type) is logged once and releases
    its single-flight lock at once: later calls of the key run in far less than lock_wait, no
    lock remains, and the breaker stays closed."""
    server = server_factory()
    admin = server.client()
    args = server.args()
    if how == "acl-without-index-keys":
        # Everything but __memo__:idx:* (ACL key patterns only allow; list the others).
        admin.execute_command("ACL", "SETUSER", "limited", "on", ">limited-secret", "+@all",
                              "&*", "~[^_]*", "~__memo__:gen:*", "~__memo__:fence:*",
                              "~__memo__:lock:*")
        args = server.args(username="limited", password="limited-secret")
    caplog.set_level(logging.WARNING, logger="memo_redis")
    with RedisCaching(args, lock_wait=10.0) as cache:
        square = Square(cache, prefix="sql:squares")
        if how == "index-of-wrong-type":
            admin.set(cache.layout.index_key(square.fn.cache_key(3)), "not a set")
        durations = []
        for _ in range(4):
            started = time.monotonic()
            assert square(3) == 9
            durations.append(time.monotonic() - started)
        assert max(durations) < 1.0  # lock_wait is 10 s
        assert square.runs == [3] * 4
        assert square.fn.cache_info().errors == 4
        assert not list(admin.scan_iter(match="__memo__:lock:*"))
        assert admin.exists(square.fn.cache_key(3)) == 0  # a refused store writes no value
        assert not cache.breaker.is_open
        assert cache.breaker._failures == 0  # a refusal is not an outage
    refused = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(refused) == 1
    assert ("permissions" if how.startswith("acl") else "WRONGTYPE") in refused[0].getMessage()
    admin.close()


# -- invalidations while Redis is paused ------------------------------------------------------


def test_invalidations_while_paused_are_fast_logged_once_and_applied_when_back(
    server_factory: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """With the breaker open on a paused (SIGSTOP) server, 20 sync and 20 async decorated
    writes each return at once, without touching the socket; the outage is logged as
    unavailable once, and after SIGCONT once as back with the number of invalidations kept;
    they are applied before anything is read, so every read sees the new values."""
    server = server_factory()
    now = [0.0]
    db = {i: "old" for i in range(40)}
    caplog.set_level(logging.WARNING, logger="memo_redis")
    cache = RedisCaching(server.args(socket_timeout=0.5), failure_threshold=1)
    cache.breaker = CircuitBreaker(1, 5.0, clock=lambda: now[0])
    cache.engine.gate.clock = lambda: now[0]  # the outage's quiet period too

    @cached(cache=cache, prefix="sql:accounts", ttl=600)
    def account(i: int) -> str:
        return db[i]

    @cached(cache=cache, prefix="sql:async_accounts", ttl=600)
    async def aaccount(i: int) -> str:
        return db[i]

    @invalidates("sql:accounts:*", cache=cache)
    def write(i: int) -> None:
        db[i] = "new"

    async def awrite(i: int) -> None:
        db[i] = "new"
        await aaccount.invalidate(i)

    async def read_async(items: range) -> list[str]:
        return [await aaccount(i) for i in items]

    pid = server.pid
    assert pid is not None
    try:
        assert [account(i) for i in range(20)] == ["old"] * 20
        assert run(cache, read_async(range(20, 40))) == ["old"] * 20
        os.kill(pid, signal.SIGSTOP)
        assert account(0) == "old"  # one socket timeout: the outage starts, the breaker opens
        assert cache.breaker.is_open
        durations = []
        for i in range(20):
            started = time.monotonic()
            write(i)
            durations.append(time.monotonic() - started)

        async def async_writes() -> list[float]:
            spent = []
            for i in range(20, 40):
                started = time.monotonic()
                await awrite(i)
                spent.append(time.monotonic() - started)
            return spent

        durations += run(cache, async_writes())
        assert max(durations) < 0.1  # the socket timeout is 0.5 s
        assert [account(i) for i in (1, 2)] == ["new"] * 2  # uncached meanwhile
    finally:
        os.kill(pid, signal.SIGCONT)
    now[0] += 10.0  # the breaker's cool-down is over: the next call probes
    assert [account(i) for i in range(20)] == ["new"] * 20
    assert run(cache, read_async(range(20, 40))) == ["new"] * 20
    messages = [r.getMessage() for r in caplog.records]
    assert len([m for m in messages if "unavailable" in m]) == 1
    back = [m for m in messages if "back" in m]
    assert len(back) == 1
    assert "applied 40 invalidation(s)" in back[0]  # 20 of one pattern, 20 keys: 21 distinct
    kept = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(kept) == 1  # the first one kept says so once: other processes may be stale
    cache.close()
