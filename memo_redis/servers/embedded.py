"""Private, throw-away Redis-compatible servers for tests, examples and local development.

An :class:`EmbeddedServer` runs ``redis-server`` (or ``valkey-server``) as a child process in a
fresh temporary directory, listening on a unix socket inside it and, on request, on an
ephemeral TCP port of ``127.0.0.1``. Persistence is off, so nothing outlives :meth:`stop`::

    with EmbeddedServer(tcp=True) as server:
        server.client().set(b"k", b"v")
        print(server.url)      # unix:///tmp/memo-redis-k2j4x9/redis.sock
        print(server.tcp_url)  # redis://127.0.0.1:41873/0

With ``tls=True`` the TCP port speaks TLS only (``--port 0 --tls-port N``) with throw-away
certificates (:mod:`memo_redis.servers.tls`); ``tls_url`` and ``tls_client()`` reach it.

redis-py and :mod:`memo_redis.config` are imported when :meth:`EmbeddedServer.client` and
:meth:`EmbeddedServer.args` are called.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from memo_redis.exceptions import ConfigError
from memo_redis.servers.binary import find_server_binary, require_tls, server_version
from memo_redis.servers.process import (
    ProcessOwner,
    answers_ping,
    pick_free_port,
    read_log_tail,
    spawn,
)
from memo_redis.servers.tls import (
    AuthClients,
    TLSFiles,
    check_auth_clients,
    generate_tls_files,
    require_cryptography,
)

if TYPE_CHECKING:
    import redis

    from memo_redis.config import RedisArgs

__all__ = ["EmbeddedServer"]

# Options EmbeddedServer sets itself; overriding them through `config` would break
# start/stop/restart or point the server at a shared location.
_MANAGED_OPTIONS = frozenset({"port", "bind", "unixsocket", "dir", "daemonize", "logfile"})
_MANAGED_TLS_OPTIONS = frozenset(
    {"tls-port", "tls-cert-file", "tls-key-file", "tls-ca-cert-file", "tls-auth-clients"}
)
_SOCKET_NAME = "redis.sock"
_LOG_NAME = "server.log"
_TLS_DIR = "tls"
# sun_path holds 108 bytes including the trailing NUL on Linux (104 on macOS).
_MAX_SOCKET_PATH = 100
_PORT_ATTEMPTS = 3
_STOP_TIMEOUT = 10.0


class _StartupFailed(RuntimeError):
    """The server process exited or never answered PING (internal; surfaces as RuntimeError)."""

    def __init__(self, message: str, log_tail: str) -> None:
        super().__init__(message)
        self.log_tail = log_tail


class EmbeddedServer(ProcessOwner):
    """A private Redis-compatible server in a temporary directory, owned by this process.

    Args:
        binary: path (or bare name on ``PATH``) of ``redis-server`` / ``valkey-server``;
            ``None`` uses :func:`find_server_binary`.
        tcp: also listen on ``127.0.0.1`` (the unix socket is always on).
        port: the TCP port (needs ``tcp=True`` or ``tls``); ``None`` picks a free ephemeral port.
        config: extra server options, passed as ``--name value``, e.g.
            ``{"maxmemory": "1mb", "maxmemory-policy": "noeviction"}``. The options the class
            manages (``port``, ``bind``, ``unixsocket``, ``dir``, ``daemonize``, ``logfile``)
            are rejected.
        startup_timeout: seconds :meth:`start` waits for the server to answer PING.
        tls: serve TLS only on the TCP port (implies ``tcp=True``): ``True`` makes a throw-away
            CA and certificates in the server's directory at each fresh start (needs the
            ``cryptography`` package), or pass :class:`~memo_redis.servers.tls.TLSFiles` from
            :func:`~memo_redis.servers.tls.generate_tls_files`. The unix socket stays plain
            (it is private to this user) and serves readiness checks and :meth:`client`.
        tls_auth_clients: the server's ``tls-auth-clients``: ``"no"`` (the default here; the
            server's own default is ``"yes"``), ``"yes"`` (mutual TLS: clients must present a
            certificate the CA signed) or ``"optional"``.

    The server runs with ``--save "" --appendonly no``: :meth:`stop` and :meth:`kill` lose all
    data. :meth:`stop` removes the temporary directory; an atexit hook stops servers that were
    never stopped, and on Linux a server started from the main thread is SIGKILLed by the kernel
    if its parent process dies, even by SIGKILL.

    Raises:
        ConfigError: a bad argument or binary (checked here, before anything is started),
            including a binary built without TLS support when ``tls`` is set.
    """

    def __init__(
        self,
        binary: str | None = None,
        *,
        tcp: bool = False,
        port: int | None = None,
        config: Mapping[str, str] | None = None,
        startup_timeout: float = 10.0,
        tls: bool | TLSFiles = False,
        tls_auth_clients: AuthClients = "no",
    ) -> None:
        if not isinstance(tls, (bool, TLSFiles)):
            raise ConfigError(f"tls={tls!r}: expected a bool or TLSFiles")
        if check_auth_clients(tls_auth_clients) != "no" and tls is False:
            raise ConfigError(f"tls_auth_clients={tls_auth_clients!r} needs tls")
        if port is not None:
            if not tcp and tls is False:
                raise ConfigError(f"port={port!r} needs tcp=True")
            if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
                raise ConfigError(f"port={port!r}: expected an int between 1 and 65535")
        if isinstance(startup_timeout, bool) or not isinstance(startup_timeout, (int, float)):
            raise ConfigError(f"startup_timeout={startup_timeout!r}: expected a number of seconds")
        if not startup_timeout > 0:
            raise ConfigError(f"startup_timeout={startup_timeout!r}: must be positive")
        self._config = _check_config(config, tls=tls is not False)
        self._binary = find_server_binary(binary)
        if tls is not False:
            require_tls(self._binary, f"tls={tls!r}")
        if tls is True:
            require_cryptography("tls=True (certificates made for the server)")
        self._tcp = tcp or tls is not False
        self._tls = tls is not False
        self._tls_files: TLSFiles | None = tls if isinstance(tls, TLSFiles) else None
        self._generate_tls = tls is True
        self._tls_auth_clients: AuthClients = tls_auth_clients
        self._requested_port = port
        self._startup_timeout = float(startup_timeout)
        self._port: int | None = port
        self._dir: str | None = None
        self._last_dir: str | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._atexit_registered = False
        self._version_info: tuple[str, str] | None = None
        self._log_offset = 0
        self._lock = threading.RLock()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> EmbeddedServer:
        """Start the server and wait until it answers PING on its unix socket; return ``self``.

        A no-op when already running. After :meth:`kill` it starts again on the same socket
        path and port; after :meth:`stop` it starts in a new temporary directory.

        Raises:
            RuntimeError: the process exited early or did not answer within
                ``startup_timeout``; the message ends with the tail of the server's log.
        """
        with self._lock:
            if self.running:
                return self
            try:
                self._start_locked()
            except BaseException:
                # Includes KeyboardInterrupt during startup: never leave a half-started server.
                self._stop_locked()
                raise
            return self

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s) and delete its directory.

        Idempotent. Does nothing in a forked child that inherited this object.
        """
        with self._lock:
            self._stop_locked()

    def kill(self) -> None:
        """SIGKILL the server now and wait for it, keeping the directory for :meth:`restart`.

        Simulates a crash: clients see connection errors until the server is restarted.
        """
        with self._lock:
            process = self._process
            if process is None or not self._owns_processes():
                return
            if process.poll() is None:
                process.kill()
            process.wait()

    def restart(self) -> EmbeddedServer:
        """Stop the server if running (SIGTERM), then start it on the same socket path and port.

        Data is lost (persistence is off). Returns ``self``.

        Raises:
            RuntimeError: the server was never started, or starting it again failed (for
                example because another process took the TCP port meanwhile).
        """
        with self._lock:
            if self._last_dir is None:
                raise RuntimeError("restart() needs a server that was started before")
            if self.running:
                self._terminate()
            if self._dir is None:
                try:
                    os.mkdir(self._last_dir, 0o700)
                except OSError as exc:
                    raise RuntimeError(
                        f"cannot recreate the server directory {self._last_dir!r}: {exc}"
                    ) from exc
                self._dir = self._last_dir
            return self.start()

    # -- properties --------------------------------------------------------------------------

    @property
    def binary(self) -> str:
        """Path of the server binary."""
        return self._binary

    @property
    def socket_path(self) -> str:
        """Path of the unix socket (valid once started; kept across :meth:`restart`)."""
        if self._last_dir is None:
            raise RuntimeError("the server has not been started: call start() first")
        return os.path.join(self._last_dir, _SOCKET_NAME)

    @property
    def port(self) -> int | None:
        """The TCP port; ``None`` without ``tcp=True`` or before a free port is picked."""
        return self._port

    @property
    def pid(self) -> int | None:
        """Process id of the running server, or ``None`` when it is not running."""
        return self._process.pid if self.running and self._process is not None else None

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def version(self) -> str:
        """The server version reported by ``--version``, e.g. ``"7.0.15"``."""
        return self._probe_version()[1]

    @property
    def engine(self) -> str:
        """``"valkey"`` or ``"redis"``, from the binary's ``--version`` banner."""
        return self._probe_version()[0]

    @property
    def url(self) -> str:
        """``unix://<socket_path>``."""
        return f"unix://{self.socket_path}"

    @property
    def tcp_url(self) -> str | None:
        """``redis://127.0.0.1:<port>/0``, or ``None`` without TCP or with TLS."""
        if self._port is None or self._tls:
            return None
        return f"redis://127.0.0.1:{self._port}/0"

    @property
    def tls_url(self) -> str | None:
        """``rediss://127.0.0.1:<port>/0`` of a TLS server (once started), else ``None``."""
        if self._port is None or not self._tls:
            return None
        return f"rediss://127.0.0.1:{self._port}/0"

    @property
    def tls_files(self) -> TLSFiles | None:
        """The CA and certificates of a TLS server, else ``None``.

        With ``tls=True`` they are made at each fresh start and deleted by :meth:`stop`.
        """
        return self._tls_files

    @property
    def tls_auth_clients(self) -> AuthClients:
        """The server's ``tls-auth-clients`` setting (``"no"`` without TLS)."""
        return self._tls_auth_clients

    def args(self, **overrides: Any) -> RedisArgs:
        """A :class:`memo_redis.config.RedisArgs` for the unix socket; ``overrides`` win."""
        from memo_redis.config import RedisArgs

        options: dict[str, Any] = {"socket_path": self.socket_path}
        options.update(overrides)
        return RedisArgs(**options)

    def client(self, **kwargs: Any) -> redis.Redis:
        """A new ``redis.Redis`` on the unix socket (``decode_responses=False`` unless given)."""
        import redis

        options: dict[str, Any] = {"unix_socket_path": self.socket_path, "decode_responses": False}
        options.update(kwargs)
        return redis.Redis(**options)

    def tls_client(self, *, certificate: bool = True, **kwargs: Any) -> redis.Redis:
        """A new ``redis.Redis`` over TLS on the TCP port, trusting the server's CA.

        With ``certificate`` it presents the client certificate (needed when
        ``tls_auth_clients="yes"``). ``decode_responses=False`` unless given.

        Raises:
            RuntimeError: the server does not serve TLS or was never started.
        """
        import redis

        if self._tls_files is None or self._port is None:
            raise RuntimeError("tls_client() needs a TLS server that was started")
        options: dict[str, Any] = {"host": "127.0.0.1", "port": self._port, "ssl": True}
        options.update(self._tls_files.ssl_kwargs(certificate=certificate))
        options["decode_responses"] = False
        options.update(kwargs)
        return redis.Redis(**options)

    def __repr__(self) -> str:
        try:
            engine = self.engine
        except ConfigError:
            engine = "?"
        socket_path = None if self._last_dir is None else self.socket_path
        return (
            f"<EmbeddedServer engine={engine} socket={socket_path!r} port={self._port}"
            f"{' tls' if self._tls else ''} pid={self.pid}>"
        )

    def log_tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines the server logged since its latest start ("" before any)."""
        if self._last_dir is None:
            return ""
        return read_log_tail(os.path.join(self._last_dir, _LOG_NAME), lines, self._log_offset)

    # -- internals -----------------------------------------------------------------------------

    def _start_locked(self) -> None:
        fresh = self._dir is None
        if fresh:
            self._dir = self._last_dir = _make_temp_dir()
        assert self._dir is not None
        if self._generate_tls:
            tls_dir = os.path.join(self._dir, _TLS_DIR)
            if not os.path.isdir(tls_dir):  # fresh, or recreated by restart() after stop()
                os.mkdir(tls_dir, 0o700)
                self._tls_files = generate_tls_files(tls_dir)
        auto_port = self._tcp and self._requested_port is None and (fresh or self._port is None)
        attempts = _PORT_ATTEMPTS if auto_port else 1
        for attempt in range(1, attempts + 1):
            if auto_port:
                self._port = pick_free_port()
            try:
                self._launch()
                self._wait_ready()
                return
            except _StartupFailed as exc:
                # Another process can grab the chosen ephemeral port before the server binds it.
                if attempt < attempts and "already in use" in exc.log_tail:
                    continue
                raise RuntimeError(str(exc)) from None

    def _launch(self) -> None:
        assert self._dir is not None
        plain_port = self._port if self._tcp and not self._tls else 0
        command = [
            self._binary,
            "--port", str(plain_port),
            "--bind", "127.0.0.1",
            "--unixsocket", os.path.join(self._dir, _SOCKET_NAME),
            "--unixsocketperm", "700",
            "--dir", self._dir,
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--logfile", os.path.join(self._dir, _LOG_NAME),
        ]  # fmt: skip
        if self._tls:
            assert self._tls_files is not None
            command += ["--tls-port", str(self._port)]
            for name, value in self._tls_files.server_options(self._tls_auth_clients).items():
                command += [f"--{name}", value]
        for name, value in self._config.items():
            command += [f"--{name}", value]
        log_path = os.path.join(self._dir, _LOG_NAME)
        self._log_offset = os.path.getsize(log_path) if os.path.exists(log_path) else 0
        self._process = spawn(command, cwd=self._dir, log_path=log_path)
        self._owner_pid = os.getpid()
        if not self._atexit_registered:
            atexit.register(self._stop_at_exit)
            self._atexit_registered = True

    def _wait_ready(self) -> None:
        process = self._process
        assert process is not None
        socket_path = self.socket_path
        deadline = time.monotonic() + self._startup_timeout
        delay = 0.002
        while True:
            code = process.poll()
            if code is not None:
                tail = self.log_tail()
                raise _StartupFailed(
                    f"{self._binary} exited with code {code} during startup"
                    f"{'' if self._port is None else f' (port {self._port})'}; "
                    f"server log:\n{tail}",
                    tail,
                )
            if answers_ping(socket_path):
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                process.kill()
                process.wait()
                tail = self.log_tail()
                raise _StartupFailed(
                    f"{self._binary} did not answer PING on {socket_path} within "
                    f"{self._startup_timeout:g} s; server log:\n{tail}",
                    tail,
                )
            # Waiting on the process doubles as the backoff and notices an early exit at once.
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=min(delay, remaining))
            delay = min(delay * 2, 0.1)

    def _terminate(self) -> None:
        process = self._process
        if process is None or not self._owns_processes():
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
        process.wait()

    def _stop_locked(self) -> None:
        if not self._owns_processes():
            return
        self._terminate()
        self._process = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
            if self._generate_tls:  # they were in the directory
                self._tls_files = None
        if self._atexit_registered:
            atexit.unregister(self._stop_at_exit)
            self._atexit_registered = False

    def _probe_version(self) -> tuple[str, str]:
        if self._version_info is None:
            self._version_info = server_version(self._binary)
        return self._version_info


def _check_config(config: Mapping[str, str] | None, *, tls: bool) -> dict[str, str]:
    checked: dict[str, str] = {}
    for name, value in (config or {}).items():
        if not isinstance(name, str) or not name or name.startswith("-"):
            raise ConfigError(f"config: bad option name {name!r} (write 'maxmemory', not '--')")
        if name.lower() in _MANAGED_OPTIONS or (tls and name.lower() in _MANAGED_TLS_OPTIONS):
            raise ConfigError(
                f"config: option {name!r} is managed by EmbeddedServer; use its arguments instead"
            )
        if not isinstance(value, str):
            raise ConfigError(f"config[{name!r}]={value!r}: expected a str")
        checked[name] = value
    return checked


def _make_temp_dir() -> str:
    path = tempfile.mkdtemp(prefix="memo-redis-")
    if len(os.fsencode(os.path.join(path, _SOCKET_NAME))) <= _MAX_SOCKET_PATH:
        return path
    os.rmdir(path)
    # A long TMPDIR (macOS, nested CI workspaces) overflows sun_path; /tmp is short.
    if os.path.isdir("/tmp"):
        path = tempfile.mkdtemp(prefix="memo-redis-", dir="/tmp")
        if len(os.fsencode(os.path.join(path, _SOCKET_NAME))) <= _MAX_SOCKET_PATH:
            return path
        os.rmdir(path)
    raise ConfigError(
        f"TMPDIR={tempfile.gettempdir()!r}: too long for a unix socket path; set a shorter TMPDIR"
    )
