"""Pytest fixtures for code that uses memo_redis, registered automatically on install.

Every fixture runs against private servers started by :class:`memo_redis.servers.EmbeddedServer`
(never a shared Redis)::

    def test_price_is_cached(memo_cache):
        calls = []

        @cached(cache=memo_cache, ttl=60)
        def price(sku: str) -> int:
            calls.append(sku)
            return 42

        assert price("a") == price("a") == 42
        assert calls == ["a"]

Fixtures:

- ``memo_redis_binary`` (session): path of the server binary; ``MEMO_REDIS_TEST_SERVER`` if set,
  else :func:`memo_redis.servers.find_server_binary`.
- ``memo_redis_server`` (session): one ``EmbeddedServer(tcp=True)`` for the whole run.
- ``memo_redis_factory``: ``factory(**kwargs) -> EmbeddedServer`` starting extra private servers
  (same binary), all stopped when the test ends; for tests that kill or restart servers.
  ``factory(tls=True, tls_auth_clients="yes")`` starts a TLS-only server with throw-away
  certificates (``server.tls_url``, ``server.tls_client()``, ``server.tls_files``); the test is
  skipped, with the reason, when the binary was built without TLS.
- ``memo_cache``: a ``RedisCaching`` on ``memo_redis_server`` after FLUSHALL, closed afterwards.

This module is imported by pytest for every run of every project that installs memo_redis, so
it imports nothing but pytest at import time.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

import pytest

if TYPE_CHECKING:
    from memo_redis.facade import RedisCaching
    from memo_redis.servers.embedded import EmbeddedServer

__all__ = [
    "ServerFactory",
    "memo_cache",
    "memo_redis_binary",
    "memo_redis_factory",
    "memo_redis_server",
]

TEST_SERVER_ENV = "MEMO_REDIS_TEST_SERVER"


class ServerFactory(Protocol):
    """The ``memo_redis_factory`` fixture: start a private server, stopped at test end."""

    def __call__(self, **kwargs: Any) -> EmbeddedServer:
        """Start ``EmbeddedServer(**kwargs)`` (the session's binary unless ``binary=``).

        With ``tls`` the calling test is skipped when the binary was built without TLS.
        """
        ...


def _test_binary() -> str:
    from memo_redis.servers.binary import check_binary, find_server_binary

    chosen = os.environ.get(TEST_SERVER_ENV, "")
    if not chosen:
        return find_server_binary()
    return check_binary(chosen, TEST_SERVER_ENV, os.environ.get("PATH", os.defpath))


def pytest_report_header(config: pytest.Config) -> str:
    """Name the server binary and version the memo_redis fixtures will use."""
    from memo_redis.exceptions import ConfigError
    from memo_redis.servers.embedded import EmbeddedServer

    try:
        server = EmbeddedServer(_test_binary())
        return f"memo_redis: {server.engine} {server.version} ({server.binary})"
    except ConfigError as exc:
        return f"memo_redis: no usable server binary, the fixtures will fail: {exc}"


@pytest.fixture(scope="session")
def memo_redis_binary() -> str:
    """Path of the redis-server / valkey-server binary the other fixtures start."""
    return _test_binary()


@pytest.fixture(scope="session")
def memo_redis_server(memo_redis_binary: str) -> Iterator[EmbeddedServer]:
    """A private server (unix socket plus a TCP port) shared by the whole test session."""
    from memo_redis.servers.embedded import EmbeddedServer

    with EmbeddedServer(memo_redis_binary, tcp=True) as server:
        yield server


@pytest.fixture
def memo_redis_factory(memo_redis_binary: str) -> Iterator[ServerFactory]:
    """Start extra private servers with ``factory(**kwargs)``; all stop when the test ends."""
    from memo_redis.servers.binary import find_server_binary, tls_support_problem
    from memo_redis.servers.embedded import EmbeddedServer

    started: list[EmbeddedServer] = []

    def factory(**kwargs: Any) -> EmbeddedServer:
        kwargs.setdefault("binary", memo_redis_binary)
        if kwargs.get("tls"):
            problem = tls_support_problem(find_server_binary(kwargs["binary"]))
            if problem is not None:
                pytest.skip(problem)
        server = EmbeddedServer(**kwargs)
        started.append(server)
        return server.start()

    try:
        yield factory
    finally:
        for server in reversed(started):
            server.stop()


@pytest.fixture
def memo_cache(memo_redis_server: EmbeddedServer) -> Iterator[RedisCaching]:
    """A ``RedisCaching`` on the session server with an empty keyspace, closed afterwards."""
    from memo_redis.facade import RedisCaching

    admin = memo_redis_server.client()
    try:
        admin.flushall()
    finally:
        admin.close()
    cache = RedisCaching(memo_redis_server.args())
    try:
        yield cache
    finally:
        cache.close()
