"""The ``memo-redis`` command through its real entry points (``python -m memo_redis`` and the
installed ``memo-redis`` script), in subprocesses, against the session's private server.

Entries are written by decorated functions; ``top`` runs in a pseudo-terminal while another
process calls a cached function with a metrics publisher on.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from support import command_calls, reset_stats

from memo_redis import RedisCaching, cached, metrics
from memo_redis.servers import EmbeddedServer

SCRIPT = Path(sys.executable).with_name("memo-redis")


def _script() -> str:
    if SCRIPT.exists():
        return str(SCRIPT)
    found = shutil.which("memo-redis")
    if found is None:
        pytest.fail("the memo-redis console script is not installed (pip install -e .)")
    return found


def _env(**extra: str) -> dict[str, str]:
    """The test's environment without REDIS_* settings (each test names its server)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDIS_")}
    env.update(extra)
    return env


def run_cli(*args: str, entry: str = "module", env: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the command; ``entry`` is ``"module"`` (``python -m memo_redis``) or ``"script"``."""
    head = [sys.executable, "-m", "memo_redis"] if entry == "module" else [_script()]
    return subprocess.run([*head, *args], capture_output=True, text=True, timeout=timeout,
                          env=env if env is not None else _env())


@pytest.fixture
def cli(server: EmbeddedServer) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``cli(*args)``: the command against the session server (``--url``)."""

    def call(*args: str, entry: str = "module") -> subprocess.CompletedProcess[str]:
        return run_cli("--url", server.url, *args, entry=entry)

    return call


def _json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _assert_one_line_error(result: subprocess.CompletedProcess[str], code: int,
                           needle: str) -> None:
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("memo-redis: "), result.stderr
    assert needle in lines[0]


@pytest.fixture
def populated(cache: RedisCaching, raw: redis.Redis) -> dict[str, Any]:
    """5 users and 3 orders entries, 2 of a function without prefix, one plain JSON value
    (written after the flushes of the ``cache`` and ``raw`` fixtures)."""

    computed: list[tuple[str, int]] = []

    @cached(cache=cache, prefix="sql:{table}", category="data", ttl=300)
    def fetch(table: str, n: int) -> dict[str, Any]:
        computed.append((table, n))
        return {"table": table, "rows": list(range(n)), "pair": (1, 2)}

    @cached(cache=cache, category="count", ttl=60)
    def price(sku: str) -> int:
        return 42

    for i in range(5):
        fetch("users", i)
    for i in range(3):
        fetch("orders", i)
    price("a")
    price("b")
    cache.client.set("legacy:json:1", json.dumps({"a": [1, 2]}))
    return {"fetch": fetch, "computed": computed, "users_key": fetch.cache_key("users", 3),
            "price_group": ":".join(price.cache_key("a").split(":")[:2])}


# -- health ---------------------------------------------------------------------------------


@pytest.mark.parametrize("entry", ["module", "script"])
def test_health(server: EmbeddedServer, entry: str) -> None:
    human = run_cli("health", entry=entry, env=_env(REDIS_URL=server.url))
    assert human.returncode == 0, human.stderr
    assert re.search(r"engine\s+(redis|valkey) \d+\.\d+", human.stdout)
    assert re.search(r"topology\s+single", human.stdout)
    assert "latency" in human.stdout
    report = _json(run_cli("health", "--json", entry=entry, env=_env(REDIS_URL=server.url)))
    assert report["ok"] is True and report["topology"] == "single"
    assert report["engine"] == server.engine and report["version"] == server.version
    assert report["latency_ms"]["min"] > 0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.mark.parametrize("entry", ["module", "script"])
def test_unreachable_server_exits_1_with_one_line(entry: str) -> None:
    url = f"redis://127.0.0.1:{_free_port()}/0"
    for command in (["health"], ["stats"], ["keys", "*"], ["get", "k"], ["invalidate", "a:*"],
                    ["top", "--once"]):
        result = run_cli("--url", url, *command, entry=entry)
        _assert_one_line_error(result, 1, "cannot reach redis://127.0.0.1:")
    report = run_cli("--url", url, "health", "--json", entry=entry)
    assert report.returncode == 1
    assert json.loads(report.stdout)["ok"] is False


def test_silent_server_times_out_in_bounded_time() -> None:
    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        started = time.monotonic()
        result = run_cli("--url", f"redis://127.0.0.1:{silent.getsockname()[1]}/0",
                         "--timeout", "1", "health")
        elapsed = time.monotonic() - started
    _assert_one_line_error(result, 1, "cannot reach")
    assert elapsed < 15


def test_bad_configuration_exits_2() -> None:
    result = run_cli("health", env=_env(REDIS_PORT="seventy"))
    _assert_one_line_error(result, 2, "REDIS_PORT")
    result = run_cli("--url", "http://127.0.0.1:6390/0", "health")
    _assert_one_line_error(result, 2, "configuration error")


# -- stats ----------------------------------------------------------------------------------


def test_stats_groups_categories_and_server_figures(
        cli: Callable[..., subprocess.CompletedProcess[str]], populated: dict[str, Any]) -> None:
    report = _json(cli("stats", "--json"))
    groups = {(g["group"], g["category"]): g for g in report["groups"]}
    assert groups[("sql:users", "data")]["entries"] == 5
    assert groups[("sql:orders", "data")]["entries"] == 3
    assert groups[(populated["price_group"], "count")]["entries"] == 2
    assert not any(g.startswith("__memo__") for g, _ in groups)
    users = groups[("sql:users", "data")]
    assert users["bytes"] > 0 and users["bytes_estimated"] is False
    assert 0 < users["ttl_min_ms"] <= users["ttl_median_ms"] <= users["ttl_max_ms"] <= 300_000
    assert groups[("legacy:json", "json")]["persistent"] == 1
    assert report["keys"]["entries"] == 11 and report["keys"]["sampled"] is False
    assert report["keys"]["bookkeeping"] > 0
    assert report["server"]["used_memory"] > 0
    assert 0 <= report["server"]["hit_rate"] <= 1
    human = cli("stats")
    assert human.returncode == 0, human.stderr
    assert re.search(r"sql:users\s+data\s+5\s", human.stdout)
    assert "server hit rate" in human.stdout and "full scan" in human.stdout


def test_stats_sample_stops_early_and_says_so(
        cli: Callable[..., subprocess.CompletedProcess[str]], populated: dict[str, Any]) -> None:
    report = _json(cli("stats", "--sample", "3", "--json"))
    assert report["keys"]["entries"] == 3 and report["keys"]["sampled"] is True
    assert sum(g["entries"] for g in report["groups"]) == 3
    human = cli("stats", "--sample", "3")
    assert "sampled" in human.stdout and "--sample 3" in human.stdout


def test_stats_shows_published_metrics(
        cli: Callable[..., subprocess.CompletedProcess[str]], cache: RedisCaching) -> None:
    name = "tests.cli.published_fn"
    m = metrics.register(name, "data")
    m.hit(lookup_ns=50_000)
    metrics.RedisMetricsPublisher(cache.client, interval=60).flush()
    report = _json(cli("stats", "--json"))
    assert report["metrics"][f"{name}:data"]["hits"] >= 1
    assert name in cli("stats").stdout


# -- keys -----------------------------------------------------------------------------------


@pytest.mark.parametrize("entry", ["module", "script"])
def test_keys_show_valid_and_invalidated_entries(
        cli: Callable[..., subprocess.CompletedProcess[str]], populated: dict[str, Any],
        raw: redis.Redis, entry: str) -> None:
    report = _json(cli("keys", "sql:*", "--json", entry=entry))
    assert report["count"] == 8 and report["truncated"] is False
    assert {k["status"] for k in report["keys"]} == {"valid"}
    assert all(0 < k["ttl_ms"] <= 300_000 and k["size"] > 18 for k in report["keys"])
    # A new generation for sql:orders: what an invalidation does before it unlinks the keys.
    raw.set(b"__memo__:gen:sql:orders", b"replaced")
    report = _json(cli("keys", "sql:*", "--json", entry=entry))
    status = {k["key"].split(":")[1]: k["status"] for k in report["keys"]}
    assert status == {"users": "valid", "orders": "invalidated"}
    human = cli("keys", "sql:orders:*", entry=entry)
    assert human.returncode == 0, human.stderr
    assert len(re.findall(r"sql:orders:data:\w+\s+\S+\s+\d+ B\s+invalidated", human.stdout)) == 3
    assert "3 entries matching 'sql:orders:*'" in human.stdout
    assert "__memo__" not in cli("keys", "*").stdout
    assert _json(cli("keys", "legacy:*", "--json"))["keys"][0]["status"] == "plain"


def test_keys_limit(cli: Callable[..., subprocess.CompletedProcess[str]],
                    populated: dict[str, Any]) -> None:
    report = _json(cli("keys", "sql:users:*", "--limit", "2", "--json"))
    assert report["count"] == 2 and report["truncated"] is True
    assert "stopped at --limit 2" in cli("keys", "sql:users:*", "--limit", "2").stdout


@pytest.mark.parametrize("pattern", ["", "sql:[users:*", "sql:users\\"])
def test_bad_patterns_exit_2(cli: Callable[..., subprocess.CompletedProcess[str]],
                             pattern: str) -> None:
    for command in ("keys", "invalidate"):
        result = cli(command, pattern)
        _assert_one_line_error(result, 2, "pattern")


# -- get ------------------------------------------------------------------------------------


def test_get_decodes_an_entry_with_its_metadata(
        cli: Callable[..., subprocess.CompletedProcess[str]], populated: dict[str, Any],
        raw: redis.Redis) -> None:
    key = populated["users_key"]
    info = _json(cli("get", key, "--json"))
    assert info["value"] == {"table": "users", "rows": [0, 1, 2], "pair": [1, 2]}
    assert info["format"] == "envelope" and info["codec"] == "msgpack"
    assert info["compressed"] is False and info["stamp_valid"] is True
    assert 0 < info["ttl_ms"] <= 300_000
    human = cli("get", key)
    assert human.returncode == 0, human.stderr
    assert "'pair': (1, 2)" in human.stdout  # the exact decoded value, pretty-printed
    assert re.search(r"stamp_valid\s+yes", human.stdout)
    assert re.search(r"codec\s+msgpack", human.stdout)
    raw.set(b"__memo__:gen:sql:users", b"replaced")
    assert _json(cli("get", key, "--json"))["stamp_valid"] is False
    assert re.search(r"stamp_valid\s+no", cli("get", key).stdout)


def test_get_shows_compression_and_expiry(
        cli: Callable[..., subprocess.CompletedProcess[str]], cache: RedisCaching) -> None:
    @cached(cache=cache, prefix="big", category="data", ttl=120, early_refresh=1.0)
    def big(n: int) -> str:
        return "x" * n

    big(5000)
    info = _json(cli("get", big.cache_key(5000), "--json"))
    assert info["value"] == "x" * 5000
    assert info["compressed"] is True and info["size"] < 5000
    assert info["expires_at"] is not None and info["compute_ms"] is not None
    assert re.search(r"compressed\s+yes", cli("get", big.cache_key(5000)).stdout)


def test_get_plain_json_and_missing_key(
        cli: Callable[..., subprocess.CompletedProcess[str]], populated: dict[str, Any]) -> None:
    info = _json(cli("get", "legacy:json:1", "--json"))
    assert info["format"] == "plain-json" and info["value"] == {"a": [1, 2]}
    assert info["ttl_ms"] is None
    assert "plain-json" in cli("get", "legacy:json:1").stdout
    for args in (("get", "no:such:key"), ("get", "no:such:key", "--json")):
        _assert_one_line_error(cli(*args), 1, "no such key: 'no:such:key'")


# -- invalidate -----------------------------------------------------------------------------


def test_invalidate_dry_run_then_for_real(
        cli: Callable[..., subprocess.CompletedProcess[str]], populated: dict[str, Any],
        raw: redis.Redis) -> None:
    before = raw.dbsize()
    dry = _json(cli("invalidate", "sql:users:*", "--dry-run", "--json"))
    assert dry["matches"] == 5 and len(dry["sample"]) == 5
    assert all(k.startswith("sql:users:data:") for k in dry["sample"])
    human = cli("invalidate", "sql:*", "--dry-run")
    assert "8 entries match 'sql:*' (dry run: nothing changed)" in human.stdout
    assert raw.dbsize() == before
    done = _json(cli("invalidate", "sql:users:*", "--json"))
    assert done == {"pattern": "sql:users:*", "dry_run": False, "deleted": 5}
    assert _json(cli("keys", "sql:users:*", "--json"))["count"] == 0
    assert _json(cli("keys", "sql:orders:*", "--json"))["count"] == 3
    human = cli("invalidate", "sql:orders:*")
    assert "3 entries deleted" in human.stdout
    # The decorated function computes again: the library saw the invalidation.
    computed = populated["computed"]
    before_calls = len(computed)
    assert populated["fetch"]("users", 1)["rows"] == [0]
    assert computed[before_calls:] == [("users", 1)]


def test_invalidate_one_key(cli: Callable[..., subprocess.CompletedProcess[str]],
                            populated: dict[str, Any]) -> None:
    key = populated["users_key"]
    assert _json(cli("invalidate", key, "--dry-run", "--json"))["matches"] == 1
    assert _json(cli("invalidate", key, "--json"))["deleted"] == 1
    assert _json(cli("invalidate", key, "--dry-run", "--json"))["matches"] == 0


# -- top ------------------------------------------------------------------------------------


def test_top_once(cli: Callable[..., subprocess.CompletedProcess[str]],
                  cache: RedisCaching) -> None:
    busy, idle = "tests.cli.top_busy", "tests.cli.top_idle"
    for _ in range(50):
        metrics.register(busy, "data").hit(lookup_ns=100_000)
    metrics.register(idle, "data").miss(lookup_ns=2_000_000)
    metrics.RedisMetricsPublisher(cache.client, interval=60).flush()
    report = _json(cli("top", "--once", "--json", "--limit", "100000"))
    names = [r["function"] for r in report["functions"]]
    assert names.index(busy) < names.index(idle)
    row = report["functions"][names.index(busy)]
    assert row["calls"] >= 50 and row["hit_ratio"] == 1.0
    assert 5e-05 < row["lookup_p50"] <= 0.0001
    human = cli("top", "--once")
    assert human.returncode == 0, human.stderr
    assert busy in human.stdout and "CALLS/S" in human.stdout


_CALLER = """
import sys, time
from memo_redis import RedisCaching, cached, metrics

cache = RedisCaching(sys.argv[1])

@cached(cache=cache, prefix="top", category="data", ttl=60)
def busy_lookup(n):
    return n * 2

owner = f"{busy_lookup.__module__}.{busy_lookup.__qualname__}"
publisher = metrics.RedisMetricsPublisher(cache.client, interval=0.2).start()
busy_lookup(0)
wired = metrics.get(owner, "data")  # None until the decorators record metrics themselves
manual = metrics.register(owner, "data") if wired is None or not wired.misses else None
deadline = time.monotonic() + 60
i = 0
while time.monotonic() < deadline:
    started = time.perf_counter_ns()
    busy_lookup(i % 10)
    if manual is not None:
        manual.hit(time.perf_counter_ns() - started)
    i += 1
    time.sleep(0.002)
"""


def _read_pty(fd: int, want: Callable[[str], bool], timeout: float) -> str:
    """Read a terminal's output until ``want(everything so far)`` or the deadline."""
    seen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the other end closed
                break
            if not chunk:
                break
            seen += chunk
            if want(seen.decode("utf-8", "replace")):
                break
    return seen.decode("utf-8", "replace")


@pytest.fixture
def caller(server: EmbeddedServer, cache: RedisCaching) -> Iterator[subprocess.Popen[bytes]]:
    """Another process calling a cached function, with a metrics publisher on."""
    process = subprocess.Popen([sys.executable, "-c", _CALLER, server.url], env=_env())
    try:
        yield process
    finally:
        process.terminate()
        process.wait(10)


def test_top_live_in_a_terminal_shows_another_process(
        server: EmbeddedServer, caller: subprocess.Popen[bytes]) -> None:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 200, 0, 0))
    top = subprocess.Popen(
        [_script(), "--url", server.url, "top", "--interval", "0.3"],
        stdin=slave, stdout=slave, stderr=slave, env=_env(TERM="xterm-256color"),
        start_new_session=True,
    )
    os.close(slave)
    try:
        screen = _read_pty(master, lambda s: "busy_lookup" in s and len(re.findall(
            r"memo-redis top: .* at \d\d:\d\d:\d\d", s)) >= 1 and _rate(s) > 0, timeout=30)
        assert "busy_lookup" in screen, screen[-2000:]
        assert _rate(screen) > 0, screen[-2000:]  # calls per second between two refreshes
        os.killpg(top.pid, signal.SIGINT)
        assert top.wait(10) == 0
    finally:
        if top.poll() is None:
            top.kill()
            top.wait()
        os.close(master)


def _rate(screen: str) -> float:
    """The CALLS/S figure of the last busy_lookup row on the screen (0 when none)."""
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen)
    rows = re.findall(r"busy_lookup\s+data\s+([\d.]+)\s", plain)
    return float(rows[-1]) if rows else 0.0


# -- server ---------------------------------------------------------------------------------


def test_server_prints_a_url_that_answers_then_stops_on_sigterm() -> None:
    process = subprocess.Popen([_script(), "server"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=_env())
    try:
        assert process.stdout is not None
        line = _read_line(process.stdout.fileno(), timeout=30)
        match = re.fullmatch(r"REDIS_URL=(redis://127\.0\.0\.1:(\d+)/0)", line.strip())
        assert match, line
        client = redis.Redis.from_url(match.group(1), socket_timeout=5)
        try:
            assert client.ping() is True
        finally:
            client.close()
        process.terminate()
        assert process.wait(15) == 0
        with pytest.raises(redis.ConnectionError):
            redis.Redis.from_url(match.group(1), socket_timeout=2).ping()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_server_json_and_fixed_port() -> None:
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "memo_redis", "server", "--port",
                                str(port), "--json"], stdout=subprocess.PIPE, env=_env())
    try:
        assert process.stdout is not None
        info = json.loads(_read_line(process.stdout.fileno(), timeout=30))
        assert info["url"] == f"redis://127.0.0.1:{port}/0"
        assert info["engine"] in ("redis", "valkey") and info["pid"] > 0
        process.send_signal(signal.SIGINT)
        assert process.wait(15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _read_line(fd: int, timeout: float) -> str:
    data = b""
    deadline = time.monotonic() + timeout
    while b"\n" not in data and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            data += chunk
    return data.decode().split("\n")[0]


# -- never KEYS, never a flush --------------------------------------------------------------


def test_the_command_never_sends_keys_or_a_flush(
        cli: Callable[..., subprocess.CompletedProcess[str]], populated: dict[str, Any],
        raw: redis.Redis) -> None:
    source = "\n".join(p.read_text() for p in
                       sorted((Path(__file__).parents[1] / "memo_redis" / "cli").glob("*.py")))
    assert not re.search(r"""["']KEYS["']|\.keys\(""", source)
    assert not re.search(r"flushdb|flushall", source, re.IGNORECASE)
    reset_stats(raw)
    for args in (("health",), ("stats",), ("keys", "*"), ("get", populated["users_key"]),
                 ("invalidate", "sql:*", "--dry-run"), ("invalidate", "sql:orders:*"),
                 ("invalidate", "*"), ("top", "--once")):
        assert cli(*args).returncode == 0, args
    calls = command_calls(raw)
    assert calls.get("scan", 0) > 0
    assert not {"keys", "flushdb", "flushall"} & set(calls)


def test_stats_in_a_terminal_draws_its_progress_and_tables(
        server: EmbeddedServer, populated: dict[str, Any]) -> None:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    stats = subprocess.Popen([_script(), "--url", server.url, "stats"], stdin=slave,
                             stdout=slave, stderr=slave, env=_env(TERM="xterm-256color"))
    os.close(slave)
    try:
        screen = _read_pty(master, lambda s: "full scan" in s, timeout=30)
        assert stats.wait(15) == 0
    finally:
        if stats.poll() is None:
            stats.kill()
            stats.wait()
        os.close(master)
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen)
    assert re.search(r"sql:users\s+data\s+5\s", plain), plain
    assert "Traceback" not in plain


_WITHOUT_RICH = """
import sys
sys.modules["rich"] = None  # as if the cli extra were not installed
from memo_redis.cli import main
raise SystemExit(main(sys.argv[1:]))
"""


def test_plain_tables_without_rich(server: EmbeddedServer, populated: dict[str, Any]) -> None:
    def plain(*args: str) -> str:
        result = subprocess.run([sys.executable, "-c", _WITHOUT_RICH, "--url", server.url, *args],
                                capture_output=True, text=True, timeout=60, env=_env())
        assert result.returncode == 0, result.stderr
        return result.stdout

    assert re.search(r"^sql:users\s+data\s+5\s+\d+ B", plain("stats"), re.MULTILINE)
    assert re.search(r"^sql:users:data:\w+\s+\S+\s+\d+ B\s+valid$", plain("keys", "sql:*"),
                     re.MULTILINE)
    shown = plain("get", populated["users_key"])
    assert "{'table': 'users', 'rows': [0, 1, 2], 'pair': (1, 2)}" in shown
    assert json.loads(plain("keys", "sql:*", "--json"))["count"] == 8


# -- Redis Cluster --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster_env(memo_redis_binary: str) -> Iterator[dict[str, str]]:
    """The environment selecting a private 3-primary cluster (no replicas)."""
    from memo_redis.servers import LocalCluster

    with LocalCluster(memo_redis_binary, replicas_per_primary=0) as topology:
        yield _env(REDIS_CLUSTER="true", REDIS_CLUSTER_NODES=topology.startup_nodes)


@pytest.mark.cluster
def test_cluster_commands_use_logical_names(cluster_env: dict[str, str]) -> None:
    from memo_redis import RedisArgs

    cache = RedisCaching(RedisArgs.from_env(cluster_env))
    try:
        @cached(cache=cache, prefix="sql:{table}", category="data", ttl=300)
        def fetch(table: str, n: int) -> list[Any]:
            return [table, n]

        for table in ("users", "orders", "items"):
            for i in range(3):
                fetch(table, i)
        health = _json(run_cli("health", "--json", env=cluster_env))
        assert health["topology"] == "cluster"
        keys = _json(run_cli("keys", "sql:*", "--json", env=cluster_env))
        assert keys["count"] == 9 and {k["status"] for k in keys["keys"]} == {"valid"}
        assert all(k["key"].startswith("sql:") for k in keys["keys"])
        physical = fetch.cache_key("items", 2)
        logical = physical.replace("{sql:items}", "sql:items")
        for name in (physical, logical):
            info = _json(run_cli("get", name, "--json", env=cluster_env))
            assert info["key"] == logical and info["value"] == ["items", 2]
            assert info["stamp_valid"] is True
        stats = _json(run_cli("stats", "--json", env=cluster_env))
        assert {(g["group"], g["entries"]) for g in stats["groups"]} == {
            ("sql:users", 3), ("sql:orders", 3), ("sql:items", 3)}
        dry = _json(run_cli("invalidate", "sql:orders:*", "--dry-run", "--json", env=cluster_env))
        assert dry["matches"] == 3
        done = _json(run_cli("invalidate", "sql:orders:*", "--json", env=cluster_env))
        assert done["deleted"] == 3
        assert _json(run_cli("keys", "*", "--json", env=cluster_env))["count"] == 6
        name = "tests.cli.cluster_fn"
        metrics.register(name, "data").hit()
        metrics.RedisMetricsPublisher(cache.client, interval=60).flush()
        top = _json(run_cli("top", "--once", "--json", "--limit", "100000", env=cluster_env))
        assert name in [row["function"] for row in top["functions"]]
    finally:
        cache.close()
