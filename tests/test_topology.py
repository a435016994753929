"""LocalCluster and LocalSentinel: real local topologies that form, serve and fail over."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot
from redis.sentinel import Sentinel

from memo_redis.config import parse_host_ports
from memo_redis.exceptions import ConfigError
from memo_redis.servers import Address, LocalCluster, LocalSentinel

pytestmark = pytest.mark.cluster

# Detection takes 1 s (node timeout / down-after), election and promotion a few more.
FAILOVER_BOUND = 15.0


@pytest.fixture(scope="module")
def cluster(memo_redis_binary: str) -> Iterator[LocalCluster]:
    """A 3-primary, 3-replica cluster shared by this module."""
    with LocalCluster(memo_redis_binary) as topology:
        yield topology


@pytest.fixture(scope="module")
def sentinel_topology(memo_redis_binary: str) -> Iterator[LocalSentinel]:
    """A primary, a replica and 3 sentinels shared by this module."""
    with LocalSentinel(memo_redis_binary) as topology:
        yield topology


def _key_per_slot() -> dict[int, bytes]:
    """One key hashing to each of the 16384 slots."""
    keys: dict[int, bytes] = {}
    index = 0
    while len(keys) < 16384:
        key = f"k{index}".encode()
        keys.setdefault(key_slot(key), key)
        index += 1
    return keys


def _refuses_connections(address: Address) -> bool:
    """Whether nothing listens on ``address`` any more."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(address)
        except OSError:
            return True
    return False


def _wait_replicated(client: redis.Redis) -> int:
    """Block until the primary behind ``client`` has one replica acknowledging its writes."""
    execute: Callable[..., Any] = client.execute_command
    return int(execute("WAIT", 1, 5000))


def _sentinel(topology: LocalSentinel) -> Any:
    """A plain redis-py Sentinel on the topology's sentinels (redis-py leaves it untyped)."""
    factory: Callable[..., Any] = Sentinel
    return factory(topology.sentinel_addresses, socket_timeout=1.0)


def _pipeline(client: RedisCluster) -> Any:
    """A pipeline on ``client`` (redis-py leaves RedisCluster.pipeline untyped)."""
    factory: Callable[[], Any] = client.pipeline
    return factory()


# --- argument checks ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"primaries": 0}, "primaries=0"),
        ({"replicas_per_primary": -1}, "replicas_per_primary=-1"),
        ({"primaries": True}, "primaries=True"),
        ({"startup_timeout": 0}, "startup_timeout=0"),
    ],
    ids=["no-primaries", "negative-replicas", "bool-primaries", "zero-timeout"],
)
def test_cluster_rejects_bad_arguments(kwargs: dict[str, object], needle: str) -> None:
    """LocalCluster raises ConfigError naming the bad argument and value, starting nothing."""
    with pytest.raises(ConfigError, match=needle):
        LocalCluster(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"sentinels": 0}, "sentinels=0"),
        ({"service": ""}, "service=''"),
        ({"service": "my master"}, "service='my master'"),
    ],
    ids=["no-sentinels", "empty-service", "space-in-service"],
)
def test_sentinel_rejects_bad_arguments(kwargs: dict[str, object], needle: str) -> None:
    """LocalSentinel raises ConfigError naming the bad argument and value, starting nothing."""
    with pytest.raises(ConfigError, match=needle):
        LocalSentinel(**kwargs)  # type: ignore[arg-type]


def test_sentinel_needs_start_before_queries(memo_redis_binary: str) -> None:
    """primary_address() on a topology that was never started says to call start()."""
    with pytest.raises(RuntimeError, match=r"call start\(\)"):
        LocalSentinel(memo_redis_binary).primary_address()


# --- cluster -----------------------------------------------------------------------------


def test_cluster_has_three_primaries_with_one_replica_each(cluster: LocalCluster) -> None:
    """The cluster forms as 3 primaries on loopback, each replicated by exactly one replica."""
    primaries = cluster.primaries()
    replicas = cluster.replicas()
    assert len(primaries) == 3
    assert len(replicas) == 3
    assert sorted(primaries + replicas) == sorted(cluster.nodes)
    assert {host for host, _ in cluster.nodes} == {"127.0.0.1"}
    followers = [cluster.replicas_of(primary) for primary in primaries]
    assert all(len(group) == 1 for group in followers)
    assert sorted(address for group in followers for address in group) == sorted(replicas)


def test_cluster_startup_nodes_parse_as_redis_cluster_nodes(cluster: LocalCluster) -> None:
    """startup_nodes is the REDIS_CLUSTER_NODES form of every node, in node order."""
    assert parse_host_ports("REDIS_CLUSTER_NODES", cluster.startup_nodes) == tuple(cluster.nodes)


def test_cluster_client_serves_every_slot(cluster: LocalCluster) -> None:
    """A RedisCluster client writes and reads back one key in each of the 16384 slots."""
    keys = list(_key_per_slot().values())
    client = cluster.client()
    try:
        pipe = _pipeline(client)
        for key in keys:
            pipe.set(key, b"v:" + key, ex=60)
        assert all(pipe.execute())
        assert client.mget_nonatomic(keys) == [b"v:" + key for key in keys]
        counts = []
        for host, port in cluster.primaries():
            with contextlib.closing(redis.Redis(host=host, port=port)) as node:
                counts.append(int(node.dbsize()))
        assert sum(counts) == len(keys)
        assert min(counts) > 5000  # the slots are split evenly over the primaries
    finally:
        # A multi-slot DELETE would go out as one command per key; a pipeline batches by node.
        pipe = _pipeline(client)
        for key in keys:
            pipe.delete(key)
        pipe.execute()
        client.close()


def test_cluster_wait_for_failover_needs_a_kill(cluster: LocalCluster) -> None:
    """wait_for_failover() without a kill_primary_of() before it is a RuntimeError."""
    with pytest.raises(RuntimeError, match=r"kill_primary_of\(\)"):
        cluster.wait_for_failover(1.0)


def test_cluster_failover_promotes_the_replica(cluster: LocalCluster) -> None:
    """Killing a key's primary promotes its replica in bounded time, keeping the key."""
    client = cluster.client()
    try:
        client.set(b"failover:key", b"before")
        owner = cluster.primary_of(b"failover:key")
        (replica,) = cluster.replicas_of(owner)
        with contextlib.closing(redis.Redis(host=owner[0], port=owner[1])) as direct:
            assert _wait_replicated(direct) == 1
        started = time.monotonic()
        assert cluster.kill_primary_of(b"failover:key") == owner
        promoted = cluster.wait_for_failover(timeout=FAILOVER_BOUND)
        elapsed = time.monotonic() - started
        assert promoted == replica
        assert elapsed < FAILOVER_BOUND
        assert owner not in cluster.primaries()
        assert promoted in cluster.primaries()
        # The client made before the kill follows the new slot map.
        assert client.get(b"failover:key") == b"before"
        client.set(b"failover:key", b"after")
    finally:
        client.close()
    with contextlib.closing(cluster.client()) as fresh:
        assert fresh.get(b"failover:key") == b"after"


def test_single_node_cluster_stops_cleanly(memo_redis_binary: str) -> None:
    """A 1-node cluster serves, reports a failed failover with logs, and stop() frees its port."""
    topology = LocalCluster(memo_redis_binary, primaries=1, replicas_per_primary=0)
    with topology:
        (address,) = topology.nodes
        with contextlib.closing(topology.client()) as client:
            client.set(b"k", b"v")
            assert client.get(b"k") == b"v"
        assert topology.kill_primary_of(b"k") == address
        with pytest.raises(TimeoutError, match=r"(?s)no cluster node is alive.*log tail"):
            topology.wait_for_failover(timeout=0.2)
    assert _refuses_connections(address)
    topology.stop()
    assert topology.nodes == []


# --- sentinel ----------------------------------------------------------------------------


def test_sentinel_reports_the_primary_and_replica(sentinel_topology: LocalSentinel) -> None:
    """Every sentinel names the initial primary and knows the replica."""
    primary, replica = sentinel_topology.data_nodes
    assert sentinel_topology.primary_address() == primary
    assert len(sentinel_topology.sentinel_addresses) == 3
    assert parse_host_ports("REDIS_SENTINELS", sentinel_topology.sentinels_env) == tuple(
        sentinel_topology.sentinel_addresses
    )
    sentinel = _sentinel(sentinel_topology)
    assert sentinel.discover_master(sentinel_topology.service) == primary
    assert sentinel.discover_slaves(sentinel_topology.service) == [replica]


def test_sentinel_failover_promotes_the_replica(sentinel_topology: LocalSentinel) -> None:
    """Killing the primary makes the sentinels promote the replica, keeping the data."""
    service = sentinel_topology.service
    primary, replica = sentinel_topology.data_nodes
    sentinel = _sentinel(sentinel_topology)
    with contextlib.closing(sentinel.master_for(service, socket_timeout=1.0)) as client:
        client.set(b"failover:key", b"before")
        assert _wait_replicated(client) == 1
    started = time.monotonic()
    assert sentinel_topology.kill_primary() == primary
    promoted = sentinel_topology.wait_for_failover(timeout=FAILOVER_BOUND)
    elapsed = time.monotonic() - started
    assert promoted == replica
    assert elapsed < FAILOVER_BOUND
    assert sentinel_topology.primary_address() == replica
    with contextlib.closing(sentinel.master_for(service, socket_timeout=1.0)) as client:
        assert client.get(b"failover:key") == b"before"
        client.set(b"failover:key", b"after")
        assert client.get(b"failover:key") == b"after"


def test_single_sentinel_topology_stops_cleanly(memo_redis_binary: str) -> None:
    """stop() frees every port of the topology and may be called again."""
    topology = LocalSentinel(memo_redis_binary, service="cache", sentinels=1)
    with topology:
        addresses = topology.data_nodes + topology.sentinel_addresses
        with contextlib.closing(topology.client()) as client:
            client.set(b"k", b"v")
            assert client.get(b"k") == b"v"
    assert all(_refuses_connections(address) for address in addresses)
    topology.stop()
    assert topology.sentinel_addresses == []
