"""Short names for the memo_redis pytest plugin's fixtures (see memo_redis/testing.py), and the
``driver`` fixture running a test once through the sync API and once through the async one."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from support import Driver

if TYPE_CHECKING:
    import redis

    from memo_redis.embedded import EmbeddedServer
    from memo_redis.facade import RedisCaching
    from memo_redis.testing import ServerFactory


@pytest.fixture(scope="session")
def server(memo_redis_server: EmbeddedServer) -> EmbeddedServer:
    """The session's private server."""
    return memo_redis_server


@pytest.fixture
def cache(memo_cache: RedisCaching) -> RedisCaching:
    """A RedisCaching on an empty keyspace (shadows pytest's own ``cache`` fixture here)."""
    return memo_cache


@pytest.fixture
def server_factory(memo_redis_factory: ServerFactory) -> ServerFactory:
    """Start extra private servers, stopped at the end of the test."""
    return memo_redis_factory


@pytest.fixture
def raw(memo_redis_server: EmbeddedServer) -> Iterator[redis.Redis]:
    """A bytes-level client on the session server, after FLUSHALL."""
    client = memo_redis_server.client()
    client.flushall()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(params=["sync", "async"], ids=["sync", "async"])
def driver(request: pytest.FixtureRequest) -> Iterator[Driver]:
    """The test runs twice: through the sync API, then through its async twins (see
    :class:`support.Driver`); the async clients it opened are closed afterwards."""
    running = Driver(request.param)
    if "cache" in request.fixturenames:
        running.track(request.getfixturevalue("cache"))
    try:
        yield running
    finally:
        running.close()
