"""Child server processes and their sockets: the helpers every private server shares.

Free ports, starting a child that dies with its parent, asking a socket for PONG, reading a
log's tail, and :class:`ProcessOwner`, the lifecycle (context manager, atexit hook, fork guard)
of the classes that own such children. Only the standard library is used.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TypeVar

from memo_redis.exceptions import ConfigError

__all__ = [
    "HOST",
    "Address",
    "ProcessOwner",
    "answers_ping",
    "die_with_parent",
    "pick_free_port",
    "read_log_tail",
    "spawn",
    "tcp_answers_ping",
]

HOST = "127.0.0.1"
"""The only interface private servers listen on."""

Address = tuple[str, int]
"""A ``(host, port)`` pair; the host is always ``"127.0.0.1"``."""

_PING = b"*1\r\n$4\r\nPING\r\n"
_PR_SET_PDEATHSIG = 1
_PING_TIMEOUT = 1.0

_Owner = TypeVar("_Owner", bound="ProcessOwner")


def pick_free_port() -> int:
    """Return a TCP port of 127.0.0.1 that was free a moment ago (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
    return port


def die_with_parent() -> Callable[[], None] | None:
    """A preexec function asking Linux to SIGKILL the child when this thread dies, if possible.

    PR_SET_PDEATHSIG fires when the *thread* that forked exits, so it is only armed for servers
    started from the main thread; servers started elsewhere rely on stop() and atexit alone.
    """
    if not sys.platform.startswith("linux"):
        return None
    if threading.current_thread() is not threading.main_thread():
        return None
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(
            ctypes.c_int(_PR_SET_PDEATHSIG),
            ctypes.c_ulong(signal.SIGKILL),
            ctypes.c_ulong(0),
            ctypes.c_ulong(0),
            ctypes.c_ulong(0),
        )
        # The parent may have died between fork() and prctl(); the signal would never come.
        if os.getppid() != parent:
            os._exit(1)

    return preexec


def spawn(command: Sequence[str], *, cwd: str, log_path: str) -> subprocess.Popen[bytes]:
    """Start ``command`` in ``cwd`` with stdout and stderr appended to ``log_path``.

    The child gets a session of its own (Ctrl-C reaches only the Python process, which then
    stops it) and, where possible, dies with the thread that started it (:func:`die_with_parent`).

    Raises:
        ConfigError: the binary cannot be executed.
    """
    # Errors in the arguments are printed before a server opens its logfile: keep them too.
    with open(log_path, "ab") as log:
        try:
            return subprocess.Popen(
                list(command),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=cwd,
                start_new_session=True,
                preexec_fn=die_with_parent(),
            )
        except OSError as exc:
            raise ConfigError(f"binary={command[0]!r}: cannot be executed: {exc}") from exc


def answers_ping(socket_path: str) -> bool:
    """Whether a server answers PING on the unix socket (``-NOAUTH`` counts: it is up)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(_PING_TIMEOUT)
        try:
            conn.connect(socket_path)
            conn.sendall(_PING)
            reply = conn.recv(64)
        except OSError:
            return False
    # NOAUTH: the server is up but a `requirepass` from `config` guards it.
    return reply.startswith((b"+PONG", b"-NOAUTH"))


def tcp_answers_ping(port: int, tls: ssl.SSLContext | None = None) -> bool:
    """Whether a server answers ``+PONG`` on ``127.0.0.1:port``, over TLS with ``tls``."""
    try:
        with socket.create_connection((HOST, port), timeout=_PING_TIMEOUT) as raw:
            if tls is None:
                raw.sendall(_PING)
                reply = raw.recv(64)
            else:
                with tls.wrap_socket(raw, server_hostname=HOST) as conn:
                    conn.sendall(_PING)
                    reply = conn.recv(64)
    except OSError:  # ssl.SSLError included
        return False
    return reply.startswith(b"+PONG")


def read_log_tail(path: str, lines: int, offset: int = 0) -> str:
    """The last ``lines`` lines of the log at ``path`` after byte ``offset``, decoded leniently."""
    try:
        with open(path, "rb") as log:
            log.seek(offset)
            text = log.read().decode("utf-8", errors="replace")
    except OSError as exc:
        return f"(log unavailable: {exc})"
    return "\n".join(text.strip().splitlines()[-lines:]) or "(empty log)"


class ProcessOwner:
    """Base of the classes owning server processes: ``with`` support and the atexit hook.

    A subclass implements :meth:`start` (returning ``self``) and :meth:`stop` (idempotent),
    sets ``_owner_pid`` to ``os.getpid()`` when it starts processes, and registers
    ``_stop_at_exit`` with :mod:`atexit` while it has processes to stop. A forked child that
    inherits the object must not stop its parent's processes: :meth:`_owns_processes` tells.
    """

    _owner_pid: int | None = None

    def start(self: _Owner) -> _Owner:
        """Start the processes; return ``self``."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop the processes and delete their files."""
        raise NotImplementedError

    def __enter__(self: _Owner) -> _Owner:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _owns_processes(self) -> bool:
        return self._owner_pid is None or self._owner_pid == os.getpid()

    def _stop_at_exit(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()
