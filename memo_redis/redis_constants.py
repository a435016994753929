"""The seed's Redis-related constants: ``from memo_redis.redis_constants import DEFAULT_TTLS``.

Each name is defined once elsewhere and only gathered here.
"""

from memo_redis.config import ENVIRONMENT_VARIABLES
from memo_redis.layout import INTERNAL_PREFIX
from memo_redis.ttl import DEFAULT_TTLS, OTHER_CATEGORY_TTL

__all__ = [
    "DEFAULT_TTLS",
    "ENVIRONMENT_VARIABLES",
    "INTERNAL_PREFIX",
    "OTHER_CATEGORY_TTL",
]
