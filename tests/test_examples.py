"""Every script in examples/ runs as a subprocess and shows what it claims."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from memo_redis.embedded import EmbeddedServer

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
TIMEOUT = 240
_ISOLATING = ("REDIS_", "MEMO_REDIS_SQLITE_PATH")


def clean_env(**extra: str) -> dict[str, str]:
    """The current environment without Redis settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_ISOLATING)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def run(name: str, env: dict[str, str], *args: str, check: bool = True
        ) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args], env=env, cwd=ROOT,
        capture_output=True, text=True, timeout=TIMEOUT, check=False,
    )
    if check:
        assert result.returncode == 0, f"{name} failed:\n{result.stdout}\n{result.stderr}"
    return result


def labelled(output: str, label: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(f"{label}:")]


def assert_flow(output: str) -> None:
    """A miss, at least two hits, an update, the automatic invalidation and the fresh value."""
    assert len(labelled(output, "miss")) >= 1, output
    assert len(labelled(output, "hit")) >= 2, output
    assert len(labelled(output, "update")) == 1, output
    [invalidation] = labelled(output, "invalidation")
    assert invalidation.endswith("is gone"), output
    assert len(labelled(output, "fresh")) == 1, output
    assert "stale" not in output and "still cached" not in output


def on_server(server: EmbeddedServer) -> dict[str, str]:
    return clean_env(REDIS_SOCKET_PATH=server.socket_path)


@pytest.mark.parametrize("name", ["quickstart.py", "sql_sqlite.py", "async_app.py"])
def test_example_runs_against_a_given_server(name: str, server: EmbeddedServer) -> None:
    """With REDIS_SOCKET_PATH set, the example uses that server and shows the whole flow."""
    output = run(name, on_server(server)).stdout
    assert_flow(output)
    if name == "sql_sqlite.py":
        window, after = labelled(output, "transaction")
        assert "cached it" in window and after.endswith("fresh"), output
    [redis_line] = labelled(output, "redis")
    assert server.socket_path in redis_line and "from the environment" in redis_line


def test_sqlite_example_reports_size_latency_and_hit_rate(server: EmbeddedServer) -> None:
    """The main job fills 50,000 feeding events and prints latency and hit rate figures."""
    output = run("sql_sqlite.py", on_server(server)).stdout
    assert "50,000 feeding_events" in output
    [latency] = labelled(output, "latency")
    assert re.search(r"database median [\d.]+ ms vs cache median [\d.]+ ms", latency)
    [hit_rate] = labelled(output, "hit rate")
    assert re.search(r"\d+\.\d% \(\d+ hits, 2 misses", hit_rate)
    assert len(labelled(output, "seed API")) == 2


def test_sqlite_example_starts_and_removes_its_own_server(memo_redis_binary: str) -> None:
    """Without Redis settings the main job runs on an embedded server and leaves no files."""
    output = run("sql_sqlite.py", clean_env(MEMO_REDIS_SERVER=memo_redis_binary)).stdout
    assert_flow(output)
    [redis_line] = labelled(output, "redis")
    assert "embedded private server" in redis_line
    socket = re.search(r"unix://(\S+)", redis_line)
    database = re.search(r"^database:\s+(\S+)", output, re.MULTILINE)
    assert socket and database, output
    assert not Path(socket.group(1)).parent.exists()
    assert not Path(database.group(1)).parent.exists()


def test_sqlite_example_rebuilds_its_own_file_but_refuses_others(
    server: EmbeddedServer, tmp_path: Path
) -> None:
    """A database path given twice is rebuilt; a file the example did not make is left alone."""
    path = tmp_path / "feeder.db"
    for _ in range(2):
        assert_flow(run("sql_sqlite.py", on_server(server), str(path)).stdout)
    assert path.exists()
    foreign = tmp_path / "mine.db"
    foreign.write_bytes(b"precious")
    refused = run("sql_sqlite.py", on_server(server), str(foreign), check=False)
    assert refused.returncode != 0 and "not made by this example" in refused.stderr
    assert foreign.read_bytes() == b"precious"


# --- PostgreSQL and MariaDB: must run in CI, skip elsewhere ----------------------------------


def _where(dsn: str) -> str:
    """Host, port and database of a DSN, never its password."""
    if "://" not in dsn:
        return re.sub(r"(password\s*=\s*)\S+", r"\1***", dsn)
    parts = urlsplit(dsn)
    return f"{parts.hostname}:{parts.port}{parts.path}"


def _postgres_probe(dsn: str) -> None:
    import psycopg

    psycopg.connect(dsn, connect_timeout=3).close()


def _mariadb_probe(dsn: str) -> None:
    import pymysql

    parts = urlsplit(dsn)
    pymysql.connect(
        host=parts.hostname or "127.0.0.1", port=parts.port or 3306,
        user=unquote(parts.username or "root"), password=unquote(parts.password or ""),
        database=parts.path.lstrip("/") or None, connect_timeout=3,
    ).close()


DATABASES = [
    pytest.param("sql_postgres.py", "PostgreSQL", "MEMO_REDIS_PG_DSN",
                 "postgresql://postgres@127.0.0.1:5432/test", _postgres_probe, id="postgres"),
    pytest.param("sql_mariadb.py", "MariaDB", "MEMO_REDIS_MYSQL_DSN",
                 "mysql://root@127.0.0.1:3306/test", _mariadb_probe, id="mariadb"),
]


def _require(engine: str, variable: str, default: str, probe: Callable[[str], None]) -> str:
    """The DSN of ``engine``'s server; skips (fails in CI) when it is unreachable."""
    dsn = os.environ.get(variable) or default
    try:
        probe(dsn)
    except Exception as exc:  # any driver or socket error means "not reachable"
        reason = f"{engine} not reachable at {_where(dsn)} ({exc}); set {variable}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} -- the database examples must run in CI")
        pytest.skip(reason)
    return dsn


@pytest.mark.db
@pytest.mark.parametrize(("name", "engine", "variable", "default", "probe"), DATABASES)
def test_database_example(
    name: str, engine: str, variable: str, default: str, probe: Callable[[str], None],
    server: EmbeddedServer,
) -> None:
    """The PostgreSQL / MariaDB example shows the flow on that server and drops its tables."""
    _require(engine, variable, default, probe)
    output = run(name, on_server(server)).stdout
    assert_flow(output)
    assert f"database:     {engine}" in output and "50,000 memo_feeding_events_" in output
    [latency] = labelled(output, "latency")
    assert "database median" in latency
    assert labelled(output, "cleanup")


@pytest.mark.db
def test_sqlalchemy_example(server: EmbeddedServer) -> None:
    """The SQLAlchemy example: an ORM session's flush invalidates with no memo_redis call in
    it, the window's fill is undone by the commit, a rollback leaks nothing, cached_select
    misses after a write to a joined table; its tables are dropped."""
    import psycopg

    dsn = _require("PostgreSQL", "MEMO_REDIS_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test",
                   _postgres_probe)
    output = run("sql_sqlalchemy_postgres.py", on_server(server)).stdout
    assert_flow(output)
    assert "database:     PostgreSQL" in output and "50,000 memo_feeding_events_" in output
    window, after = labelled(output, "transaction")
    assert "cached it" in window and "its own write" in window, output
    assert after.endswith("fresh"), output
    [rollback] = labelled(output, "rollback")
    assert rollback.endswith("(unchanged)"), output
    first, renamed = labelled(output, "select")
    assert "cache median" in first and renamed.endswith("(fresh)"), output
    [cleanup] = labelled(output, "cleanup")
    tables = cleanup.split("dropped ", 1)[1].split(", ")
    with psycopg.connect(dsn, connect_timeout=3) as conn:
        left = conn.execute("SELECT table_name FROM information_schema.tables"
                            " WHERE table_name = ANY(%s)", (tables,)).fetchall()
    assert len(tables) == 4 and left == [], output
