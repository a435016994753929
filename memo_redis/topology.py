"""Throw-away local Redis Cluster and Sentinel topologies, for tests of sharding and failover.

Both classes start real ``redis-server`` / ``valkey-server`` processes (the binary that
:func:`memo_redis.embedded.find_server_binary` picks) on free TCP ports of ``127.0.0.1``, each in
a temporary directory of its own, with persistence off::

    with LocalCluster() as cluster:                # 3 primaries, 1 replica each
        cluster.client().set("user:1", b"ada")
        os.environ["REDIS_CLUSTER_NODES"] = cluster.startup_nodes  # "127.0.0.1:41873,..."
        cluster.kill_primary_of("user:1")         # SIGKILL the primary of the key's slot
        cluster.wait_for_failover(timeout=20)     # -> ("127.0.0.1", <the promoted replica>)

    with LocalSentinel() as topology:              # a primary, a replica, 3 sentinels
        os.environ["REDIS_SENTINELS"] = topology.sentinels_env
        topology.kill_primary()
        topology.wait_for_failover(timeout=20)

The cluster is formed from Python (``CLUSTER ADDSLOTSRANGE``, ``MEET``, ``REPLICATE``), without
``redis-cli``. Failure detection is tuned for tests (cluster node timeout and sentinel
down-after 1 s), so a failover takes a few seconds. Every wait is bounded; a timeout raises
:class:`TimeoutError` naming the state still missing and ending with each process's log tail.

:meth:`stop` kills every process and deletes the directories; an atexit hook stops topologies
that were never stopped, and on Linux the processes die with the thread that started them.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot
from redis.sentinel import Sentinel

from memo_redis.embedded import (
    EmbeddedServer,
    _die_with_parent,
    _pick_free_port,
    find_server_binary,
)
from memo_redis.exceptions import ConfigError

__all__ = ["Address", "LocalCluster", "LocalSentinel"]

Address = tuple[str, int]
"""A ``(host, port)`` pair; the host is always ``"127.0.0.1"``."""

_HOST = "127.0.0.1"
_SLOT_COUNT = 16384
_NODE_TIMEOUT_MS = 1000
_DOWN_AFTER_MS = 1000
_SENTINEL_FAILOVER_TIMEOUT_MS = 5000
_PORT_ATTEMPTS = 3
_ADMIN_TIMEOUT = 1.0
_LOG_LINES = 15
_PING = b"*1\r\n$4\r\nPING\r\n"
# Diskless sync without delay: a replica's first full sync would otherwise wait 5 s.
_REPLICATION_CONFIG = {"repl-diskless-sync": "yes", "repl-diskless-sync-delay": "0"}
_CLUSTER_CONFIG = {
    "cluster-enabled": "yes",
    "cluster-config-file": "nodes.conf",
    "cluster-node-timeout": str(_NODE_TIMEOUT_MS),
    # A replica whose link was idle for a while must still take over in a test.
    "cluster-replica-validity-factor": "0",
    **_REPLICATION_CONFIG,
}
_MASTER_ROLES = frozenset({"master", "primary"})
_REPLICA_FLAGS = frozenset({"slave", "replica"})


def _check_count(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name}={value!r}: expected an int >= {minimum}")
    return value


def _check_seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigError(f"{name}={value!r}: expected a positive number of seconds")
    return float(value)


def _command(address: Address, *args: Any) -> Any:
    """Run one command on a fresh connection and return the server's raw reply.

    A bare connection skips redis-py's reply parsers, which differ between commands and
    versions (``CONFIG GET`` becomes a dict, ``CLUSTER NODES`` stays a string).
    """
    # RESP2 pinned: the flat replies parsed below are the same on every server version.
    connect: Callable[..., redis.Connection] = redis.Connection
    connection = connect(
        host=address[0],
        port=address[1],
        protocol=2,
        decode_responses=True,
        socket_timeout=_ADMIN_TIMEOUT,
        socket_connect_timeout=_ADMIN_TIMEOUT,
    )
    try:
        send: Callable[..., None] = connection.send_command
        send(*args)
        return connection.read_response()
    finally:
        disconnect: Callable[[], None] = connection.disconnect
        disconnect()


def _info_fields(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep:
            fields[name.strip()] = value.strip()
    return fields


def _is_primary(address: Address) -> bool:
    role = _command(address, "ROLE")
    return bool(role) and str(role[0]) in _MASTER_ROLES


def _replication_problem(address: Address) -> str | None:
    """Why the replica at ``address`` is not yet in sync with its primary, or ``None``."""
    info = _info_fields(_command(address, "INFO", "replication"))
    if info.get("role") in _MASTER_ROLES:
        return f"{_HOST}:{address[1]} is not a replica yet"
    if info.get("master_link_status") != "up":
        return f"replica {_HOST}:{address[1]} link to its primary is not up"
    if info.get("master_sync_in_progress", "0") != "0":
        return f"replica {_HOST}:{address[1]} is still syncing"
    return None


def _wait_for(
    check: Callable[[], str | None],
    *,
    timeout: float,
    what: str,
    logs: Callable[[], str],
    deadline: float | None = None,
) -> None:
    """Poll ``check`` (``None`` = done, else what is missing) until done or timed out.

    ``deadline`` (a ``time.monotonic()`` value) ends a wait that is one step of a longer
    operation; ``timeout`` is then that operation's budget, named in the error.
    """
    if deadline is None:
        deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        try:
            problem = check()
        except (redis.RedisError, OSError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
        if problem is None:
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(
                f"{what}: not reached within {timeout:g} s; last state: {problem}\n{logs()}"
            )
        # Cluster gossip and sentinel state publish no event a client could await.
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, 0.1)


def _start_server(binary: str, config: dict[str, str], timeout: float) -> EmbeddedServer:
    """Start an EmbeddedServer on a free port, retrying when another process takes a port."""
    for attempt in range(1, _PORT_ATTEMPTS + 1):
        options = dict(config)
        port = _pick_free_port()
        if "cluster-enabled" in options:
            # The bus port defaults to port + 10000, which may not exist above 55535.
            bus = _pick_free_port()
            while bus == port:
                bus = _pick_free_port()
            options["cluster-port"] = str(bus)
        server = EmbeddedServer(
            binary, tcp=True, port=port, config=options, startup_timeout=timeout
        )
        try:
            return server.start()
        except RuntimeError as exc:
            if attempt == _PORT_ATTEMPTS or "already in use" not in str(exc):
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _server_log(label: str, server: EmbeddedServer) -> str:
    return f"--- {label} {_HOST}:{server.port} log tail:\n{server._log_tail(_LOG_LINES)}"


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
        host = host or _HOST  # a node that met no peer yet does not know its own address
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


class LocalCluster:
    """A Redis Cluster of private local servers: ``primaries`` shards, each with replicas.

    Args:
        binary: path (or bare name on ``PATH``) of ``redis-server`` / ``valkey-server``;
            ``None`` uses :func:`memo_redis.embedded.find_server_binary`.
        primaries: number of primaries; the 16384 slots are split evenly between them.
            Automatic failover needs a majority of primaries alive, so at least 3.
        replicas_per_primary: replicas attached to each primary.
        startup_timeout: seconds :meth:`start` may take in total.

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
    ) -> None:
        self._primary_count = _check_count("primaries", primaries, 1)
        self._replicas_per_primary = _check_count("replicas_per_primary", replicas_per_primary, 0)
        self._startup_timeout = _check_seconds("startup_timeout", startup_timeout)
        self._binary = find_server_binary(binary)
        self._servers: list[EmbeddedServer] = []
        self._ids: list[str] = []
        self._killed: set[int] = set()
        self._pending: tuple[int, str, Address] | None = None  # slot, node id, address
        self._owner_pid: int | None = None
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
            if self._owner_pid is not None and self._owner_pid != os.getpid():
                return
            for server in self._servers:
                # Throw-away data: SIGKILL spares a primary's wait for its replicas.
                server.kill()
                server.stop()
            self._servers = []
            self._ids = []
            self._killed = set()
            self._pending = None
            atexit.unregister(self._stop_at_exit)

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- properties ------------------------------------------------------------------------

    @property
    def binary(self) -> str:
        """Path of the server binary."""
        return self._binary

    @property
    def nodes(self) -> list[Address]:
        """Every node started, killed ones included: the initial primaries, then replicas."""
        return [(_HOST, _server_port(server)) for server in self._servers]

    @property
    def startup_nodes(self) -> str:
        """The nodes as ``"127.0.0.1:port,127.0.0.1:port,..."``, for ``REDIS_CLUSTER_NODES``."""
        return ",".join(f"{host}:{port}" for host, port in self.nodes)

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
        found = {view.address for view in views.values() if view.flags & _REPLICA_FLAGS}
        return [address for address in self.nodes if address in found and self._alive(address)]

    def replicas_of(self, primary: Address) -> list[Address]:
        """The live replicas of the primary at ``primary``."""
        views = self._cluster_view()
        ids = [view.node_id for view in views.values() if view.address == primary]
        found = {
            view.address
            for view in views.values()
            if ids and view.master_id == ids[0] and view.flags & _REPLICA_FLAGS
        }
        return [address for address in self.nodes if address in found and self._alive(address)]

    def primary_of(self, key: str | bytes) -> Address:
        """The address of the primary that owns ``key``'s slot now."""
        return self._owner(key_slot(_encode(key)))[1].address

    def client(self, **kwargs: Any) -> RedisCluster:
        """A new ``redis.cluster.RedisCluster`` seeded with the live nodes.

        ``decode_responses=False`` unless given; ``kwargs`` go to ``RedisCluster``.
        """
        options: dict[str, Any] = {"decode_responses": False}
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
        timeout = _check_seconds("timeout", timeout)
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
                    views = _parse_cluster_nodes(_command(address, "CLUSTER", "NODES"))
                    owner = [view for view in views.values() if view.owns(slot)]
                    if not owner or owner[0].node_id == dead_id:
                        return f"{_HOST}:{address[1]} still maps slot {slot} to {dead}"
                    owners.add(owner[0].address)
                if len(owners) != 1:
                    return f"nodes disagree on the owner of slot {slot}: {sorted(owners)}"
                (owner_address,) = owners
                if not _is_primary(owner_address):
                    return f"{owner_address} does not answer ROLE as a primary yet"
                promoted[:] = [owner_address]
                return None

            _wait_for(
                check,
                timeout=timeout,
                what=f"failover of slot {slot} away from {_HOST}:{dead[1]}",
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
        for _ in range(total):
            remaining = max(deadline - time.monotonic(), 0.1)
            self._servers.append(_start_server(self._binary, _CLUSTER_CONFIG, remaining))
        addresses = self.nodes
        self._ids = [str(_command(address, "CLUSTER", "MYID")) for address in addresses]
        primaries = addresses[: self._primary_count]
        for index, address in enumerate(primaries):
            low = index * _SLOT_COUNT // self._primary_count
            high = (index + 1) * _SLOT_COUNT // self._primary_count - 1
            _command(address, "CLUSTER", "ADDSLOTSRANGE", low, high)
            # Distinct epochs up front, as redis-cli does, skip the epoch collision dance.
            _command(address, "CLUSTER", "SET-CONFIG-EPOCH", index + 1)
        for server in self._servers[1:]:
            bus_port = self._bus_port(server)
            _command(addresses[0], "CLUSTER", "MEET", _HOST, _server_port(server), bus_port)
        self._wait_startup(self._all_known, deadline, "all nodes knowing each other")
        for index, address in enumerate(addresses[self._primary_count :]):
            primary = index // self._replicas_per_primary
            _command(address, "CLUSTER", "REPLICATE", self._ids[primary])
        self._wait_startup(self._formed, deadline, "cluster_state:ok with replicas in sync")

    def _wait_startup(self, check: Callable[[], str | None], deadline: float, what: str) -> None:
        _wait_for(
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
            views = _parse_cluster_nodes(_command(address, "CLUSTER", "NODES"))
            if set(views) != expected:
                return f"{_HOST}:{address[1]} knows {len(views)} of {len(expected)} nodes"
            pending = [view.address for view in views.values() if view.failed]
            if pending:
                return f"{_HOST}:{address[1]} is still handshaking with {pending}"
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
            views = _parse_cluster_nodes(_command(address, "CLUSTER", "NODES"))
            for node_id, master_id in expected_master.items():
                view = views.get(node_id)
                if view is None or view.master_id != master_id:
                    return f"{_HOST}:{address[1]} does not see {node_id} as a replica yet"
        for address in self.nodes[self._primary_count :]:
            problem = _replication_problem(address)
            if problem is not None:
                return problem
        return None

    def _state_problem(self, address: Address) -> str | None:
        info = _info_fields(_command(address, "CLUSTER", "INFO"))
        state = info.get("cluster_state")
        if state != "ok":
            return f"{_HOST}:{address[1]} reports cluster_state:{state}"
        return None

    def _cluster_view(self) -> dict[str, _NodeView]:
        errors: list[str] = []
        for address in self._live_nodes():
            try:
                return _parse_cluster_nodes(_command(address, "CLUSTER", "NODES"))
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
                raise RuntimeError(f"cluster node {_HOST}:{server.port} exited\n{self._logs()}")

    def _logs(self) -> str:
        parts = []
        for index, server in enumerate(self._servers):
            role = "primary" if index < self._primary_count else "replica"
            label = f"{'killed ' if index in self._killed else ''}initial {role}"
            parts.append(_server_log(label, server))
        return "\n".join(parts)

    def _stop_at_exit(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()

    def _bus_port(self, server: EmbeddedServer) -> int:
        return int(_command((_HOST, _server_port(server)), "CONFIG", "GET", "cluster-port")[1])


def _encode(key: str | bytes) -> bytes:
    if isinstance(key, str):
        return key.encode()
    if isinstance(key, bytes):
        return key
    raise TypeError(f"key={key!r}: expected str or bytes")


class _SentinelProcess:
    """One ``<binary> sentinel.conf --sentinel`` child in a temporary directory of its own."""

    def __init__(self, binary: str, config_lines: Sequence[str]) -> None:
        self._binary = binary
        self._config_lines = list(config_lines)
        self._dir: str | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def address(self) -> Address:
        return (_HOST, self.port)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float) -> None:
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            try:
                self._launch()
                self._wait_ready(timeout)
                return
            except RuntimeError as exc:
                # The message already carries the log tail.
                self.stop()
                if attempt == _PORT_ATTEMPTS or "already in use" not in str(exc):
                    raise

    def _launch(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="memo-redis-sentinel-")
        self.port = _pick_free_port()
        config = os.path.join(self._dir, "sentinel.conf")
        log_path = os.path.join(self._dir, "sentinel.log")
        lines = [
            f"port {self.port}",
            f"bind {_HOST}",
            "daemonize no",
            f'dir "{self._dir}"',
            f'logfile "{log_path}"',
            *self._config_lines,
        ]
        with open(config, "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
        with open(log_path, "ab") as log:
            try:
                self._process = subprocess.Popen(
                    [self._binary, config, "--sentinel"],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    cwd=self._dir,
                    start_new_session=True,
                    preexec_fn=_die_with_parent(),
                )
            except OSError as exc:
                raise ConfigError(f"binary={self._binary!r}: cannot be executed: {exc}") from exc

    def _wait_ready(self, timeout: float) -> None:
        process = self._process
        assert process is not None
        deadline = time.monotonic() + timeout
        delay = 0.002
        while True:
            code = process.poll()
            if code is not None:
                raise RuntimeError(
                    f"sentinel on port {self.port} exited with code {code} during startup; "
                    f"log:\n{self.log_tail()}"
                )
            if _tcp_answers_ping(self.port):
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError(
                    f"sentinel on port {self.port} did not answer PING within {timeout:g} s; "
                    f"log:\n{self.log_tail()}"
                )
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=min(delay, remaining))
            delay = min(delay * 2, 0.1)

    def kill(self) -> None:
        process = self._process
        if process is not None:
            if process.poll() is None:
                process.kill()
            process.wait()

    def stop(self) -> None:
        self.kill()
        self._process = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def log_tail(self, lines: int = _LOG_LINES) -> str:
        if self._dir is None:
            return "(no log)"
        try:
            with open(os.path.join(self._dir, "sentinel.log"), "rb") as log:
                text = log.read().decode("utf-8", errors="replace")
        except OSError as exc:
            return f"(log unavailable: {exc})"
        return "\n".join(text.strip().splitlines()[-lines:]) or "(empty log)"


def _tcp_answers_ping(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as conn:
        conn.settimeout(1.0)
        try:
            conn.connect((_HOST, port))
            conn.sendall(_PING)
            reply = conn.recv(64)
        except OSError:
            return False
    return reply.startswith(b"+PONG")


def _pairs(reply: Iterable[Any]) -> dict[str, str]:
    """``SENTINEL MASTER``'s flat ``[name, value, ...]`` reply as a dict."""
    items = [str(item) for item in reply]
    return dict(zip(items[::2], items[1::2], strict=True))


class LocalSentinel:
    """A primary with one replica, watched by Sentinel processes, all private and local.

    Args:
        binary: path (or bare name on ``PATH``) of ``redis-server`` / ``valkey-server``
            (the same binary runs the sentinels with ``--sentinel``); ``None`` uses
            :func:`memo_redis.embedded.find_server_binary`.
        service: the monitored service name (``REDIS_SENTINEL_SERVICE``).
        sentinels: number of sentinels; the quorum is a majority of them.
        startup_timeout: seconds :meth:`start` may take in total.

    :meth:`start` returns once the replica is in sync and every sentinel knows the primary,
    the replica and all other sentinels (about 2 s: sentinels discover each other through
    hello messages sent every 2 s). Down-after is 1 s, so a failover takes a few seconds.

    Raises:
        ConfigError: a bad argument or binary (checked here, before anything is started).
    """

    def __init__(
        self,
        binary: str | None = None,
        *,
        service: str = "mymaster",
        sentinels: int = 3,
        startup_timeout: float = 30.0,
    ) -> None:
        if not isinstance(service, str) or not service or not service.isprintable():
            raise ConfigError(f"service={service!r}: expected a non-empty name")
        if any(char.isspace() or char == '"' for char in service):
            raise ConfigError(f"service={service!r}: must not contain spaces or quotes")
        self._service = service
        self._sentinel_count = _check_count("sentinels", sentinels, 1)
        self._startup_timeout = _check_seconds("startup_timeout", startup_timeout)
        self._binary = find_server_binary(binary)
        self._servers: list[EmbeddedServer] = []
        self._sentinels: list[_SentinelProcess] = []
        self._killed: Address | None = None
        self._owner_pid: int | None = None
        self._lock = threading.RLock()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> LocalSentinel:
        """Start primary, replica and sentinels; return ``self`` (a no-op when started).

        Raises:
            RuntimeError: a process failed to start (the message ends with its log).
            TimeoutError: replication or sentinel discovery did not settle in time.
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
        """Kill every process and delete their directories. Idempotent."""
        with self._lock:
            if self._owner_pid is not None and self._owner_pid != os.getpid():
                return
            for sentinel in self._sentinels:
                sentinel.stop()
            for server in self._servers:
                server.kill()
                server.stop()
            self._sentinels = []
            self._servers = []
            self._killed = None
            atexit.unregister(self._stop_at_exit)

    def __enter__(self) -> LocalSentinel:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- properties ------------------------------------------------------------------------

    @property
    def binary(self) -> str:
        """Path of the server binary."""
        return self._binary

    @property
    def service(self) -> str:
        """The monitored service name."""
        return self._service

    @property
    def sentinel_addresses(self) -> list[Address]:
        """The sentinels' ``(host, port)`` pairs."""
        return [sentinel.address for sentinel in self._sentinels]

    @property
    def sentinels_env(self) -> str:
        """The sentinels as ``"127.0.0.1:port,..."``, for ``REDIS_SENTINELS``."""
        return ",".join(f"{host}:{port}" for host, port in self.sentinel_addresses)

    @property
    def data_nodes(self) -> list[Address]:
        """The initial primary and the initial replica."""
        return [(_HOST, _server_port(server)) for server in self._servers]

    def primary_address(self) -> Address:
        """The primary's address according to the first sentinel that answers."""
        self._check_started()
        errors: list[str] = []
        for address in self.sentinel_addresses:
            try:
                reply = _command(address, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self._service)
            except (redis.RedisError, OSError) as exc:
                errors.append(f"{address}: {exc}")
                continue
            if reply:
                return (str(reply[0]), int(reply[1]))
            errors.append(f"{address}: does not know {self._service!r}")
        raise RuntimeError(f"no sentinel reported the primary: {errors}")

    def sentinel(self, **kwargs: Any) -> Sentinel:
        """A new ``redis.sentinel.Sentinel`` on the sentinels; ``kwargs`` go to its connections."""
        sentinel: Callable[..., Sentinel] = Sentinel
        return sentinel(self.sentinel_addresses, **kwargs)

    def client(self, **kwargs: Any) -> redis.Redis:
        """A ``redis.Redis`` on the current primary via ``Sentinel.master_for(service)``."""
        options: dict[str, Any] = {"decode_responses": False}
        options.update(kwargs)
        master_for: Callable[..., redis.Redis] = self.sentinel().master_for
        return master_for(self._service, **options)

    # -- fault injection -------------------------------------------------------------------

    def kill_primary(self) -> Address:
        """SIGKILL the current primary (as the sentinels report it) and return its address."""
        with self._lock:
            address = self.primary_address()
            for server in self._servers:
                if (_HOST, server.port) == address:
                    server.kill()
                    self._killed = address
                    return address
            raise RuntimeError(f"the sentinels report an unknown primary {address}")

    def wait_for_failover(self, timeout: float = 30.0) -> Address:
        """Wait until every sentinel reports a new primary that answers ``ROLE`` as master.

        Returns the new primary's address.

        Raises:
            RuntimeError: no primary was killed with :meth:`kill_primary`.
            TimeoutError: the failover did not complete within ``timeout`` seconds.
        """
        timeout = _check_seconds("timeout", timeout)
        with self._lock:
            killed = self._killed
            if killed is None:
                raise RuntimeError("wait_for_failover() needs a kill_primary() before it")
            promoted: list[Address] = []

            def check() -> str | None:
                self._check_processes()
                reported: set[Address] = set()
                for address in self.sentinel_addresses:
                    state = _pairs(_command(address, "SENTINEL", "MASTER", self._service))
                    current = (state.get("ip", "?"), int(state.get("port", "0")))
                    if current == killed:
                        return f"sentinel {_HOST}:{address[1]} still reports {killed}"
                    if state.get("flags") != "master":
                        return f"sentinel {_HOST}:{address[1]} flags {state.get('flags')!r}"
                    reported.add(current)
                if len(reported) != 1:
                    return f"sentinels disagree on the primary: {sorted(reported)}"
                (primary,) = reported
                if not _is_primary(primary):
                    return f"{primary} does not answer ROLE as a primary yet"
                promoted[:] = [primary]
                return None

            _wait_for(
                check,
                timeout=timeout,
                what=f"sentinel failover away from {_HOST}:{killed[1]}",
                logs=self._logs,
            )
            self._killed = None
            return promoted[0]

    def __repr__(self) -> str:
        return f"<LocalSentinel service={self._service!r} sentinels={self.sentinels_env!r}>"

    # -- internals -------------------------------------------------------------------------

    def _start_locked(self) -> None:
        deadline = time.monotonic() + self._startup_timeout

        def remaining() -> float:
            return max(deadline - time.monotonic(), 0.1)

        primary = _start_server(self._binary, _REPLICATION_CONFIG, remaining())
        self._servers.append(primary)
        replica = _start_server(self._binary, _REPLICATION_CONFIG, remaining())
        self._servers.append(replica)
        primary_address, replica_address = self.data_nodes
        _command(replica_address, "REPLICAOF", _HOST, primary_address[1])
        # Attached before the sentinels start, the replica is in their first INFO of the
        # primary; discovered later, it would wait for the next INFO, 10 s on.
        _wait_for(
            lambda: self._replication_ready(replica_address),
            timeout=self._startup_timeout,
            deadline=deadline,
            what="sentinel topology startup (replica in sync)",
            logs=self._logs,
        )
        quorum = self._sentinel_count // 2 + 1
        config = [
            "sentinel resolve-hostnames no",
            f"sentinel monitor {self._service} {_HOST} {primary_address[1]} {quorum}",
            f"sentinel down-after-milliseconds {self._service} {_DOWN_AFTER_MS}",
            f"sentinel failover-timeout {self._service} {_SENTINEL_FAILOVER_TIMEOUT_MS}",
        ]
        for _ in range(self._sentinel_count):
            sentinel = _SentinelProcess(self._binary, config)
            self._sentinels.append(sentinel)
            sentinel.start(remaining())
        _wait_for(
            self._sentinels_ready,
            timeout=self._startup_timeout,
            deadline=deadline,
            what="sentinel topology startup (sentinels discovering each other)",
            logs=self._logs,
        )

    def _replication_ready(self, replica: Address) -> str | None:
        self._check_processes()
        return _replication_problem(replica)

    def _sentinels_ready(self) -> str | None:
        self._check_processes()
        primary, replica = self.data_nodes
        for address in self.sentinel_addresses:
            state = _pairs(_command(address, "SENTINEL", "MASTER", self._service))
            label = f"sentinel {_HOST}:{address[1]}"
            if (state.get("ip"), state.get("port")) != (primary[0], str(primary[1])):
                return f"{label} monitors {state.get('ip')}:{state.get('port')}"
            if state.get("flags") != "master":
                return f"{label} sees the primary with flags {state.get('flags')!r}"
            others = int(state.get("num-other-sentinels", "0"))
            if others != self._sentinel_count - 1:
                return f"{label} knows {others} of {self._sentinel_count - 1} other sentinels"
            replicas = [
                _pairs(item) for item in _command(address, "SENTINEL", "REPLICAS", self._service)
            ]
            ready = [
                item
                for item in replicas
                if (item.get("ip"), item.get("port")) == (replica[0], str(replica[1]))
                and item.get("flags") in _REPLICA_FLAGS
                and item.get("master-link-status") == "ok"
            ]
            if not ready:
                return f"{label} does not see the replica {replica} in sync yet"
        return None

    def _check_started(self) -> None:
        if not self._servers:
            raise RuntimeError("the sentinel topology is not running: call start() first")

    def _check_processes(self) -> None:
        for server in self._servers:
            if (_HOST, server.port) != self._killed and not server.running:
                raise RuntimeError(f"server {_HOST}:{server.port} exited\n{self._logs()}")
        for sentinel in self._sentinels:
            if not sentinel.running:
                raise RuntimeError(f"sentinel {_HOST}:{sentinel.port} exited\n{self._logs()}")

    def _logs(self) -> str:
        labels = ("initial primary", "initial replica")
        parts = [_server_log(labels[index], server) for index, server in enumerate(self._servers)]
        parts += [
            f"--- sentinel {_HOST}:{sentinel.port} log tail:\n{sentinel.log_tail()}"
            for sentinel in self._sentinels
        ]
        return "\n".join(parts)

    def _stop_at_exit(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()


def _server_port(server: EmbeddedServer) -> int:
    assert server.port is not None
    return server.port
