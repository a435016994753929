"""Invalidations acknowledged by replicas (``wait_replicas``), and the outage log across flaps.

On a private primary and its replica: an acknowledged invalidation is on the replica when it
returns; with the replica detached, it is not acknowledged (strict: raised; otherwise kept,
logged once, applied again once the replica is back), while without ``wait_replicas`` the same
invalidation returns and a promotion of that replica serves the entries it invalidated. Then the
flap logic of the gate, with a fake clock. The failovers are in ``test_failover_durability``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from support import command_calls, wait_until

from memo_redis import CacheUnavailable, RedisArgs, RedisCaching, cached
from memo_redis.backend import waits
from memo_redis.backend.gate import QUIET_FLOOR, Gate
from memo_redis.breaker import CircuitBreaker
from memo_redis.exceptions import ConfigError
from memo_redis.protocol.invalidation import Unacknowledged
from memo_redis.servers.embedded import EmbeddedServer
from memo_redis.servers.nodes import REPLICATION_CONFIG
from memo_redis.testing import ServerFactory

MISS = object()


def _attach(replica: EmbeddedServer, primary: EmbeddedServer) -> None:
    """Make ``replica`` replicate ``primary`` and wait until the primary counts it in sync."""
    with contextlib.closing(replica.client()) as node:
        node.execute_command("REPLICAOF", "127.0.0.1", primary.port)
    with contextlib.closing(primary.client()) as node:
        def synced() -> bool:
            info = node.info("replication")
            return bool(info.get("connected_slaves") == 1
                        and info.get("slave0", {}).get("state") == "online")
        assert wait_until(synced, timeout=10), node.info("replication")
        pipe = node.pipeline(transaction=False)  # and acknowledging (its load is over)
        pipe.set("__memo__:test:sync", 1, px=1000)  # never matched by a pattern
        pipe.execute_command("WAIT", 1, 5000)
        assert pipe.execute()[-1] == 1


def _detach(replica: EmbeddedServer, primary: EmbeddedServer) -> None:
    """Stop replicating (the replica keeps its data, as a promoted replica would)."""
    with contextlib.closing(replica.client()) as node:
        node.execute_command("REPLICAOF", "NO", "ONE")
    with contextlib.closing(primary.client()) as node:
        assert wait_until(lambda: node.info("replication")["connected_slaves"] == 0)


@pytest.fixture
def pair(memo_redis_factory: ServerFactory) -> tuple[EmbeddedServer, EmbeddedServer]:
    """A private primary and its replica, in sync."""
    primary = memo_redis_factory(tcp=True, config=REPLICATION_CONFIG)
    replica = memo_redis_factory(tcp=True, config=REPLICATION_CONFIG)
    _attach(replica, primary)
    return primary, replica


def _error_messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "memo_redis" and r.levelno >= logging.ERROR]


# --- settings --------------------------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "named"), [
    ({"wait_replicas": -1}, "wait_replicas"),
    ({"wait_replicas": True}, "wait_replicas"),
    ({"wait_replicas": 1.0}, "wait_replicas"),
    ({"wait_replicas": "1"}, "wait_replicas"),
    ({"wait_timeout": 0}, "wait_timeout"),
    ({"wait_timeout": -0.5}, "wait_timeout"),
    ({"wait_timeout": float("inf")}, "wait_timeout"),
    ({"wait_timeout": "1"}, "wait_timeout"),
    ({"wait_timeout": None}, "wait_timeout"),
    ({"wait_replicas": 1, "wait_timeout": 1.0}, "wait_timeout"),  # the socket timeout is 1 s
])
def test_bad_settings_are_refused_naming_the_parameter(kwargs: dict[str, object],
                                                       named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        RedisCaching("redis://127.0.0.1:1/0", **kwargs)  # type: ignore[arg-type]


def test_settings_forward_to_the_engine() -> None:
    args = RedisArgs.from_url("redis://127.0.0.1:1/0", socket_timeout=5.0)
    with RedisCaching(args, wait_replicas=2, wait_timeout=2.5) as cache:
        assert (cache.wait_replicas, cache.wait_timeout) == (2, 2.5)
        assert (cache.engine.invalidator.replicas, cache.engine.invalidator.wait_ms) == (2, 2500)
    with RedisCaching("redis://127.0.0.1:1/0") as cache:
        assert (cache.wait_replicas, cache.wait_timeout) == (0, 0.5)
        assert cache.engine.invalidator.replicas == 0
    # A WAIT as long as the socket timeout is refused only when something waits.
    RedisCaching("redis://127.0.0.1:1/0", wait_timeout=3.0).close()


# --- a primary and its replica ---------------------------------------------------------------


def test_acknowledged_invalidations_are_on_the_replica_when_they_return(
        pair: tuple[EmbeddedServer, EmbeddedServer]) -> None:
    """Every kind of invalidation ends with WAIT (pipelined with its decisive writes, or after
    a marker), so the replica already holds its effect when the call returns."""
    primary, replica = pair
    with RedisCaching(primary.args(), wait_replicas=1, strict=True) as cache, \
            contextlib.closing(primary.client()) as on_primary, \
            contextlib.closing(replica.client()) as on_replica:
        for table in ("users", "orders", "items"):
            for row in range(3):
                cache.set(f"sql:{table}:{row}", row)
        cache.set("other:1", 1)
        before = command_calls(on_primary).get("wait", 0)
        assert cache.invalidate("sql:users:*") == 3
        generation = on_primary.get("__memo__:gen:sql:users")
        assert generation is not None and on_replica.get("__memo__:gen:sql:users") == generation
        assert cache.invalidate_key("sql:orders:1") == 1
        assert not on_replica.exists("sql:orders:1")
        assert cache.invalidate("sql:ord*") == 2  # a glob: SCAN, then a marker and WAIT
        assert not on_replica.keys("sql:orders:*")
        assert cache.invalidate("*") == 4  # every generation bumped, every entry unlinked
        assert on_replica.get("__memo__:gen:") == on_primary.get("__memo__:gen:") is not None
        assert not [k for k in on_replica.keys("*") if not k.startswith(b"__memo__:")]
        assert cache.invalidate("nothing:*") == 0  # a bump still, acknowledged
        # One WAIT per call, and one more after the unlinks of a bumped prefix that had entries
        assert command_calls(on_primary)["wait"] - before == 7

        async def async_invalidations() -> tuple[int, int]:
            cache.set("sql:users:1", 1)
            counts = (await cache.ainvalidate("sql:users:*"),
                      await cache.ainvalidate_key("sql:users:2"))
            await cache.aclose()
            return counts

        assert asyncio.run(async_invalidations()) == (1, 0)
        assert on_replica.get("__memo__:gen:sql:users") == on_primary.get("__memo__:gen:sql:users")


def test_unacknowledged_invalidation_raises_in_strict_mode(
        pair: tuple[EmbeddedServer, EmbeddedServer]) -> None:
    """With the replica detached, the primary applies the invalidation but nothing
    acknowledges it within wait_timeout: strict mode raises. Without wait_replicas the same
    invalidation returns, and promoting that replica serves the entry again: the loss the
    acknowledgement reports."""
    primary, replica = pair
    with RedisCaching(primary.args(), wait_replicas=1, wait_timeout=0.1, strict=True) as waiting, \
            RedisCaching(primary.args(), strict=True) as plain:
        waiting.set("sql:users:1", "v1")
        waiting.set("sql:orders:1", "v1")
        assert waiting.invalidate("sql:nothing:*") == 0  # the replica has both entries now
        _detach(replica, primary)
        with pytest.raises(CacheUnavailable, match="wait_replicas") as raised:
            waiting.invalidate("sql:users:*")
        assert isinstance(raised.value, Unacknowledged)
        assert plain.get("sql:users:1", MISS) is MISS  # the primary applied it

        async def async_invalidation() -> None:
            try:
                with pytest.raises(CacheUnavailable):
                    await waiting.ainvalidate_key("sql:users:1")
            finally:
                await waiting.aclose()

        asyncio.run(async_invalidation())

        assert plain.invalidate("sql:orders:*") == 1  # returns as if done
        with RedisCaching(replica.args(), strict=True) as promoted:
            assert promoted.get("sql:orders:1", MISS) == "v1"  # the invalidation is lost
            assert promoted.get("sql:users:1", MISS) == "v1"  # and this one was reported


def test_unacknowledged_invalidation_is_kept_logged_once_and_applied_again(
        pair: tuple[EmbeddedServer, EmbeddedServer], caplog: pytest.LogCaptureFixture) -> None:
    """Fail-open: an unacknowledged invalidation returns 0, is logged at error level once for
    the whole stretch, and is kept: this process bypasses the cache, tries the kept ones again
    at most once per breaker cool-down, and applies them once the replica acknowledges."""
    primary, replica = pair
    caplog.set_level(logging.WARNING, logger="memo_redis")
    now = [0.0]
    runs: list[int] = []
    cache = RedisCaching(primary.args(), wait_replicas=1, wait_timeout=0.05)
    cache.engine.gate.clock = lambda: now[0]

    @cached(cache=cache, prefix="sql:users", ttl=60)
    def user(i: int) -> int:
        runs.append(i)
        return i

    with cache, contextlib.closing(primary.client()) as on_primary:
        assert user(1) == user(1) == 1 and runs == [1]
        _detach(replica, primary)
        assert cache.invalidate("sql:users:*") == 0
        assert cache.invalidate_key("sql:users:9") == 0
        assert cache.invalidate("sql:us*") == 0
        errors = _error_messages(caplog)
        assert len(errors) == 1 and "not acknowledged" in errors[0], errors
        assert "wait_replicas" in errors[0]
        assert len(cache.engine.gate.deferred.items) == 3

        # Tried once during the second invalidation: not again before a breaker cool-down
        held = command_calls(on_primary)["wait"]
        assert user(1) == 1 and runs == [1, 1]  # bypassed
        assert command_calls(on_primary)["wait"] == held
        now[0] += cache.breaker.reset_timeout
        assert user(1) == 1 and runs == [1, 1, 1]  # tried again (in vain), bypassed
        tried = command_calls(on_primary)["wait"]
        assert tried == held + 1
        assert user(1) == 1 and runs == [1, 1, 1, 1]
        assert command_calls(on_primary)["wait"] == tried

        _attach(replica, primary)
        now[0] += cache.breaker.reset_timeout
        assert user(1) == 1 and runs == [1, 1, 1, 1, 1]  # applied, then a miss
        assert not cache.engine.gate.deferred
        assert user(1) == 1 and runs == [1, 1, 1, 1, 1]  # cached again
        applied = [r.getMessage() for r in caplog.records
                   if r.getMessage().startswith("memo_redis: applied")]
        assert len(applied) == 1 and "applied 3 invalidation(s)" in applied[0]
        assert len(_error_messages(caplog)) == 1
        with contextlib.closing(replica.client()) as on_replica:
            assert on_replica.get("__memo__:gen:sql:users") == on_primary.get(
                "__memo__:gen:sql:users")


# --- the outage log across flaps (a fake clock) ----------------------------------------------


def _outage_log(caplog: pytest.LogCaptureFixture) -> list[str]:
    return ["unavailable" if "unavailable" in m else "back"
            for m in (r.getMessage() for r in caplog.records)
            if "unavailable" in m or "is back" in m]


def test_a_flapping_outage_is_logged_once_and_over_after_a_quiet_period(
        caplog: pytest.LogCaptureFixture) -> None:
    """Failures and successes alternating (a failover: nodes still up, breaker probes) are one
    outage; it is logged as over at the first success after a quiet period without failures.
    The breaker is not delayed: it closes at the first success, as always."""
    caplog.set_level(logging.WARNING, logger="memo_redis")
    now = [0.0]
    breaker = CircuitBreaker(3, 1.0, clock=lambda: now[0])
    gate = Gate(breaker, "test-target", None, clock=lambda: now[0])
    down = RedisConnectionError("Connection refused")
    assert gate.quiet_period == QUIET_FLOOR

    for tick in range(40):  # 4 s of flapping: two failures, then a success
        now[0] = tick * 0.1
        if tick % 3 == 2:
            gate.succeeded()
            assert not breaker.is_open and breaker.allow()
        else:
            gate.unavailable("lookup", down, cluster=True)
    assert _outage_log(caplog) == ["unavailable"]
    last_failure = 39 * 0.1
    now[0] = last_failure + gate.quiet_period - 0.01
    gate.succeeded()
    assert _outage_log(caplog) == ["unavailable"] and gate.outage
    now[0] = last_failure + gate.quiet_period + 1e-9
    gate.succeeded()
    assert _outage_log(caplog) == ["unavailable", "back"] and not gate.outage
    gate.succeeded()
    assert _outage_log(caplog) == ["unavailable", "back"]

    # The next outage is logged again, however soon.
    now[0] += 0.01
    gate.unavailable("store", down, cluster=True)
    assert _outage_log(caplog) == ["unavailable", "back", "unavailable"]

    # It answers again but no call comes after the quiet period: the next failure, much later,
    # logs the end of that outage (late) and the start of a new one.
    now[0] += 0.1
    gate.succeeded()
    now[0] += 60.0
    gate.unavailable("lookup", down, cluster=True)
    assert _outage_log(caplog) == ["unavailable", "back", "unavailable", "back", "unavailable"]
    assert "logged late" in caplog.records[-2].getMessage()

    # A failure within the quiet period after a success is the same outage.
    now[0] += 1.0
    gate.succeeded()
    now[0] += 1.0
    gate.unavailable("lookup", down, cluster=True)
    assert len(_outage_log(caplog)) == 5


def test_the_quiet_period_follows_the_breaker_and_invalidations_kept_meanwhile(
        caplog: pytest.LogCaptureFixture) -> None:
    """Two cool-downs when longer than the floor; invalidations kept during the outage and
    applied before its quiet period are logged as applied, and the end of the outage later."""
    caplog.set_level(logging.WARNING, logger="memo_redis")
    now = [0.0]
    gate = Gate(CircuitBreaker(3, 10.0, clock=lambda: now[0]), "test-target", None,
                clock=lambda: now[0])
    assert gate.quiet_period == 20.0
    gate.quiet = 2.0
    assert gate.quiet_period == 2.0
    gate.unavailable("invalidate", RedisConnectionError("down"), cluster=False)
    gate.defer("pattern", "sql:users:*")
    now[0] = 1.0
    gate.succeeded()
    assert gate.outage  # invalidations are kept: their application ends the outage
    gate.deferred.items.clear()
    gate.applied(1, 1)
    assert _outage_log(caplog) == ["unavailable"]
    assert "applied 1 invalidation(s) deferred during the outage" in caplog.records[-1].getMessage()
    now[0] = 2.0
    gate.succeeded()
    assert _outage_log(caplog) == ["unavailable", "back"]

    gate.unavailable("invalidate", RedisConnectionError("down"), cluster=False)
    gate.defer("key", "k")
    now[0] = 5.0
    gate.deferred.items.clear()
    gate.applied(2, 1)  # quiet already: one line says both
    assert _outage_log(caplog) == ["unavailable", "back", "unavailable", "back"]
    assert "applied 2 invalidation(s)" in caplog.records[-1].getMessage()


# --- WAIT on a cluster: the replies of one pipeline per primary ------------------------------


def test_per_primary_replies_keep_the_fewest_acknowledgements() -> None:
    replies: list[object] = [None] * 4
    assert not waits.place(replies, [0, 2], [1, 0, 2])
    assert replies == [1, None, 0, 2]
    assert not waits.place(replies, [1], [5, 1])
    assert replies == [1, 5, 0, 1]
    error = RedisConnectionError("gone")
    assert waits.place(replies, [1], [5, error])
    assert replies[-1] is error
    assert not waits.place(replies, [1], [5, 0])
    assert replies[-1] is error  # an error stays the answer
