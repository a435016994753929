"""Short names for the memo_redis pytest plugin's fixtures (see memo_redis/testing.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

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
