"""Connection settings from the environment, else a private server: for examples and demos."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from memo_redis.servers.embedded import EmbeddedServer

if TYPE_CHECKING:
    from memo_redis.config import RedisArgs

__all__ = ["TARGET_VARIABLES", "serve_from_env_or_embedded"]

TARGET_VARIABLES = (
    "REDIS_URL",
    "REDIS_SOCKET_PATH",
    "REDIS_HOST",
    "REDIS_CLUSTER_NODES",
    "REDIS_SENTINELS",
)
"""Environment variables any of which names a server to use instead of an embedded one."""


@contextlib.contextmanager
def serve_from_env_or_embedded(environ: Mapping[str, str] | None = None) -> Iterator[RedisArgs]:
    """Yield connection settings: from the environment if configured, else a private server.

    When ``REDIS_URL``, ``REDIS_SOCKET_PATH``, ``REDIS_HOST``, ``REDIS_CLUSTER_NODES`` or
    ``REDIS_SENTINELS`` is set (in ``environ``, default ``os.environ``) this yields
    ``RedisArgs.from_env(environ)``; otherwise it starts an :class:`EmbeddedServer`, yields
    its :meth:`~EmbeddedServer.args` and stops it on exit::

        with serve_from_env_or_embedded() as args:
            cache = RedisCaching(args)
    """
    from memo_redis.config import RedisArgs

    env = os.environ if environ is None else environ
    if any(env.get(name) for name in TARGET_VARIABLES):
        yield RedisArgs.from_env(env)
        return
    with EmbeddedServer() as server:
        yield server.args()
