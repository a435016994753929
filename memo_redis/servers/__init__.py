"""Private, throw-away servers for tests, examples and local development.

Every helper starts real ``redis-server`` / ``valkey-server`` processes in temporary
directories of their own, on a unix socket or loopback ports, with persistence off; stopping
one deletes everything it made. The modules, from the bottom up:

- :mod:`~memo_redis.servers.process`: child processes and their sockets (free ports, dying
  with the parent, PING probes, log tails) and the lifecycle base :class:`ProcessOwner`.
- :mod:`~memo_redis.servers.binary`: finding the server binary (:func:`find_server_binary`)
  and asking it for its version.
- :mod:`~memo_redis.servers.embedded`: one server, :class:`EmbeddedServer`, and
  :func:`serve_from_env_or_embedded` for examples.
- :mod:`~memo_redis.servers.nodes`: what the topologies share (data nodes, admin commands,
  bounded waits).
- :mod:`~memo_redis.servers.cluster`: :class:`LocalCluster`, a Redis Cluster.
- :mod:`~memo_redis.servers.sentinel`: :class:`LocalSentinel`, a primary, a replica and
  sentinels.

``memo_redis.embedded`` and ``memo_redis.topology`` re-export the same names under their older
import paths.
"""

from memo_redis.servers.binary import find_server_binary
from memo_redis.servers.cluster import LocalCluster
from memo_redis.servers.embedded import EmbeddedServer, serve_from_env_or_embedded
from memo_redis.servers.process import Address
from memo_redis.servers.sentinel import LocalSentinel

__all__ = [
    "Address",
    "EmbeddedServer",
    "LocalCluster",
    "LocalSentinel",
    "find_server_binary",
    "serve_from_env_or_embedded",
]
