"""memo_redis: decorator-based memoization on Redis.

>>> from memo_redis import cached, invalidates
>>> @cached(prefix="sql:{table}", category="data", ttl=300)   # doctest: +SKIP
... def fetch(table, columns, where=()): ...
"""

from .config import RedisArgs
from .context import (
    caching_enabled,
    disabled,
    get_default_cache,
    set_caching_enabled,
    set_default_cache,
)
from .decorators import Args, AsyncCachedFunction, CachedFunction, CacheInfo, cached, invalidates
from .exceptions import CacheUnavailable, ConfigError, MemoRedisError, SerializationError
from .facade import RedisCaching
from .keys import build_cache_key
from .local import LocalCache
from .serialization import Codec, Serializer
from .sql import SQLCacheOrchestrator
from .ttl import DEFAULT_TTLS

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_TTLS",
    "Args",
    "AsyncCachedFunction",
    "CacheInfo",
    "CacheUnavailable",
    "CachedFunction",
    "Codec",
    "ConfigError",
    "LocalCache",
    "MemoRedisError",
    "RedisArgs",
    "RedisCaching",
    "SQLCacheOrchestrator",
    "SerializationError",
    "Serializer",
    "__version__",
    "build_cache_key",
    "cached",
    "caching_enabled",
    "disabled",
    "get_default_cache",
    "invalidates",
    "set_caching_enabled",
    "set_default_cache",
]
