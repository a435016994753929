"""The in-process L1 of ``@cached(local=True)`` (memo_redis.local), against real private servers:
local hits never reach Redis, writes by other clients and processes reach the L1 within
milliseconds, memory is bounded, and it steps aside whenever it cannot be kept coherent."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import statistics
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, ParamSpec, TypeVar

import pytest
import redis
import redis.connection
from support import command_calls, reset_stats, wait_until

from memo_redis import CachedFunction, RedisArgs, RedisCaching, cached, invalidates
from memo_redis.embedded import EmbeddedServer
from memo_redis.local import LocalCache
from memo_redis.protocol.topology import Cluster
from memo_redis.testing import ServerFactory

P = ParamSpec("P")
R = TypeVar("R")

COHERENCE_TRIALS = 20
COHERENCE_MEDIAN_S = 0.010


def memo(**options: Any) -> Callable[[Callable[P, R]], CachedFunction[P, R]]:
    """``cached(local=True, **options)``, typed for the checker."""
    options.setdefault("local", True)
    decorator: Callable[[Callable[P, R]], CachedFunction[P, R]] = cached(**options)
    return decorator


def invalidating(*patterns: str, cache: RedisCaching
                 ) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """``invalidates(*patterns, cache=cache)``, typed for the checker."""
    decorator: Callable[[Callable[P, R]], Callable[P, R]] = invalidates(*patterns, cache=cache)
    return decorator


def dropped(local: LocalCache, key: str, timeout: float = 5.0) -> bool:
    """Wait (bounded) until ``key`` has no local entry; True once it has none."""
    return wait_until(lambda: key not in local, timeout)


def local_of(cache: RedisCaching) -> LocalCache:
    """The cache's L1, tracking and ready to serve."""
    local = cache.local_cache()
    assert local is not None
    assert local.wait_ready(20.0), "tracking did not start"
    return local


def settle(local: LocalCache, client: redis.Redis) -> None:
    """Wait until every invalidation sent before now has reached ``local`` (a SET of a tracked
    key, whose notification comes after all earlier ones on the same connection)."""
    before = local.invalidations
    client.set("__memo__:fence:settle", "1")
    assert wait_until(lambda: local.invalidations > before)


def warm(fn: Callable[..., Any], cache: RedisCaching, *args: Any) -> str:
    """Call ``fn(*args)`` until its result is held locally, with no notification of earlier
    writes (e.g. its own store) still in flight to drop it later; returns its key."""
    local = cache.local_cache()
    assert local is not None
    key: str = fn.cache_key(*args)  # type: ignore[attr-defined]
    assert wait_until(lambda: fn(*args) is not None and key in local), key
    settle(local, cache.client)
    assert wait_until(lambda: fn(*args) is not None and key in local), key
    return key


@pytest.fixture
def my_round_trips(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Client->server writes (one per command or pipeline) made by the test's own thread,
    whatever the connection: the tracking thread's traffic is left out."""
    sent: list[int] = []
    me = threading.get_ident()
    original: Callable[..., None] = redis.connection.AbstractConnection.send_packed_command

    def counting(self: Any, command: Any, check_health: bool = True) -> None:
        if threading.get_ident() == me:
            sent.append(1)
        original(self, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)
    return sent


@pytest.fixture
def writer(server: EmbeddedServer) -> Iterator[RedisCaching]:
    """Another RedisCaching on the session server, with connections of its own."""
    with RedisCaching(server.args()) as other:
        yield other


# --- local hits ------------------------------------------------------------------------------


def test_local_hit_does_not_touch_redis(cache: RedisCaching, raw: redis.Redis,
                                        my_round_trips: list[int]) -> None:
    """Once held locally, a thousand calls send nothing to Redis and run no body."""
    calls: list[str] = []

    @memo(cache=cache, ttl=60)
    def price(sku: str) -> dict[str, Any]:
        calls.append(sku)
        return {"sku": sku, "cents": 42}

    local = local_of(cache)
    warm(price, cache, "a")
    hits_before = local.hits
    reset_stats(raw)
    my_round_trips.clear()
    for _ in range(1000):
        assert price("a") == {"sku": "a", "cents": 42}
    assert my_round_trips == []
    stats = command_calls(raw)
    assert "mget" not in stats and "evalsha" not in stats
    assert calls == ["a"]
    assert local.hits - hits_before == 1000
    assert price.cache_info().hits >= 1000


def test_local_hits_return_the_same_object(cache: RedisCaching) -> None:
    """Local hits return the very object kept (like functools.lru_cache), not a copy."""

    @memo(cache=cache, ttl=60)
    def rows(n: int) -> list[dict[str, int]]:
        return [{"id": i} for i in range(n)]

    local_of(cache)
    warm(rows, cache, 3)
    assert rows(3) is rows(3)
    assert rows(3) == [{"id": 0}, {"id": 1}, {"id": 2}]


def test_async_local_hit_does_not_touch_redis(cache: RedisCaching, raw: redis.Redis) -> None:
    """await fn() is served locally too, and an invalidation reaches it."""
    calls: list[int] = []

    @memo(cache=cache, ttl=60)
    async def fetch(x: int) -> int:
        calls.append(x)
        return x + len(calls)

    local = local_of(cache)

    async def scenario() -> tuple[list[int], dict[str, int], list[int]]:
        key = fetch.cache_key(1)

        async def fill() -> None:
            for _ in range(100):
                await fetch(1)
                if key in local:
                    return
                await asyncio.sleep(0.001)

        await fill()
        settle(local, raw)
        await fill()
        reset_stats(raw)
        served = [await fetch(1) for _ in range(100)]
        stats = command_calls(raw)
        cache.invalidate_key(key)
        assert dropped(local, key)
        after = [await fetch(1)]
        await cache.aclose()
        return served, stats, after

    served, stats, after = asyncio.run(scenario())
    assert served == [2] * 100
    assert "mget" not in stats
    assert after == [3]
    assert calls == [1, 1]


def test_l1_tracks_the_server_of_a_client_passed_in(server: EmbeddedServer,
                                                    writer: RedisCaching) -> None:
    """RedisCaching(client=r): the L1 tracks r's server (not a default host) and stays coherent."""
    client = server.client()
    try:
        with RedisCaching(client=client) as cache:
            calls: list[int] = []

            @memo(cache=cache, prefix="app:client", ttl=60)
            def fetch(x: int) -> int:
                calls.append(x)
                return len(calls)

            local = local_of(cache)
            key = warm(fetch, cache, 1)
            writer.invalidate_key(key)
            assert dropped(local, key)
            assert fetch(1) == 2
    finally:
        client.close()


# --- coherence -------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["invalidate_key", "pattern", "invalidates", "raw_set"])
def test_write_by_another_client_reaches_the_l1_within_10ms(
    how: str, cache: RedisCaching, writer: RedisCaching, raw: redis.Redis
) -> None:
    """A write through another connection drops the local entry: median delay, measured from
    the moment the writer's command returned, is at most 10 ms over 20 trials; the next call
    sees the write."""
    db: dict[int, str] = {}

    @memo(cache=cache, prefix="sql:items", ttl=60)
    def item(i: int) -> str:
        return db[i]

    @invalidating("sql:items:*", cache=writer)
    def update(i: int) -> None:
        db[i] = "new"

    local = local_of(cache)
    delays: list[float] = []
    for i in range(COHERENCE_TRIALS):
        db[i] = "old"
        key = warm(item, cache, i)
        if how == "invalidates":
            update(i)
        else:
            db[i] = "new"
            if how == "invalidate_key":
                writer.invalidate_key(key)
            elif how == "pattern":
                writer.invalidate("sql:items:*")
            else:
                raw.set(key, json.dumps("new"))
        written = time.perf_counter()
        while key in local and time.perf_counter() - written < 1.0:
            time.sleep(0)  # let the tracking thread take the GIL
        delays.append(time.perf_counter() - written)
        assert key not in local
        assert item(i) == "new"
    assert statistics.median(delays) <= COHERENCE_MEDIAN_S, delays


CHILD = textwrap.dedent(
    """
    import json, sys, time
    import redis
    from memo_redis import RedisArgs, RedisCaching, invalidates

    cache = RedisCaching(RedisArgs(socket_path=sys.argv[1]))
    raw = redis.Redis(unix_socket_path=sys.argv[1])

    @invalidates("sql:items:*", cache=cache)
    def update():
        pass

    print("ready", flush=True)
    for line in sys.stdin:
        step, key = line.split()
        if step == "invalidate_key":
            cache.invalidate_key(key)
        elif step == "pattern":
            cache.invalidate("sql:items:*")
        elif step == "invalidates":
            update()
        elif step == "raw_set":
            raw.set(key, json.dumps("from child"))
        print(time.time(), flush=True)
    """
)


def test_write_by_another_process_is_seen(cache: RedisCaching, server: EmbeddedServer) -> None:
    """Invalidations and raw writes made by a separate process drop the local entry, and the
    next call returns the fresh value."""
    calls: list[int] = []

    @memo(cache=cache, prefix="sql:items", ttl=60)
    def item(i: int) -> str:
        calls.append(i)
        return f"computed {len(calls)}"

    local = local_of(cache)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, server.socket_path],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        assert child.stdout.readline().strip() == "ready"
        for i, step in enumerate(["invalidate_key", "pattern", "invalidates", "raw_set"]):
            key = warm(item, cache, i)
            held = item(i)
            child.stdin.write(f"{step} {key}\n")
            child.stdin.flush()
            assert float(child.stdout.readline()) > 0  # the child's write has returned
            assert dropped(local, key), step
            fresh = item(i)
            assert fresh != held, step
            if step == "raw_set":  # a plain value at a decorated key is a miss: recomputed
                assert fresh == f"computed {len(calls)}"
    finally:
        child.stdin.close()
        assert child.wait(timeout=10) == 0


# --- bounded memory --------------------------------------------------------------------------


def test_max_entries_evicts_the_least_recently_used(cache: RedisCaching) -> None:
    """With max_entries=5, a sixth entry evicts the one used least recently, not the oldest."""
    calls: list[int] = []
    cache.configure_local_cache(max_entries=5)

    @memo(cache=cache, ttl=60)
    def ident(x: int) -> int:
        calls.append(x)
        return x

    local = local_of(cache)
    keys = [warm(ident, cache, i) for i in range(5)]
    assert ident(0) == 0  # a local hit makes entry 0 the most recent
    keys.append(warm(ident, cache, 5))
    assert len(local) == 5
    assert keys[1] not in local
    assert all(k in local for k in (keys[0], *keys[2:]))
    assert ident(1) == 1  # evicted locally, still cached in Redis
    assert calls == [0, 1, 2, 3, 4, 5]


def test_max_bytes_bounds_the_held_bytes(cache: RedisCaching) -> None:
    """With max_bytes=1000, 300-byte values are held three at a time, a 2000-byte value never;
    every call still gets its value."""
    cache.configure_local_cache(max_bytes=1000)
    blobs = {i: os.urandom(300) for i in range(5)}
    blobs[9] = os.urandom(2000)

    @memo(cache=cache, ttl=60)
    def blob(i: int) -> bytes:
        return blobs[i]

    local = local_of(cache)
    keys = [warm(blob, cache, i) for i in range(5)]
    assert len(local) == 3
    assert 900 < local.size_bytes <= 1000
    assert [k in local for k in keys] == [False, False, True, True, True]
    for _ in range(3):
        assert blob(9) == blobs[9]
    assert blob.cache_key(9) not in local
    assert local.size_bytes <= 1000


def test_configure_shrinks_a_live_l1(cache: RedisCaching) -> None:
    """configure_local_cache() on an L1 in use evicts down to the new bounds."""

    @memo(cache=cache, ttl=60)
    def ident(x: int) -> int:
        return x

    local = local_of(cache)
    keys = [warm(ident, cache, i) for i in range(4)]
    cache.configure_local_cache(max_entries=2)
    assert len(local) == 2
    assert [k in local for k in keys] == [False, False, True, True]


def test_entry_leaves_the_l1_when_its_redis_key_expires(cache: RedisCaching) -> None:
    """An entry with a 0.3 s TTL is dropped locally once Redis expires the key."""
    calls: list[int] = []

    @memo(cache=cache, ttl=0.3)
    def ident(x: int) -> int:
        calls.append(x)
        return x

    local = local_of(cache)
    key = warm(ident, cache, 1)
    assert dropped(local, key, 5.0)
    assert ident(1) == 1
    assert calls == [1, 1]


def test_entry_lives_at_most_max_ttl_locally(cache: RedisCaching, raw: redis.Redis) -> None:
    """After max_ttl the local entry is not served: the call reads Redis (still a hit there)."""
    calls: list[int] = []
    cache.configure_local_cache(max_ttl=0.2)

    @memo(cache=cache, ttl=60)
    def ident(x: int) -> int:
        calls.append(x)
        return x

    key = warm(ident, cache, 1)
    time.sleep(0.25)  # waiting out the lifetime itself
    reset_stats(raw)
    assert ident(1) == 1
    assert command_calls(raw)["mget"] == 1
    assert calls == [1]
    assert key in local_of(cache)  # filled again by that read


# --- when tracking is lost or impossible ------------------------------------------------------


def test_dropped_tracking_connection_empties_and_bypasses_the_l1(
    server_factory: ServerFactory,
) -> None:
    """CLIENT KILL of the tracking connection: the L1 empties, calls read Redis while tracking
    is down (held down here by a changed password), and local hits resume once it is back."""
    srv = server_factory()
    admin = srv.client()
    acl: Callable[..., Any] = admin.execute_command
    acl("ACL", "SETUSER", "app", "on", ">pw-one", "~*", "&*", "+@all")
    try:
        with RedisCaching(srv.args(username="app", password="pw-one")) as cache:
            calls: list[int] = []

            @memo(cache=cache, ttl=60)
            def ident(x: int) -> int:
                calls.append(x)
                return x

            local = local_of(cache)
            key = warm(ident, cache, 1)
            acl("ACL", "SETUSER", "app", "resetpass", ">pw-two")
            assert admin.client_kill_filter(_type="pubsub") == 1
            assert wait_until(lambda: not local.enabled)
            assert len(local) == 0
            reset_stats(admin)
            for _ in range(3):
                assert ident(1) == 1
            assert command_calls(admin)["mget"] == 3
            assert key not in local
            acl("ACL", "SETUSER", "app", "resetpass", ">pw-one")
            assert local.wait_ready()
            warm(ident, cache, 1)
            reset_stats(admin)
            assert ident(1) == 1
            assert "mget" not in command_calls(admin)
            assert calls == [1]
    finally:
        admin.close()


def test_killed_server_empties_the_l1_until_tracking_is_back(
    server_factory: ServerFactory,
) -> None:
    """A killed server: the L1 empties at once (no stale local hits), calls run uncached, and
    after a restart values are recomputed and held locally again."""
    srv = server_factory()
    with RedisCaching(srv.args()) as cache:
        calls: list[int] = []

        @memo(cache=cache, ttl=60)
        def ident(x: int) -> int:
            calls.append(x)
            return x

        local = local_of(cache)
        key = warm(ident, cache, 1)
        srv.kill()
        assert wait_until(lambda: not local.enabled and len(local) == 0)
        assert ident(1) == 1
        assert calls == [1, 1]
        srv.restart()
        assert local.wait_ready(10.0)
        cache.breaker.record_success()  # skip the breaker's cool-down
        assert warm(ident, cache, 1) == key
        assert ident(1) == 1
        assert len(calls) == 3


class _Proxy:
    """A TCP proxy that can silently stop forwarding: a network partition without resets."""

    def __init__(self, port: int) -> None:
        self._target = port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.blocked = threading.Event()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self._target))
            except OSError:
                client.close()
                continue
            self._sockets += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                if not self.blocked.is_set():
                    dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def test_silent_partition_empties_the_l1(server_factory: ServerFactory) -> None:
    """A tracking connection that goes silent (no reset, no data) is PINGed and given up: the
    L1 empties within keepalive + socket timeout, so a write it could not hear is never
    served stale; tracking resumes when the network does."""
    srv = server_factory(tcp=True)
    assert srv.port is not None
    proxy = _Proxy(srv.port)
    try:
        args = RedisArgs(host="127.0.0.1", port=proxy.port, socket_timeout=1.0,
                         socket_connect_timeout=1.0)
        with RedisCaching(args) as cache, RedisCaching(srv.args()) as direct:
            calls: list[int] = []

            @memo(cache=cache, ttl=60)
            def ident(x: int) -> int:
                calls.append(x)
                return len(calls)

            local = cache.local_cache()
            assert local is not None
            local.keepalive = 0.1
            local = local_of(cache)
            key = warm(ident, cache, 1)
            proxy.blocked.set()
            direct.invalidate_key(key)  # a write the L1 cannot hear about
            assert dropped(local, key, 10.0)
            assert not local.enabled
            assert ident(1) == 2  # Redis unreachable: runs uncached, never the stale 1
            proxy.blocked.clear()
            assert local.wait_ready(20.0)
    finally:
        proxy.close()


def test_server_that_cannot_track_turns_the_l1_off(server_factory: ServerFactory,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    """A user without the CLIENT command: the L1 switches itself off with one warning, and
    calls are cached in Redis as without it."""
    srv = server_factory()
    admin = srv.client()
    acl: Callable[..., Any] = admin.execute_command
    acl("ACL", "SETUSER", "limited", "on", ">s3cret-limited", "~*", "&*", "+@all", "-client")
    caplog.set_level(logging.WARNING, logger="memo_redis")
    try:
        with RedisCaching(srv.args(username="limited", password="s3cret-limited")) as cache:
            calls: list[int] = []

            @memo(cache=cache, ttl=60)
            def ident(x: int) -> int:
                calls.append(x)
                return x

            assert [ident(1) for _ in range(5)] == [1] * 5
            local = cache.local_cache()
            assert local is not None
            assert local.wait_ready() is False
            assert local.disabled and not local.enabled
            reset_stats(admin)
            assert [ident(1) for _ in range(5)] == [1] * 5
            assert command_calls(admin)["mget"] == 5
            assert calls == [1]
            assert len(local) == 0
            off = [r for r in caplog.records
                   if r.name == "memo_redis" and "local cache off" in r.getMessage()]
            assert len(off) == 1
            assert "s3cret" not in off[0].getMessage()
    finally:
        admin.close()


def test_no_local_cache_on_the_cluster_layout(cache: RedisCaching,
                                             caplog: pytest.LogCaptureFixture) -> None:
    """With the cluster layout local_cache() is None (one warning) and local=True functions
    are cached in Redis only."""
    cache.engine.topology = Cluster()
    caplog.set_level(logging.WARNING, logger="memo_redis")
    calls: list[int] = []

    @memo(cache=cache, ttl=60)
    def ident(x: int) -> int:
        calls.append(x)
        return x

    assert cache.local_cache() is None
    assert [ident(1) for _ in range(3)] == [1, 1, 1]
    assert calls == [1]
    assert ident.cache_info().hits == 2
    warnings = [r for r in caplog.records if "not available on Redis Cluster" in r.getMessage()]
    assert len(warnings) == 1


# --- the fill race ---------------------------------------------------------------------------


def test_put_after_an_invalidation_is_dropped(cache: RedisCaching, raw: redis.Redis) -> None:
    """A value read before an invalidation arrived is not kept; one read after it is."""
    local = cache.local_cache()
    assert local is not None
    local.track_prefix("race:")
    assert local.wait_ready()
    epoch = local.epoch()
    before = local.invalidations
    raw.set("race:k", "changed")
    assert wait_until(lambda: local.invalidations > before)
    local.put("race:k", "read before the write", 10, None, epoch)
    assert "race:k" not in local
    local.put("race:k", "read after the write", 10, None, local.epoch())
    assert local.get("race:k") == "read after the write"


@pytest.mark.parametrize("checked", [True, False], ids=["epoch-checked", "unchecked"])
def test_value_read_before_an_invalidation_is_never_kept(
    checked: bool, cache: RedisCaching, writer: RedisCaching, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An invalidation landing between a call's Redis read and its local fill keeps the old
    value out of the L1: the next call sees the new one. Without the epoch check the old value
    is served from memory (the test can fail)."""
    db = {1: "old"}

    @memo(cache=cache, prefix="sql:users", ttl=60)
    def user(i: int) -> str:
        return db[i]

    local = local_of(cache)
    key = user.cache_key(1)
    assert user(1) == "old"  # stored in Redis, not yet local
    local.clear()
    armed = [True]
    real_lookup = cache.engine.sync.lookup

    def lookup_then_write(key: str, fingerprint: bytes | None = None) -> Any:
        look = real_lookup(key, fingerprint)
        if armed:
            armed.clear()
            before = local.epoch()  # fence messages (a late one of the first call) leave it
            db[1] = "new"
            writer.invalidate_key(key)
            assert wait_until(lambda: local.epoch() != before)
        return look

    monkeypatch.setattr(cache.engine.sync, "lookup", lookup_then_write)
    if not checked:
        real_put = local.put
        monkeypatch.setattr(local, "put", lambda k, v, size, ttl, _epoch: real_put(
            k, v, size, ttl, local.epoch()))
    assert user(1) == "old"  # read before the write: a correct answer for this call
    if checked:
        assert key not in local
        assert user(1) == "new"
    else:
        assert user(1) == "old"


# --- lifecycle -------------------------------------------------------------------------------


def test_new_local_function_is_tracked_while_the_l1_runs(cache: RedisCaching,
                                                        writer: RedisCaching) -> None:
    """A function first called after tracking started gets its prefix tracked (the listener
    re-subscribes); nested prefixes ("sql:" and "sql:users") do not switch the L1 off."""

    @memo(cache=cache, prefix="sql:{table}", ttl=60)
    def table(table: str) -> str:
        return f"{table} v{len(db)}"

    db: list[int] = []
    local = local_of(cache)
    warm(table, cache, "feeders")

    @memo(cache=cache, prefix="sql:users", ttl=60)
    def users(i: int) -> int:
        db.append(i)
        return len(db)

    assert users(1) == 1
    assert local.wait_ready()
    key = warm(users, cache, 1)
    writer.invalidate_key(key)
    assert dropped(local, key)
    assert users(1) == 2
    assert not local.disabled
    feeders = warm(table, cache, "feeders")
    writer.invalidate("sql:feeders:*")
    assert dropped(local, feeders)


def test_close_stops_tracking_for_good(cache: RedisCaching) -> None:
    """cache.close() stops the tracking thread; the closed L1 never restarts it."""

    @memo(cache=cache, ttl=60)
    def ident(x: int) -> int:
        return x

    local = local_of(cache)
    warm(ident, cache, 1)
    thread = next(t for t in threading.enumerate() if t.name == "memo_redis-tracking"
                  and t.is_alive())
    cache.close()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert len(local) == 0 and not local.enabled
    assert local.is_miss(local.get("anything"))
    assert local.wait_ready(0.1) is False


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_forked_child_starts_with_an_empty_l1_of_its_own(cache: RedisCaching,
                                                        writer: RedisCaching) -> None:
    """A forked child never serves the parent's entries without tracking: it starts empty,
    tracks on its own connection, and the parent's L1 keeps working."""
    calls: list[int] = []

    @memo(cache=cache, ttl=60)
    def ident(x: int) -> int:
        calls.append(x)
        return x

    local = local_of(cache)
    key = warm(ident, cache, 1)
    pid = os.fork()
    if pid == 0:  # the child: report through the exit code only
        code = 1
        try:
            fresh = len(local) == 0 and not local.enabled
            works = ident(1) == 1 and local.wait_ready(5.0)
            refilled = wait_until(lambda: ident(1) == 1 and key in local, 5.0)
            code = 0 if fresh and works and refilled and calls == [1] else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert local.enabled and key in local
    writer.invalidate_key(key)
    assert dropped(local, key)
