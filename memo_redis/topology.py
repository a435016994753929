"""Old import path of :class:`LocalCluster` and :class:`LocalSentinel`.

They live in :mod:`memo_redis.servers` now.
"""

from memo_redis.servers.cluster import LocalCluster
from memo_redis.servers.process import Address
from memo_redis.servers.sentinel import LocalSentinel

__all__ = ["Address", "LocalCluster", "LocalSentinel"]
