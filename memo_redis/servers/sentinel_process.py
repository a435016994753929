"""One Sentinel process (``<binary> sentinel.conf --sentinel``) for :class:`LocalSentinel`."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence

from redis.exceptions import RedisError

from memo_redis.servers.nodes import LOG_LINES, TopologyTLS, command, info_fields
from memo_redis.servers.process import (
    HOST,
    Address,
    pick_free_port,
    read_log_tail,
    spawn,
    tcp_answers_ping,
)
from memo_redis.servers.tls import AuthClients

__all__ = ["SentinelProcess"]

_PORT_ATTEMPTS = 3


class SentinelProcess:
    """One ``<binary> sentinel.conf --sentinel`` child in a temporary directory of its own.

    Args:
        binary: the server binary.
        config_lines: ``sentinel ...`` lines (monitor, timeouts) appended to the generated
            configuration, which sets the port, interface, directory and log file.
        tls: with TLS enabled the sentinel listens on a TLS port only (``port 0``) and talks
            TLS to the data nodes and other sentinels (``tls-replication yes``).

    :meth:`start` picks a free port (retried when another process takes it) and waits for PONG.
    """

    def __init__(
        self, binary: str, config_lines: Sequence[str], tls: TopologyTLS | None = None
    ) -> None:
        self._binary = binary
        self._config_lines = list(config_lines)
        self._tls = None if tls is None else tls.files
        self._auth_clients: AuthClients = "no" if tls is None else tls.auth_clients
        self._dir: str | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def address(self) -> Address:
        """``(host, port)`` of the sentinel."""
        return (HOST, self.port)

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float) -> None:
        """Start on a free port and wait up to ``timeout`` s for PONG (RuntimeError if not)."""
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
        self.port = pick_free_port()
        config = os.path.join(self._dir, "sentinel.conf")
        log_path = os.path.join(self._dir, "sentinel.log")
        if self._tls is None:
            ports = [f"port {self.port}"]
        else:  # TLS only, and TLS to the data nodes and the other sentinels
            options = self._tls.server_options(self._auth_clients)
            ports = ["port 0", f"tls-port {self.port}", "tls-replication yes"]
            ports += [f'{name} "{value}"' for name, value in options.items()]
        lines = [
            *ports,
            f"bind {HOST}",
            "daemonize no",
            f'dir "{self._dir}"',
            f'logfile "{log_path}"',
            *self._config_lines,
        ]
        with open(config, "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
        self._process = spawn(
            [self._binary, config, "--sentinel"], cwd=self._dir, log_path=log_path
        )

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
            context = None if self._tls is None else self._tls.client_context()
            if tcp_answers_ping(self.port, context):
                if self._answering_pid() == process.pid:
                    return
                # Another process took the port before this sentinel could bind it (and the
                # sentinel exits): retried on a new port, like a bind failure.
                raise RuntimeError(f"sentinel port {self.port} already in use by another "
                                   f"process; log:\n{self.log_tail()}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError(
                    f"sentinel on port {self.port} did not answer PING within {timeout:g} s; "
                    f"log:\n{self.log_tail()}"
                )
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=min(delay, remaining))
            delay = min(delay * 2, 0.1)

    def _answering_pid(self) -> int | None:
        """The process id of whatever answers on this sentinel's port (``INFO server``)."""
        try:
            reply = command((HOST, self.port), "INFO", "server",
                            tls=self._tls)
        except (RedisError, OSError):
            return None
        pid = info_fields(str(reply)).get("process_id", "")
        return int(pid) if pid.isdigit() else None

    def kill(self) -> None:
        """SIGKILL the process and wait for it."""
        process = self._process
        if process is not None:
            if process.poll() is None:
                process.kill()
            process.wait()

    def stop(self) -> None:
        """Kill the process and delete its directory."""
        self.kill()
        self._process = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def log_tail(self, lines: int = LOG_LINES) -> str:
        """The last ``lines`` lines of the sentinel's log."""
        if self._dir is None:
            return "(no log)"
        return read_log_tail(os.path.join(self._dir, "sentinel.log"), lines)
