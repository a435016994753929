"""Private, throw-away servers for tests, examples and local development.

Every helper starts real ``redis-server`` / ``valkey-server`` processes in temporary
directories of their own, on a unix socket or loopback ports, with persistence off; stopping
one deletes everything it made. The modules, from the bottom up:

- :mod:`~memo_redis.servers.process`: child processes and their sockets (free ports, dying
  with the parent, PING probes, log tails) and the lifecycle base :class:`ProcessOwner`.
- :mod:`~memo_redis.servers.binary`: finding the server binary (:func:`find_server_binary`),
  its version, and whether it was built with TLS (:func:`tls_support_problem`).
- :mod:`~memo_redis.servers.tls`: throw-away CA, server and client certificates
  (:func:`generate_tls_files`, :class:`TLSFiles`).
- :mod:`~memo_redis.servers.embedded`: one server, :class:`EmbeddedServer` (plain or TLS-only).
- :mod:`~memo_redis.servers.env`: :func:`serve_from_env_or_embedded`, for examples.
- :mod:`~memo_redis.servers.nodes`: what the topologies share (data nodes, admin commands,
  bounded waits, TLS material).
- :mod:`~memo_redis.servers.cluster`: :class:`LocalCluster`, a Redis Cluster.
- :mod:`~memo_redis.servers.sentinel_process`: one Sentinel process.
- :mod:`~memo_redis.servers.sentinel`: :class:`LocalSentinel`, a primary, a replica and
  sentinels.

Every server and topology can run TLS only (``tls=True``), mutual TLS included
(``tls_auth_clients="yes"``), when the binary was built with TLS.

``memo_redis.embedded`` and ``memo_redis.topology`` re-export the same names under their older
import paths.
"""

from memo_redis.servers.binary import find_server_binary, tls_support_problem
from memo_redis.servers.cluster import LocalCluster
from memo_redis.servers.embedded import EmbeddedServer
from memo_redis.servers.env import serve_from_env_or_embedded
from memo_redis.servers.process import Address
from memo_redis.servers.sentinel import LocalSentinel
from memo_redis.servers.tls import TLSFiles, generate_tls_files

__all__ = [
    "Address",
    "EmbeddedServer",
    "LocalCluster",
    "LocalSentinel",
    "TLSFiles",
    "find_server_binary",
    "generate_tls_files",
    "serve_from_env_or_embedded",
    "tls_support_problem",
]
