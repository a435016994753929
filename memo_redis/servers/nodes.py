"""What :class:`LocalCluster` and :class:`LocalSentinel` share: data nodes, admin, waits.

Starting a data node on a free port (:func:`start_node`), one-shot admin commands on a fresh
connection (:func:`command`), reading replies (:func:`info_fields`, :func:`is_primary`,
:func:`replication_problem`), bounded polling (:func:`wait_for`), argument checks, and the TLS
material of a topology (:class:`TopologyTLS`). With TLS, every admin connection presents the
client certificate, so it passes whatever ``tls-auth-clients`` says.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from typing import Any

import redis

from memo_redis.exceptions import ConfigError
from memo_redis.servers.binary import require_tls
from memo_redis.servers.embedded import EmbeddedServer
from memo_redis.servers.process import HOST, Address, pick_free_port
from memo_redis.servers.tls import (
    AuthClients,
    TLSFiles,
    check_auth_clients,
    generate_tls_files,
    require_cryptography,
)

__all__ = [
    "LOG_LINES",
    "MASTER_ROLES",
    "REPLICATION_CONFIG",
    "REPLICA_FLAGS",
    "TopologyTLS",
    "check_count",
    "check_seconds",
    "command",
    "info_fields",
    "is_primary",
    "node_log",
    "node_port",
    "replication_problem",
    "start_node",
    "wait_for",
]

LOG_LINES = 15
"""Lines of each process's log quoted in errors."""

REPLICATION_CONFIG = {"repl-diskless-sync": "yes", "repl-diskless-sync-delay": "0"}
"""Diskless sync without delay: a replica's first full sync would otherwise wait 5 s."""

MASTER_ROLES = frozenset({"master", "primary"})
"""What ``ROLE`` and ``INFO replication`` call a primary (Redis, Valkey)."""

REPLICA_FLAGS = frozenset({"slave", "replica"})
"""What ``CLUSTER NODES`` and ``SENTINEL REPLICAS`` call a replica."""

_PORT_ATTEMPTS = 3
_ADMIN_TIMEOUT = 1.0


def check_count(name: str, value: object, minimum: int) -> int:
    """``value`` if it is an int of at least ``minimum``, else :class:`ConfigError`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name}={value!r}: expected an int >= {minimum}")
    return value


def check_seconds(name: str, value: object) -> float:
    """``value`` as a float if it is a positive number, else :class:`ConfigError`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigError(f"{name}={value!r}: expected a positive number of seconds")
    return float(value)


class TopologyTLS:
    """The TLS material of a topology: given files, or throw-away ones made per start.

    Args:
        binary: the server binary, which must have been built with TLS when ``tls`` is set.
        tls: ``False`` (plain TCP), ``True`` (:meth:`make` writes new files into a temporary
            directory that :meth:`remove` deletes) or :class:`TLSFiles` to use as they are.
        auth_clients: the nodes' ``tls-auth-clients``.

    Raises:
        ConfigError: a bad argument, a binary without TLS, or ``tls=True`` without the
            ``cryptography`` package.
    """

    def __init__(self, binary: str, tls: bool | TLSFiles, auth_clients: AuthClients) -> None:
        if not isinstance(tls, (bool, TLSFiles)):
            raise ConfigError(f"tls={tls!r}: expected a bool or TLSFiles")
        if check_auth_clients(auth_clients) != "no" and tls is False:
            raise ConfigError(f"tls_auth_clients={auth_clients!r} needs tls")
        if tls is not False:
            require_tls(binary, f"tls={tls!r}")
        if tls is True:
            require_cryptography("tls=True (certificates made for the topology)")
        self.enabled = tls is not False
        """Whether the topology serves TLS only."""
        self.auth_clients: AuthClients = auth_clients
        """The nodes' ``tls-auth-clients``."""
        self._given = tls if isinstance(tls, TLSFiles) else None
        self._made: str | None = None
        self.files: TLSFiles | None = self._given
        """The files in use: given, made by :meth:`make`, or ``None``."""

    def make(self) -> None:
        """With ``tls=True``, write a new CA and certificates into a new temporary directory."""
        if self.enabled and self._given is None:
            self.remove()
            self._made = tempfile.mkdtemp(prefix="memo-redis-tls-")
            self.files = generate_tls_files(self._made)

    def remove(self) -> None:
        """Delete the files :meth:`make` wrote (given files are left alone)."""
        if self._made is not None:
            shutil.rmtree(self._made, ignore_errors=True)
            self._made = None
            self.files = self._given

    def client_kwargs(self) -> dict[str, Any]:
        """redis-py arguments for a client of the topology: ``ssl=True`` and the ``ssl_*``."""
        if self.files is None:
            return {}
        return {"ssl": True, **self.files.ssl_kwargs()}


def command(address: Address, *args: Any, tls: TLSFiles | None = None) -> Any:
    """Run one command on a fresh connection and return the server's raw reply.

    A bare connection skips redis-py's reply parsers, which differ between commands and
    versions (``CONFIG GET`` becomes a dict, ``CLUSTER NODES`` stays a string). With ``tls``
    the connection is TLS, trusting its CA and presenting its client certificate.
    """
    # RESP2 pinned: the flat replies parsed below are the same on every server version.
    options: dict[str, Any] = {}
    connect: Callable[..., redis.Connection] = redis.Connection
    if tls is not None:
        connect = redis.SSLConnection
        options = tls.ssl_kwargs()
    connection = connect(
        host=address[0],
        port=address[1],
        protocol=2,
        decode_responses=True,
        socket_timeout=_ADMIN_TIMEOUT,
        socket_connect_timeout=_ADMIN_TIMEOUT,
        **options,
    )
    try:
        send: Callable[..., None] = connection.send_command
        send(*args)
        return connection.read_response()
    finally:
        disconnect: Callable[[], None] = connection.disconnect
        disconnect()


def info_fields(text: str) -> dict[str, str]:
    """An ``INFO`` / ``CLUSTER INFO`` reply as a dict of its ``name:value`` lines."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep:
            fields[name.strip()] = value.strip()
    return fields


def is_primary(address: Address, tls: TLSFiles | None = None) -> bool:
    """Whether the server at ``address`` answers ``ROLE`` as a primary."""
    role = command(address, "ROLE", tls=tls)
    return bool(role) and str(role[0]) in MASTER_ROLES


def replication_problem(address: Address, tls: TLSFiles | None = None) -> str | None:
    """Why the replica at ``address`` is not yet in sync with its primary, or ``None``."""
    info = info_fields(command(address, "INFO", "replication", tls=tls))
    if info.get("role") in MASTER_ROLES:
        return f"{HOST}:{address[1]} is not a replica yet"
    if info.get("master_link_status") != "up":
        return f"replica {HOST}:{address[1]} link to its primary is not up"
    if info.get("master_sync_in_progress", "0") != "0":
        return f"replica {HOST}:{address[1]} is still syncing"
    return None


def wait_for(
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

    Raises:
        TimeoutError: not done in time; names the last problem and ends with ``logs()``.
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


def start_node(
    binary: str, config: dict[str, str], timeout: float, tls: TopologyTLS | None = None
) -> EmbeddedServer:
    """Start an EmbeddedServer on a free port, retrying when another process takes a port.

    With ``cluster-enabled`` in ``config`` the cluster bus gets a free port of its own. With
    ``tls`` enabled the port serves TLS only and replication runs over TLS.
    """
    tls_options: dict[str, Any] = {}
    if tls is not None and tls.files is not None:
        config = {**config, "tls-replication": "yes"}
        tls_options = {"tls": tls.files, "tls_auth_clients": tls.auth_clients}
    for attempt in range(1, _PORT_ATTEMPTS + 1):
        options = dict(config)
        port = pick_free_port()
        if "cluster-enabled" in options:
            # The bus port defaults to port + 10000, which may not exist above 55535.
            bus = pick_free_port()
            while bus == port:
                bus = pick_free_port()
            options["cluster-port"] = str(bus)
        server = EmbeddedServer(
            binary, tcp=True, port=port, config=options, startup_timeout=timeout, **tls_options
        )
        try:
            return server.start()
        except RuntimeError as exc:
            if attempt == _PORT_ATTEMPTS or "already in use" not in str(exc):
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def node_port(server: EmbeddedServer) -> int:
    """The TCP port of a node started by :func:`start_node`."""
    assert server.port is not None
    return server.port


def node_log(label: str, server: EmbeddedServer) -> str:
    """A node's log tail under a ``--- <label> <address> log tail:`` heading."""
    return f"--- {label} {HOST}:{server.port} log tail:\n{server.log_tail(LOG_LINES)}"
