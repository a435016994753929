"""The README's ACL rule for a memo_redis user, against a private server.

The rule is read from the README (the ``<!-- acl: ... -->`` blocks of its Security section), so
the documentation and this test cannot drift apart. With exactly that rule every feature works
and the server logs no refusal; with any one permission of it removed, the application still
gets correct values (fail-open), the server's ``ACL LOG`` shows that permission was needed, and
memo_redis logs one warning naming it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from support import wait_until

import memo_redis.protocol.requests
import memo_redis.protocol.steps
from memo_redis import RedisCaching, cached, invalidates
from memo_redis.backend.gate import acl_refusal
from memo_redis.exporters.published import RedisMetricsPublisher
from memo_redis.servers import EmbeddedServer, LocalCluster

ROOT = Path(__file__).resolve().parent.parent
USER = "memo"
PASSWORD = "acl-test-password"
_BLOCK = re.compile(r"<!-- acl: (\w+) -->\n```text\n(.*?)```", re.S)
# The documented rule's fixed head: what it removes, turns on and the password.
HEAD = ("reset", "on", ">CHANGE-ME")
OPTIONAL_NOISE = {("command", "client|setinfo")}
"""Refusals redis-py ignores (sent on connect by redis-py on Redis 7.2+ and Valkey; the README
says to allow it there, but the rule must also load on Redis 7.0, which lacks it)."""


def acl_blocks(text: str) -> dict[str, list[list[str]]]:
    """The ``<!-- acl: name -->`` blocks of ``text`` by name: each a list of ``ACL SETUSER memo
    ...`` argument lists (the words after ``ACL SETUSER memo``), the password replaced by the
    test's."""
    rules: dict[str, list[list[str]]] = {}
    for name, body in _BLOCK.findall(text):
        lines = []
        for line in body.strip().splitlines():
            words = line.split()
            assert words[:3] == ["ACL", "SETUSER", USER], f"ACL line {line!r}"
            lines.append([f">{PASSWORD}" if w == ">CHANGE-ME" else w for w in words[3:]])
        rules[name] = lines
    return rules


def readme_rules() -> dict[str, list[list[str]]]:
    """The ACL blocks of the README's Security section."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("\n## Security\n"):]
    return acl_blocks(section[: section.index("\n## ", 1)])


RULES = readme_rules()
BASE: list[str] = [w for line in RULES["base"] for w in line]
PERMISSIONS = [w for w in BASE if w not in (*HEAD, f">{PASSWORD}")]
"""Every permission the base rule grants (key patterns, the channel, commands)."""


def apply(admin: Any, *lines: list[str]) -> None:
    """Run each ``ACL SETUSER memo <words>`` line, as an operator pasting the README would."""
    for words in lines:
        admin.execute_command("ACL", "SETUSER", USER, *words)


def refusals(admin: Any) -> set[tuple[str, str]]:
    """The server's ACL LOG as ``(reason, object)``: what the user was refused."""
    found: set[tuple[str, str]] = set()
    for entry in admin.acl_log(count=1000):
        reason, obj = entry.get("reason"), entry.get("object")
        reason = reason.decode() if isinstance(reason, bytes) else str(reason)
        obj = obj.decode() if isinstance(obj, bytes) else str(obj)
        found.add((reason, obj))
    return found - OPTIONAL_NOISE


def refused(permission: str, log: set[tuple[str, str]]) -> bool:
    """Does the ACL LOG show ``permission`` (``+cmd``, ``~glob``, ``&channel``) was needed?"""
    kind, name = permission[0], permission[1:]
    if kind == "+":
        return ("command", name) in log
    if kind == "&":
        return ("channel", name) in log
    return any(reason == "key" and fnmatch.fnmatchcase(obj, name) for reason, obj in log)


@pytest.fixture(scope="module")
def server(memo_redis_binary: str) -> Iterator[EmbeddedServer]:
    """A private server for this module (TCP too, for the command-line tests)."""
    with EmbeddedServer(memo_redis_binary, tcp=True) as started:
        yield started


@pytest.fixture
def admin(server: EmbeddedServer) -> Iterator[redis.Redis]:
    """The default (all-powerful) user, on an empty server with no user ``memo``, no loaded
    scripts and an empty ACL LOG."""
    client = server.client()
    client.flushall()
    client.script_flush()
    with contextlib.suppress(redis.ResponseError):
        client.acl_deluser(USER)
    command: Callable[..., Any] = client.execute_command
    command("ACL", "LOG", "RESET")
    try:
        yield client
    finally:
        with contextlib.suppress(redis.RedisError):
            client.acl_deluser(USER)
        client.close()


@pytest.fixture
def pruning(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every store also prunes its index (SRANDMEMBER), a path stores take 1 time in 16."""
    monkeypatch.setattr(memo_redis.protocol.requests, "PRUNE_RATE", 1.0)


def as_user(server: EmbeddedServer, **options: Any) -> RedisCaching:
    """A RedisCaching connected as the ACL user; ``scan_threshold=0`` makes prefix
    invalidations use the index (DBSIZE, the DRAIN_INDEX script) as in a large keyspace.

    ``lock_wait`` is short: a script refused after it took a single-flight lock (CLAIM without
    PEXPIRE, STORE and RELEASE without GET) leaves that lock until ``lock_timeout``, and every
    call of the key waits ``lock_wait`` for it before running uncached."""
    options.setdefault("scan_threshold", 0)
    options.setdefault("lock_wait", 0.5)
    return RedisCaching(server.args(username=USER, password=PASSWORD), **options)


@dataclass
class Outcome:
    """What :func:`exercise` saw."""

    wrong: list[str] = field(default_factory=list)
    """Calls that returned something other than the current value (never allowed)."""
    misses: list[str] = field(default_factory=list)
    """Key/value reads that returned their default instead of the value just stored."""
    bodies: dict[str, int] = field(default_factory=dict)
    """How many times each body ran, by name."""
    local: bool = False
    """Whether the L1 served local hits and dropped one on another client's invalidation."""
    health: bool = False
    hit_rate: float | None = None


def exercise(cache: RedisCaching, other: RedisCaching, patience: float = 5.0) -> Outcome:
    """Every feature through ``cache``; ``other`` (another process, as far as the L1 can tell)
    invalidates what ``cache``'s L1 holds. A "database" of versions tells the current values.
    ``patience``: seconds to wait for the L1 to hold a value (it cannot when stores fail)."""
    out = Outcome()
    version = {"users": 1, "feeders": 1, ("users", 7): 1}
    bodies = out.bodies

    def ran(name: str) -> None:
        bodies[name] = bodies.get(name, 0) + 1

    def check(label: str, got: Any, want: Any) -> None:
        if got != want:
            out.wrong.append(f"{label}: got {got!r}, want {want!r}")

    @cached(cache=cache, prefix="sql:{table}")
    def rows(table: str) -> tuple[str, int]:
        ran("rows")
        return (table, version[table])

    @cached(cache=cache, prefix="sql:{table}:{row}")
    def row(table: str, row: int) -> tuple[str, int, int]:
        ran("row")
        return (table, row, version[(table, row)])

    @cached(cache=cache)  # memo:<module>.<qualname>:data:<digest>
    async def arows(table: str) -> tuple[str, int]:
        ran("arows")
        await asyncio.sleep(0)
        return (table, version[table])

    @cached(cache=cache, prefix="sql:{table}", category="slow")
    def slow(table: str) -> tuple[str, int]:
        ran("slow")
        time.sleep(0.1)
        return (table, version[table])

    @cached(cache=cache, prefix="sql:{table}", category="local", local=True)
    def near(table: str) -> tuple[str, int]:
        ran("near")
        return (table, version[table])

    @invalidates("sql:{table}:*", cache=cache)
    def write(table: str) -> None:
        version[table] += 1

    @invalidates("sql:{table}:{row}:*", cache=cache)
    def write_row(table: str, row: int) -> None:
        version[(table, row)] += 1

    def now(table: str) -> tuple[str, int]:
        return (table, version[table])

    def build() -> dict[str, bool]:
        ran("creator")
        return {"built": True}

    # decorated functions: miss, hit, async, many
    for _ in range(2):
        check("rows", rows("users"), now("users"))
        check("arows", asyncio.run(arows("users")), now("users"))
        check("row", row("users", 7), ("users", 7, version[("users", 7)]))
    check("many", rows.many(["users", "feeders"]), [now("users"), now("feeders")])
    # single-flight across threads
    results: list[Any] = []
    threads = [threading.Thread(target=lambda: results.append(slow("feeders")))
               for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    check("single-flight", results, [now("feeders")] * 6)
    # invalidation: by table, by row, other globs, one entry, refresh, cache_clear
    write("users")
    check("after @invalidates(table)", rows("users"), now("users"))
    write_row("users", 7)
    check("after @invalidates(row)", row("users", 7), ("users", 7, version[("users", 7)]))
    version[("users", 7)] += 1
    cache.invalidate("sql:users:7:data:*")  # one category of a row: the row's index, filtered
    check("after invalidate(row category)", row("users", 7),
          ("users", 7, version[("users", 7)]))
    version["users"] += 1
    cache.invalidate("sql:us*")
    check("after invalidate(glob)", rows("users"), now("users"))
    version["users"] += 1
    rows.invalidate("users")
    check("after fn.invalidate", rows("users"), now("users"))
    version["users"] += 1
    check("refresh", rows.refresh("users"), now("users"))
    check("after refresh", rows("users"), now("users"))
    version["feeders"] += 1
    rows.cache_clear()
    check("after cache_clear", rows("feeders"), now("feeders"))
    # the key/value API and get_or_create
    for key, value, ttl in (("sql:report:7", {"total": 3}, 60), ("sql:config:site", [1], None),
                            ("memo:flag", True, 60)):
        cache.set(key, value, ttl=ttl)
        got = cache.get(key, "default")
        if got == "default":
            out.misses.append(key)
        else:
            check(f"get({key})", got, value)
    cache.set_many({"sql:report:8": 8, "sql:report:9": 9})
    for key, got in cache.get_many(["sql:report:8", "sql:report:9"]).items():
        check(f"get_many({key})", got, int(key[-1]))
    cache.delete("sql:report:8")
    cache.invalidate_key("sql:report:9")
    check("after delete", cache.get_many(["sql:report:8", "sql:report:9"]), {})
    for _ in range(2):
        check("get_or_create", cache.get_or_create("sql:report:10", build, ttl=60),
              {"built": True})
    # the L1: local hits, dropped on another client's invalidation
    local = cache.local_cache()
    assert local is not None
    ready = local.wait_ready(patience)
    check("near", near("users"), now("users"))
    held = ready and wait_until(lambda: near("users") == now("users")
                                and near.cache_key("users") in local, patience)
    hits = local.hits
    check("near, local hit", near("users"), now("users"))
    out.local = bool(held and local.hits > hits)
    version["users"] += 1
    other.invalidate("sql:users:*")
    if not wait_until(lambda: near("users") == now("users"), 5.0):
        check("L1 after another client's invalidation", near("users"), now("users"))
    out.health = cache.check_cache_health()
    out.hit_rate = cache.hit_rate()
    return out


def test_readme_rule_is_the_one_in_the_security_docs() -> None:
    """Pins docs/security.md to the README: it shows the same ACL blocks, word for word."""
    assert set(RULES) == {"base", "cluster", "cli", "publisher"}
    assert RULES["base"][0] == [*HEAD[:2], f">{PASSWORD}"], "the rule starts from reset"
    docs = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    assert acl_blocks(docs) == RULES


def test_every_feature_works_with_exactly_the_readme_rule(
        server: EmbeddedServer, admin: redis.Redis, pruning: None,
        caplog: pytest.LogCaptureFixture) -> None:
    """Pins the README's rule as sufficient: as that user, decorated sync and async functions
    (miss, hit, many, single-flight across threads, refresh, cache_clear), @invalidates by table
    and by row, other globs, the key/value API, get_or_create, the L1 dropping a value another
    client invalidated, hit_rate and check_cache_health all work, the server refuses nothing and
    memo_redis logs nothing."""
    apply(admin, *RULES["base"])
    user: Any = admin.acl_getuser(USER)
    assert str(user["channels"]).count("&") == 1 and "__redis__:invalidate" in str(
        user["channels"]), "one channel: the L1's"
    caplog.set_level(logging.WARNING, logger="memo_redis")
    with as_user(server) as cache, as_user(server) as other:
        out = exercise(cache, other)
    assert out.wrong == [] and out.misses == []
    assert out.bodies["slow"] == 1, "single-flight: six threads, one body"
    assert out.bodies["creator"] == 1, "get_or_create: the second call is a hit"
    assert out.bodies["rows"] == 7 and out.bodies["arows"] == 1  # misses after invalidations
    assert out.local, "the L1 served local hits"
    assert out.health and out.hit_rate is not None and out.hit_rate > 0
    assert refusals(admin) == set()
    assert [r.getMessage() for r in caplog.records if r.name.startswith("memo_redis")] == []


def test_scan_is_not_filtered_by_key_patterns(server: EmbeddedServer,
                                              admin: redis.Redis) -> None:
    """Pins what the README says of SCAN: the user lists key names outside its patterns."""
    apply(admin, *RULES["base"])
    admin.set("payroll:alice", "secret")
    user = server.client(username=USER, password=PASSWORD)
    try:
        assert b"payroll:alice" in set(user.scan_iter(count=1000))
        with pytest.raises(redis.exceptions.NoPermissionError):
            user.get("payroll:alice")
    finally:
        user.close()


def _log_names(record: logging.LogRecord, permission: str) -> bool:
    """Does a memo_redis log record name the refused ``permission``?"""
    text = record.getMessage().lower()
    kind, name = permission[0], permission[1:]
    if kind == "+":
        return re.search(rf"(?<![\w|]){re.escape(name)}(?![\w|])", text) is not None
    if kind == "&":
        return "channel" in text
    return "access a key" in text or ("key" in text and "local cache off" in text)


@pytest.mark.parametrize("missing", PERMISSIONS)
def test_each_permission_is_needed_and_its_absence_fails_open_with_one_warning(
        server: EmbeddedServer, admin: redis.Redis, pruning: None, missing: str,
        caplog: pytest.LogCaptureFixture) -> None:
    """Pins the rule as minimal and its failures as harmless: with one permission removed, every
    call still returns the current value (fail-open: a stored value may be missing, never
    wrong), the server's ACL LOG shows that permission was asked for, and memo_redis logs it
    once, named (a command by its name, a key pattern as a key of the operation, the channel as
    a channel), besides at most one error saying an invalidation it could not send is kept."""
    apply(admin, [w for w in BASE if w != missing])
    caplog.set_level(logging.WARNING, logger="memo_redis")
    with as_user(server, lock_wait=0.2) as cache, RedisCaching(server.args()) as other:
        out = exercise(cache, other, patience=0.2)
        local = cache.local_cache()
        assert local is not None
        if missing == "+ping":
            # check_cache_health() answers False and logs nothing; the L1's keep-alive PING
            # (after a second of silence, shortened here) is refused and turns the L1 off.
            assert not out.health
            local.keepalive = 0.05
            assert wait_until(lambda: local.disabled, 5.0)
    assert out.wrong == []
    log = refusals(admin)
    assert refused(missing, log), f"{missing} was never asked for: {sorted(log)}"
    assert not any(refused(p, log) for p in PERMISSIONS if p != missing), sorted(log)
    records = [r for r in caplog.records if r.name.startswith("memo_redis")]
    naming = [r for r in records if _log_names(r, missing)]
    rest = [r.getMessage() for r in records if r not in naming]
    assert len(naming) == 1, [r.getMessage() for r in records]
    assert naming[0].levelno == logging.WARNING
    assert len(rest) <= 1 and all("is kept" in m for m in rest), rest


def cli(server: EmbeddedServer, *args: str) -> subprocess.CompletedProcess[str]:
    """``memo-redis <args>`` as the ACL user, over TCP."""
    url = server.tcp_url
    assert url is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDIS_")}
    env["REDIS_URL"] = url.replace("redis://", f"redis://{USER}:{PASSWORD}@")
    return subprocess.run([sys.executable, "-m", "memo_redis", *args], capture_output=True,
                          text=True, timeout=60, env=env)


def test_the_command_line_and_published_metrics_with_the_readme_additions(
        server: EmbeddedServer, admin: redis.Redis) -> None:
    """Pins the README's additions for the tools: ``memo-redis health`` and ``invalidate`` work
    with the base rule; ``keys``, ``get``, ``stats`` and ``top``'s published metrics need the
    ``cli`` line, ``RedisMetricsPublisher`` the ``publisher`` line; then nothing is refused."""
    apply(admin, *RULES["base"])
    with as_user(server) as cache:
        @cached(cache=cache, prefix="sql:{table}")
        def rows(table: str) -> list[str]:
            return [table]

        assert rows("users") == rows("users") == ["users"]
        key = rows.cache_key("users")
        health = cli(server, "health")
        assert health.returncode == 0, health.stderr
        assert cli(server, "invalidate", "sql:nothing:*").returncode == 0
        assert refusals(admin) == set()
        stats = cli(server, "stats")
        assert stats.returncode != 0 and "no permissions" in stats.stderr.lower()
        command: Callable[..., Any] = admin.execute_command
        command("ACL", "LOG", "RESET")

        apply(admin, *RULES["cli"], *RULES["publisher"])
        publisher = RedisMetricsPublisher(cache, interval=60.0)
        assert publisher.flush() > 0
        for args in (["keys", "sql:*"], ["get", key], ["stats"], ["top", "--once"]):
            done = cli(server, *args)
            assert done.returncode == 0, (args, done.stderr)
        assert "users" in cli(server, "stats", "--json").stdout
        assert cli(server, "invalidate", "sql:users:*").returncode == 0
        assert rows("users") == ["users"]
    assert refusals(admin) == set()


@pytest.mark.cluster
def test_the_readme_cluster_addition_is_enough_on_redis_cluster(
        memo_redis_binary: str, caplog: pytest.LogCaptureFixture) -> None:
    """Pins the README's Cluster line: with the rule plus that line on every node, decorated
    calls, table and glob invalidations, the key/value API, hit_rate and health work on a
    3-primary cluster (hash-tagged key names) and no node refuses anything."""
    caplog.set_level(logging.WARNING, logger="memo_redis")
    with LocalCluster(memo_redis_binary, replicas_per_primary=0) as topology:
        for host, port in topology.nodes:
            with contextlib.closing(redis.Redis(host=host, port=port)) as node:
                apply(node, *RULES["base"], *RULES["cluster"])
        from memo_redis import RedisArgs

        args = RedisArgs(cluster=True, cluster_nodes=tuple(topology.nodes), username=USER,
                         password=PASSWORD)
        version = {"users": 1}
        with RedisCaching(args, strict=True) as cache:
            @cached(cache=cache, prefix="sql:{table}")
            def rows(table: str) -> tuple[str, int]:
                return (table, version[table])

            @invalidates("sql:{table}:*", cache=cache)
            def write(table: str) -> None:
                version[table] += 1

            assert rows("users") == rows("users") == ("users", 1)
            assert rows.many(["users"]) == [("users", 1)]
            write("users")
            assert rows("users") == ("users", 2)
            assert cache.invalidate("sql:*") >= 1 and cache.invalidate("sql:us*") >= 0
            assert cache.set("memo:flag", True) and cache.get("memo:flag") is True
            assert cache.get_or_create("sql:report:7", lambda: 7) == 7
            assert cache.check_cache_health() and cache.hit_rate() >= 0
            assert rows.cache_info().errors == 0
        for host, port in topology.nodes:
            with contextlib.closing(redis.Redis(host=host, port=port)) as node:
                assert refusals(node) == set(), (host, port)
    assert [r.getMessage() for r in caplog.records if r.name.startswith("memo_redis")] == []



@pytest.mark.parametrize(("error", "missing", "named"), [
    (redis.exceptions.NoPermissionError("this user has no permissions to run the 'mget' command"),
     {"MGET"}, "may not run MGET;"),
    (redis.exceptions.NoPermissionError("User memo has no permissions to run the 'client|id' "
                                        "command"), {"CLIENT|ID"}, "may not run CLIENT|ID;"),
    (redis.exceptions.NoPermissionError(
        "this user has no permissions to access one of the keys used as arguments"), {"key"},
     "access a key of this store"),
    (redis.exceptions.NoPermissionError("No permissions to access a key"), {"key"},
     "access a key of this store"),
    (redis.exceptions.ResponseError(  # Redis 7.0: the script's line tells the command
        "The user executing the script can't run this command or subcommand script: "
        f"{memo_redis.protocol.steps.CLAIM.sha}, on @user_script:4."), {"SET"},
     "may not run SET in memo_redis's CLAIM script"),
    (redis.exceptions.ResponseError(  # a line calling two commands: either may be the one
        "The user executing the script can't run this command or subcommand script: "
        f"{memo_redis.protocol.steps.RELEASE.sha}, on @user_script:3."), {"GET", "DEL"},
     "may not run GET or DEL in memo_redis's RELEASE script"),
    (redis.exceptions.ResponseError(  # Redis 7.2+ and Valkey name it
        "ACL failure in script: User memo has no permissions to run the 'pexpire' command "
        f"script: {memo_redis.protocol.steps.CLAIM.sha}, on @user_script:9."), {"PEXPIRE"},
     "may not run PEXPIRE in memo_redis's CLAIM script"),
    (redis.exceptions.ResponseError(
        "The user executing the script can't access at least one of the keys mentioned in the "
        f"command arguments script: {memo_redis.protocol.steps.STORE.sha}, on @user_script:30."),
     {"key"}, "access a key of this store in memo_redis's STORE script"),
    (redis.exceptions.NoScriptError("No matching script. Please use EVAL."), {"SCRIPT|LOAD"},
     "SCRIPT|LOAD"),
])
def test_acl_refusals_are_named_from_each_server_message(
        error: Exception, missing: set[str], named: str) -> None:
    """Pins how the gate names a refused permission from the messages of Redis 7.0 (which names
    neither keys nor a script's commands), Redis 7.2+ and Valkey; other errors are no ACL
    refusal."""
    refusal = acl_refusal("store", error)
    assert refusal is not None
    assert refusal[0] == missing
    assert named in refusal[1] and "README's Security section" in refusal[1]
    assert acl_refusal("store", redis.exceptions.ResponseError("WRONGTYPE Operation")) is None
    assert acl_refusal("store", redis.exceptions.ResponseError("OOM command not allowed")) is None
