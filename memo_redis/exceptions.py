"""The memo_redis error tree: one base, a few subclasses that speak the builtin language."""

from __future__ import annotations


class MemoRedisError(Exception):
    """Base class of every error raised by memo_redis."""


class ConfigError(MemoRedisError, ValueError):
    """A configuration value (argument or environment variable) is invalid.

    The message names the parameter or variable and the bad value (never a password).
    """


class SerializationError(MemoRedisError, ValueError):
    """A value cannot be encoded with the chosen codec; nothing was written."""


class CacheUnavailable(MemoRedisError):
    """Redis could not be reached or failed; raised only in strict mode.

    Wraps redis-py's connection and timeout errors (available as ``__cause__``).
    """


__all__ = ["CacheUnavailable", "ConfigError", "MemoRedisError", "SerializationError"]
