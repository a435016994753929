"""The seed's module name for the cache facade (``RedisCaching``).

The implementation lives in :mod:`memo_redis.facade`.
"""

from memo_redis.facade import RedisCaching

__all__ = ["RedisCaching"]
