"""``@cached`` and ``@invalidates``, built on wrapt, for sync and async functions.

:mod:`.plan` turns calls into keys, :mod:`.cached` and :mod:`.invalidates` are the decorators,
:mod:`.wrappers` the objects they return (with the cache handles), :mod:`.batch` the ``.many()``
handle, :mod:`.stats` ``cache_info()`` and :mod:`.signatures` their types.
"""

from .batch import Args
from .cached import cached
from .invalidates import invalidates
from .signatures import (
    AsyncCachedFunction,
    CachedDecorator,
    CachedFunction,
    InvalidatesDecorator,
)
from .stats import CacheInfo

__all__ = [
    "Args",
    "AsyncCachedFunction",
    "CacheInfo",
    "CachedDecorator",
    "CachedFunction",
    "InvalidatesDecorator",
    "cached",
    "invalidates",
]
