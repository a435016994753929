"""The seed's module name for the cache facade (``RedisCaching``).

The implementation lives in :mod:`memo_redis.core`.
"""

from memo_redis.core import RedisCaching

__all__ = ["RedisCaching"]
