"""A throw-away local Redis Cluster, for tests of sharding and failover.

:class:`LocalCluster` starts real ``redis-server`` / ``valkey-server`` processes (the binary that
:func:`memo_redis.servers.find_server_binary` picks) on free TCP ports of ``127.0.0.1``, each in
a temporary directory of its own, with persistence off::

    with LocalCluster() as cluster:                # 3 primaries, 1 replica each
        cluster.client().set("user:1", b"ada")
        os.environ["REDIS_CLUSTER_NODES"] = cluster.startup_nodes  # "127.0.0.1:41873,..."
        cluster.kill_primary_of("user:1")         # SIGKILL the primary of the key's slot
        cluster.wait_for_failover(timeout=20)     # -> ("127.0.0.1", <the promoted replica>)

The cluster is formed from Python (``CLUSTER ADDSLOTSRANGE``, ``MEET``, ``REPLICATE``), without
``redis-cli``. Failure detection is tuned for tests (cluster node timeout 1 s), so a failover
takes a few seconds. Every wait is bounded; a timeout raises :class:`TimeoutError` naming the
state still missing and ending with each process's log tail.

:meth:`LocalCluster.stop` kills every process and deletes the directories; an atexit hook stops
clusters that were never stopped, and on Linux the processes die with the thread that started
them.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot

from memo_redis.servers.binary import find_server_binary
from memo_redis.servers.embedded import EmbeddedServer
from memo_redis.servers.nodes import (
    REPLICA_FLAGS,
    REPLICATION_CONFIG,
    TopologyTLS,
    check_count,
    check_seconds,
    command,
    info_fields,
    is_primary,
    node_log,
    node_port,
    replication_problem,
    start_node,
    wait_for,
)
from memo_redis.servers.process import HOST, Address, ProcessOwner
from memo_redis.servers.tls import AuthClients, TLSFiles

__all__ = ["LocalCluster"]

_SLOT_COUNT = 16384
_NODE_TIMEOUT_MS = 1000
_CLUSTER_CONFIG = {
    "cluster-enabled": "yes",
    "cluster-config-file": "nodes.conf",
    "cluster-node-timeout": str(_NODE_TIMEOUT_MS),
    # A replica whose link was idle for a while must still take over in a test.
    "cluster-replica-validity-factor": "0",
    **REPLICATION_CONFIG,
}


@dataclass(frozen=True)
class _NodeView:
    """One line of ``CLUSTER NODES``."""

    node_id: str
    address: Address
    flags: frozenset[str]
    master_id: str | None
    slots: tuple[tuple[int, int], ...]

    @property
    def is_primary(self) -> bool:
        return "master" in self.flags

    @property
    def failed(self) -> bool:
        return bool(self.flags & {"fail", "fail?", "handshake", "noaddr"})

    def owns(self, slot: int) -> bool:
        return any(low <= slot <= high for low, high in self.slots)


def _parse_cluster_nodes(text: str) -> dict[str, _NodeView]:
    views: dict[str, _NodeView] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 8:
            continue
        # "127.0.0.1:30001@30011,hostname" -> ("127.0.0.1", 30001)
        host, _, port = parts[1].split(",")[0].split("@")[0].rpartition(":")
        host = host or HOST  # a node that met no peer yet does not know its own address
        slots: list[tuple[int, int]] = []
        for item in parts[8:]:
            if item.startswith("["):  # a slot being imported or migrated
                continue
            low, _, high = item.partition("-")
            slots.append((int(low), int(high or low)))
        views[parts[0]] = _NodeView(
            node_id=parts[0],
            address=(host, int(port) if port.isdigit() else 0),
            flags=frozenset(parts[2].split(",")),
            master_id=None if parts[3] == "-" else parts[3],
            slots=tuple(slots),
        )
    return views


class LocalCluster(ProcessOwner):
    """A Redis Cluster of private local servers: ``primaries`` shards, each with replicas.

    Args:
        binary: path (or bare name on ``PATH``) of ``redis-server`` / ``valkey-server``;
            ``None`` uses :func:`memo_redis.servers.find_server_binary`.
        primaries: number of primaries; the 16384 slots are split evenly between them.
            Automatic failover needs a majority of primaries alive, so at least 3.
        replicas_per_primary: replicas attached to each primary.
        startup_timeout: seconds :meth:`start` may take in total.
        tls: run TLS only: client ports, replication and the cluster bus (``tls-cluster``,
            ``tls-replication``). ``True`` makes a throw-away CA and certificates at each
            start (:attr:`tls_files`); or pass :class:`~memo_redis.servers.tls.TLSFiles`.
        tls_auth_clients: the nodes' ``tls-auth-clients`` (``"no"``, ``"yes"``, ``"optional"``);
            the nodes present the server certificate to each other.

    :meth:`start` launches ``primaries * (1 + replicas_per_primary)`` servers with
    ``--cluster-enabled yes --cluster-node-timeout 1000``, assigns the slots, introduces the
    nodes, attaches the replicas and returns once every node reports ``cluster_state:ok`` and
    every replica is in sync. It takes about 2 s: a primary reports ``cluster_state:ok`` no
    sooner than 2 s after it started.

    Raises:
        ConfigError: a bad argument or binary (checked here, before anything is started).
    """

    def __init__(
        self,
        binary: str | None = None,
        *,
        primaries: int = 3,
        replicas_per_primary: int = 1,
        startup_timeout: float = 30.0,
        tls: bool | TLSFiles = False,
        tls_auth_clients: AuthClients = "no",
    ) -> None:
        self._primary_count = check_count("primaries", primaries, 1)
        self._replicas_per_primary = check_count("replicas_per_primary", replicas_per_primary, 0)
        self._startup_timeout = check_seconds("startup_timeout", startup_timeout)
        self._binary = find_server_binary(binary)
        self._tls = TopologyTLS(self._binary, tls, tls_auth_clients)
        self._servers: list[EmbeddedServer] = []
        self._ids: list[str] = []
        self._killed: set[int] = set()
        self._pending: tuple[int, str, Address] | None = None  # slot, node id, address
        self._lock = threading.RLock()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> LocalCluster:
        """Start the servers and form the cluster; return ``self`` (a no-op when started).

        Raises:
            RuntimeError: a server failed to start (the message ends with its log).
            TimeoutError: the cluster did not converge within ``startup_timeout``.
        """
        with self._lock:
            if self._servers:
                return self
            self._owner_pid = os.getpid()
            atexit.register(self._stop_at_exit)
            try:
                self._start_locked()
            except BaseException:
                self.stop()
                raise
            return self

    def stop(self) -> None:
        """Kill every server and delete their directories. Idempotent."""
        with self._lock:
            if not self._owns_processes():
                return
            for server in self._servers:
                # Throw-away data: SIGKILL spares a primary's wait for its replicas.
                server.kill()
                server.stop()
            self._servers = []
            self._ids = []
            self._killed = set()
            self._pending = None
            self._tls.remove()
            atexit.unregister(self._stop_at_exit)

    # -- properties ------------------------------------------------------------------------

    @property
    def binary(self) -> str:
        """Path of the server binary."""
        return self._binary

    @property
    def nodes(self) -> list[Address]:
        """Every node started, killed ones included: the initial primaries, then replicas."""
        return [(HOST, node_port(server)) for server in self._servers]

    @property
    def startup_nodes(self) -> str:
        """The nodes as ``"127.0.0.1:port,127.0.0.1:port,..."``, for ``REDIS_CLUSTER_NODES``."""
        return ",".join(f"{host}:{port}" for host, port in self.nodes)

    @property
    def tls_files(self) -> TLSFiles | None:
        """The CA and certificates of a TLS cluster (``tls=True``: made at start), else ``None``."""
        return self._tls.files

    def primaries(self) -> list[Address]:
        """The live primaries that own slots now, ordered by their first slot."""
        views = self._cluster_view()
        owners = [
            view for view in views.values() if view.is_primary and view.slots and not view.failed
        ]
        owners.sort(key=lambda view: min(low for low, _ in view.slots))
        return [view.address for view in owners if self._alive(view.address)]

    def replicas(self) -> list[Address]:
        """The live replicas now, in the order of the node list."""
        views = self._cluster_view()
        found = {view.address for view in views.values() if view.flags & REPLICA_FLAGS}
        return [address for address in self.nodes if address in found and self._alive(address)]

    def replicas_of(self, primary: Address) -> list[Address]:
        """The live replicas of the primary at ``primary``."""
        views = self._cluster_view()
        ids = [view.node_id for view in views.values() if view.address == primary]
        found = {
            view.address
            for view in views.values()
            if ids and view.master_id == ids[0] and view.flags & REPLICA_FLAGS
        }
        return [address for address in self.nodes if address in found and self._alive(address)]

    def primary_of(self, key: str | bytes) -> Address:
        """The address of the primary that owns ``key``'s slot now."""
        return self._owner(key_slot(_encode(key)))[1].address

    def client(self, **kwargs: Any) -> RedisCluster:
        """A new ``redis.cluster.RedisCluster`` seeded with the live nodes.

        ``decode_responses=False`` unless given (and the TLS options of a TLS cluster);
        ``kwargs`` go to ``RedisCluster``.
        """
        options: dict[str, Any] = {"decode_responses": False, **self._tls.client_kwargs()}
        options.update(kwargs)
        node: Callable[..., ClusterNode] = ClusterNode
        seeds = [node(host, port) for host, port in self.nodes if self._alive((host, port))]
        return RedisCluster(startup_nodes=seeds, **options)

    # -- fault injection -------------------------------------------------------------------

    def kill_primary_of(self, key: str | bytes) -> Address:
        """SIGKILL the primary owning ``key``'s slot and return its address.

        :meth:`wait_for_failover` then waits for one of its replicas to take over.
        """
        with self._lock:
            slot = key_slot(_encode(key))
            owner_id, owner = self._owner(slot)
            index = self._index(owner.address)
            self._servers[index].kill()
            self._killed.add(index)
            self._pending = (slot, owner_id, owner.address)
            return owner.address

    def wait_for_failover(self, timeout: float = 30.0) -> Address:
        """Wait until the slot of the last killed primary has a new, live primary.

        Done when every live node reports ``cluster_state:ok`` and agrees on the new owner,
        and the owner answers ``ROLE`` as a primary. Returns the new owner's address.

        Raises:
            RuntimeError: no primary was killed with :meth:`kill_primary_of`.
            TimeoutError: the failover did not complete within ``timeout`` seconds.
        """
        timeout = check_seconds("timeout", timeout)
        with self._lock:
            if self._pending is None:
                raise RuntimeError("wait_for_failover() needs a kill_primary_of() before it")
            slot, dead_id, dead = self._pending
            promoted: list[Address] = []

            def check() -> str | None:
                owners: set[Address] = set()
                live = self._live_nodes()
                if not live:
                    return "no cluster node is alive"
                for address in live:
                    problem = self._state_problem(address)
                    if problem is not None:
                        return problem
                    views = _parse_cluster_nodes(self._command(address, "CLUSTER", "NODES"))
                    owner = [view for view in views.values() if view.owns(slot)]
                    if not owner or owner[0].node_id == dead_id:
                        return f"{HOST}:{address[1]} still maps slot {slot} to {dead}"
                    owners.add(owner[0].address)
                if len(owners) != 1:
                    return f"nodes disagree on the owner of slot {slot}: {sorted(owners)}"
                (owner_address,) = owners
                if not is_primary(owner_address, self._tls.files):
                    return f"{owner_address} does not answer ROLE as a primary yet"
                promoted[:] = [owner_address]
                return None

            wait_for(
                check,
                timeout=timeout,
                what=f"failover of slot {slot} away from {HOST}:{dead[1]}",
                logs=self._logs,
            )
            self._pending = None
            return promoted[0]

    def __repr__(self) -> str:
        return f"<LocalCluster nodes={self.startup_nodes!r} killed={len(self._killed)}>"

    # -- internals -------------------------------------------------------------------------

    def _start_locked(self) -> None:
        deadline = time.monotonic() + self._startup_timeout
        total = self._primary_count * (1 + self._replicas_per_primary)
        self._tls.make()
        config = {**_CLUSTER_CONFIG, **({"tls-cluster": "yes"} if self._tls.enabled else {})}
        for _ in range(total):
            remaining = max(deadline - time.monotonic(), 0.1)
            self._servers.append(start_node(self._binary, config, remaining, self._tls))
        addresses = self.nodes
        self._ids = [str(self._command(address, "CLUSTER", "MYID")) for address in addresses]
        primaries = addresses[: self._primary_count]
        for index, address in enumerate(primaries):
            low = index * _SLOT_COUNT // self._primary_count
            high = (index + 1) * _SLOT_COUNT // self._primary_count - 1
            self._command(address, "CLUSTER", "ADDSLOTSRANGE", low, high)
            # Distinct epochs up front, as redis-cli does, skip the epoch collision dance.
            self._command(address, "CLUSTER", "SET-CONFIG-EPOCH", index + 1)
        for server in self._servers[1:]:
            bus_port = self._bus_port(server)
            self._command(addresses[0], "CLUSTER", "MEET", HOST, node_port(server), bus_port)
        self._wait_startup(self._all_known, deadline, "all nodes knowing each other")
        for index, address in enumerate(addresses[self._primary_count :]):
            primary = index // self._replicas_per_primary
            self._command(address, "CLUSTER", "REPLICATE", self._ids[primary])
        self._wait_startup(self._formed, deadline, "cluster_state:ok with replicas in sync")

    def _wait_startup(self, check: Callable[[], str | None], deadline: float, what: str) -> None:
        wait_for(
            check,
            timeout=self._startup_timeout,
            deadline=deadline,
            what=f"cluster startup ({what})",
            logs=self._logs,
        )

    def _all_known(self) -> str | None:
        self._check_processes()
        expected = set(self._ids)
        for address in self.nodes:
            views = _parse_cluster_nodes(self._command(address, "CLUSTER", "NODES"))
            if set(views) != expected:
                return f"{HOST}:{address[1]} knows {len(views)} of {len(expected)} nodes"
            pending = [view.address for view in views.values() if view.failed]
            if pending:
                return f"{HOST}:{address[1]} is still handshaking with {pending}"
        return None

    def _formed(self) -> str | None:
        self._check_processes()
        expected_master = {
            self._ids[self._primary_count + index]: self._ids[index // self._replicas_per_primary]
            for index in range(len(self._ids) - self._primary_count)
        }
        for address in self.nodes:
            problem = self._state_problem(address)
            if problem is not None:
                return problem
            views = _parse_cluster_nodes(self._command(address, "CLUSTER", "NODES"))
            for node_id, master_id in expected_master.items():
                view = views.get(node_id)
                if view is None or view.master_id != master_id:
                    return f"{HOST}:{address[1]} does not see {node_id} as a replica yet"
        for address in self.nodes[self._primary_count :]:
            problem = replication_problem(address, self._tls.files)
            if problem is not None:
                return problem
        return None

    def _state_problem(self, address: Address) -> str | None:
        info = info_fields(self._command(address, "CLUSTER", "INFO"))
        state = info.get("cluster_state")
        if state != "ok":
            return f"{HOST}:{address[1]} reports cluster_state:{state}"
        return None

    def _cluster_view(self) -> dict[str, _NodeView]:
        errors: list[str] = []
        for address in self._live_nodes():
            try:
                return _parse_cluster_nodes(self._command(address, "CLUSTER", "NODES"))
            except (redis.RedisError, OSError) as exc:
                errors.append(f"{address}: {exc}")
        raise RuntimeError(f"no live cluster node answered CLUSTER NODES: {errors or 'none'}")

    def _owner(self, slot: int) -> tuple[str, _NodeView]:
        for view in self._cluster_view().values():
            if view.is_primary and not view.failed and view.owns(slot):
                return view.node_id, view
        raise RuntimeError(f"no live primary owns slot {slot}\n{self._logs()}")

    def _live_nodes(self) -> list[Address]:
        self._check_started()
        return [address for address in self.nodes if self._alive(address)]

    def _alive(self, address: Address) -> bool:
        index = self._index(address)
        return index not in self._killed and self._servers[index].running

    def _index(self, address: Address) -> int:
        for index, node in enumerate(self.nodes):
            if node == address:
                return index
        raise RuntimeError(f"{address} is not a node of this cluster")

    def _check_started(self) -> None:
        if not self._servers:
            raise RuntimeError("the cluster is not running: call start() first")

    def _check_processes(self) -> None:
        for index, server in enumerate(self._servers):
            if index not in self._killed and not server.running:
                raise RuntimeError(f"cluster node {HOST}:{server.port} exited\n{self._logs()}")

    def _logs(self) -> str:
        parts = []
        for index, server in enumerate(self._servers):
            role = "primary" if index < self._primary_count else "replica"
            label = f"{'killed ' if index in self._killed else ''}initial {role}"
            parts.append(node_log(label, server))
        return "\n".join(parts)

    def _command(self, address: Address, *args: Any) -> Any:
        return command(address, *args, tls=self._tls.files)

    def _bus_port(self, server: EmbeddedServer) -> int:
        return int(self._command((HOST, node_port(server)), "CONFIG", "GET", "cluster-port")[1])


def _encode(key: str | bytes) -> bytes:
    if isinstance(key, str):
        return key.encode()
    if isinstance(key, bytes):
        return key
    raise TypeError(f"key={key!r}: expected str or bytes")
