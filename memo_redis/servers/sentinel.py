"""A throw-away local Sentinel topology: a primary, a replica and Sentinel processes.

:class:`LocalSentinel` starts real ``redis-server`` / ``valkey-server`` processes (the binary
that :func:`memo_redis.servers.find_server_binary` picks; the sentinels run it with
``--sentinel``) on free TCP ports of ``127.0.0.1``, each in a temporary directory of its own,
with persistence off::

    with LocalSentinel() as topology:              # a primary, a replica, 3 sentinels
        os.environ["REDIS_SENTINELS"] = topology.sentinels_env
        topology.kill_primary()
        topology.wait_for_failover(timeout=20)

Failure detection is tuned for tests (down-after 1 s), so a failover takes a few seconds. Every
wait is bounded; a timeout raises :class:`TimeoutError` naming the state still missing and
ending with each process's log tail.

:meth:`LocalSentinel.stop` kills every process and deletes the directories; an atexit hook stops
topologies that were never stopped, and on Linux the processes die with the thread that started
them.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import redis
from redis.sentinel import Sentinel

from memo_redis.exceptions import ConfigError
from memo_redis.servers.binary import find_server_binary
from memo_redis.servers.embedded import EmbeddedServer
from memo_redis.servers.nodes import (
    REPLICA_FLAGS,
    REPLICATION_CONFIG,
    TopologyTLS,
    check_count,
    check_seconds,
    command,
    is_primary,
    node_log,
    node_port,
    replication_problem,
    start_node,
    wait_for,
)
from memo_redis.servers.process import HOST, Address, ProcessOwner
from memo_redis.servers.sentinel_process import SentinelProcess
from memo_redis.servers.tls import AuthClients, TLSFiles

__all__ = ["LocalSentinel"]

_DOWN_AFTER_MS = 1000
_SENTINEL_FAILOVER_TIMEOUT_MS = 5000


def _pairs(reply: Iterable[Any]) -> dict[str, str]:
    """``SENTINEL MASTER``'s flat ``[name, value, ...]`` reply as a dict."""
    items = [str(item) for item in reply]
    return dict(zip(items[::2], items[1::2], strict=True))


class LocalSentinel(ProcessOwner):
    """A primary with one replica, watched by Sentinel processes, all private and local.

    Args:
        binary: path (or bare name on ``PATH``) of ``redis-server`` / ``valkey-server``
            (the same binary runs the sentinels with ``--sentinel``); ``None`` uses
            :func:`memo_redis.servers.find_server_binary`.
        service: the monitored service name (``REDIS_SENTINEL_SERVICE``).
        sentinels: number of sentinels; the quorum is a majority of them.
        startup_timeout: seconds :meth:`start` may take in total.
        tls: run TLS only: data nodes, replication (``tls-replication``) and the sentinels,
            which also talk TLS to the nodes and to each other. ``True`` makes a throw-away CA
            and certificates at each start (:attr:`tls_files`); or pass
            :class:`~memo_redis.servers.tls.TLSFiles`.
        tls_auth_clients: ``tls-auth-clients`` of the nodes and sentinels (``"no"``, ``"yes"``,
            ``"optional"``); they present the server certificate to each other.

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
        tls: bool | TLSFiles = False,
        tls_auth_clients: AuthClients = "no",
    ) -> None:
        if not isinstance(service, str) or not service or not service.isprintable():
            raise ConfigError(f"service={service!r}: expected a non-empty name")
        if any(char.isspace() or char == '"' for char in service):
            raise ConfigError(f"service={service!r}: must not contain spaces or quotes")
        self._service = service
        self._sentinel_count = check_count("sentinels", sentinels, 1)
        self._startup_timeout = check_seconds("startup_timeout", startup_timeout)
        self._binary = find_server_binary(binary)
        self._tls = TopologyTLS(self._binary, tls, tls_auth_clients)
        self._servers: list[EmbeddedServer] = []
        self._sentinels: list[SentinelProcess] = []
        self._killed: Address | None = None
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
            if not self._owns_processes():
                return
            for sentinel in self._sentinels:
                sentinel.stop()
            for server in self._servers:
                server.kill()
                server.stop()
            self._sentinels = []
            self._servers = []
            self._killed = None
            self._tls.remove()
            atexit.unregister(self._stop_at_exit)

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
        return [(HOST, node_port(server)) for server in self._servers]

    def primary_address(self) -> Address:
        """The primary's address according to the first sentinel that answers."""
        self._check_started()
        errors: list[str] = []
        for address in self.sentinel_addresses:
            try:
                reply = self._command(address, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self._service)
            except (redis.RedisError, OSError) as exc:
                errors.append(f"{address}: {exc}")
                continue
            if reply:
                return (str(reply[0]), int(reply[1]))
            errors.append(f"{address}: does not know {self._service!r}")
        raise RuntimeError(f"no sentinel reported the primary: {errors}")

    @property
    def tls_files(self) -> TLSFiles | None:
        """The CA and certificates of a TLS topology (``tls=True``: made at start), or ``None``."""
        return self._tls.files

    def sentinel(self, **kwargs: Any) -> Sentinel:
        """A new ``redis.sentinel.Sentinel`` on the sentinels; ``kwargs`` go to its connections.

        A TLS topology's options go to the connections to the nodes and to the sentinels
        (``sentinel_kwargs``) unless given.
        """
        secure = self._tls.client_kwargs()
        options: dict[str, Any] = {**secure, "sentinel_kwargs": secure} if secure else {}
        options.update(kwargs)
        sentinel: Callable[..., Sentinel] = Sentinel
        return sentinel(self.sentinel_addresses, **options)

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
                if (HOST, server.port) == address:
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
        timeout = check_seconds("timeout", timeout)
        with self._lock:
            killed = self._killed
            if killed is None:
                raise RuntimeError("wait_for_failover() needs a kill_primary() before it")
            promoted: list[Address] = []

            def check() -> str | None:
                self._check_processes()
                reported: set[Address] = set()
                for address in self.sentinel_addresses:
                    state = _pairs(self._command(address, "SENTINEL", "MASTER", self._service))
                    current = (state.get("ip", "?"), int(state.get("port", "0")))
                    if current == killed:
                        return f"sentinel {HOST}:{address[1]} still reports {killed}"
                    if state.get("flags") != "master":
                        return f"sentinel {HOST}:{address[1]} flags {state.get('flags')!r}"
                    reported.add(current)
                if len(reported) != 1:
                    return f"sentinels disagree on the primary: {sorted(reported)}"
                (primary,) = reported
                if not is_primary(primary, self._tls.files):
                    return f"{primary} does not answer ROLE as a primary yet"
                promoted[:] = [primary]
                return None

            wait_for(
                check,
                timeout=timeout,
                what=f"sentinel failover away from {HOST}:{killed[1]}",
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

        self._tls.make()
        primary = start_node(self._binary, REPLICATION_CONFIG, remaining(), self._tls)
        self._servers.append(primary)
        replica = start_node(self._binary, REPLICATION_CONFIG, remaining(), self._tls)
        self._servers.append(replica)
        primary_address, replica_address = self.data_nodes
        self._command(replica_address, "REPLICAOF", HOST, primary_address[1])
        # Attached before the sentinels start, the replica is in their first INFO of the
        # primary; discovered later, it would wait for the next INFO, 10 s on.
        wait_for(
            lambda: self._replication_ready(replica_address),
            timeout=self._startup_timeout,
            deadline=deadline,
            what="sentinel topology startup (replica in sync)",
            logs=self._logs,
        )
        quorum = self._sentinel_count // 2 + 1
        config = [
            "sentinel resolve-hostnames no",
            f"sentinel monitor {self._service} {HOST} {primary_address[1]} {quorum}",
            f"sentinel down-after-milliseconds {self._service} {_DOWN_AFTER_MS}",
            f"sentinel failover-timeout {self._service} {_SENTINEL_FAILOVER_TIMEOUT_MS}",
        ]
        for _ in range(self._sentinel_count):
            sentinel = SentinelProcess(self._binary, config, self._tls)
            self._sentinels.append(sentinel)
            sentinel.start(remaining())
        wait_for(
            self._sentinels_ready,
            timeout=self._startup_timeout,
            deadline=deadline,
            what="sentinel topology startup (sentinels discovering each other)",
            logs=self._logs,
        )

    def _replication_ready(self, replica: Address) -> str | None:
        self._check_processes()
        return replication_problem(replica, self._tls.files)

    def _sentinels_ready(self) -> str | None:
        self._check_processes()
        primary, replica = self.data_nodes
        for address in self.sentinel_addresses:
            state = _pairs(self._command(address, "SENTINEL", "MASTER", self._service))
            label = f"sentinel {HOST}:{address[1]}"
            if (state.get("ip"), state.get("port")) != (primary[0], str(primary[1])):
                return f"{label} monitors {state.get('ip')}:{state.get('port')}"
            if state.get("flags") != "master":
                return f"{label} sees the primary with flags {state.get('flags')!r}"
            others = int(state.get("num-other-sentinels", "0"))
            if others != self._sentinel_count - 1:
                return f"{label} knows {others} of {self._sentinel_count - 1} other sentinels"
            replicas = [
                _pairs(item)
                for item in self._command(address, "SENTINEL", "REPLICAS", self._service)
            ]
            ready = [
                item
                for item in replicas
                if (item.get("ip"), item.get("port")) == (replica[0], str(replica[1]))
                and item.get("flags") in REPLICA_FLAGS
                and item.get("master-link-status") == "ok"
            ]
            if not ready:
                return f"{label} does not see the replica {replica} in sync yet"
        return None

    def _command(self, address: Address, *args: Any) -> Any:
        return command(address, *args, tls=self._tls.files)

    def _check_started(self) -> None:
        if not self._servers:
            raise RuntimeError("the sentinel topology is not running: call start() first")

    def _check_processes(self) -> None:
        for server in self._servers:
            if (HOST, server.port) != self._killed and not server.running:
                raise RuntimeError(f"server {HOST}:{server.port} exited\n{self._logs()}")
        for sentinel in self._sentinels:
            if not sentinel.running:
                raise RuntimeError(f"sentinel {HOST}:{sentinel.port} exited\n{self._logs()}")

    def _logs(self) -> str:
        labels = ("initial primary", "initial replica")
        parts = [node_log(labels[index], server) for index, server in enumerate(self._servers)]
        parts += [
            f"--- sentinel {HOST}:{sentinel.port} log tail:\n{sentinel.log_tail()}"
            for sentinel in self._sentinels
        ]
        return "\n".join(parts)
