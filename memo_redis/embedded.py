"""Old import path of :class:`EmbeddedServer` and friends.

They live in :mod:`memo_redis.servers` now.
"""

from memo_redis.servers.binary import find_server_binary
from memo_redis.servers.embedded import EmbeddedServer
from memo_redis.servers.env import serve_from_env_or_embedded

__all__ = ["EmbeddedServer", "find_server_binary", "serve_from_env_or_embedded"]
