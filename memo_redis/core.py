"""The import path of :class:`RedisCaching` before the package was restructured.

The cache lives in :mod:`memo_redis.facade` (the engine under it in :mod:`memo_redis.engine`);
``from memo_redis.core import RedisCaching`` keeps working.
"""

from .facade import RedisCaching
from .protocol.entries import MISS

__all__ = ["MISS", "RedisCaching"]
