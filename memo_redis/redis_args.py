"""The seed's module name for the connection settings (``RedisArgs``).

The implementation lives in :mod:`memo_redis.config`.
"""

from memo_redis.config import RedisArgs

__all__ = ["RedisArgs"]
