"""Process-wide state of the decorators: the default cache and the switches that turn caching off.

``disabled()`` turns caching off for the current thread or asyncio task;
``set_caching_enabled(False)`` (or ``MEMO_REDIS_DISABLED=1`` in the environment at import) turns
it off for the whole process, including threads a test client runs the application on.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Final

from .config import disabled_by_environment

if TYPE_CHECKING:
    from .facade import RedisCaching

_cache_class: Callable[[], Any] | None = None
""":class:`~memo_redis.RedisCaching`, registered by :mod:`memo_redis.facade` (which sits above
this module: the default cache is built through this slot, not through an import)."""
_default_cache: RedisCaching | None = None
_built_here = False  # whether _default_cache was built by get_default_cache (so we may close it)
_default_lock = threading.Lock()
_disabled_here: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "memo_redis_disabled", default=False
)


class _DisabledSwitch:
    """True when caching is off for the caller: process-wide, or in its thread or task."""

    __slots__ = ("process_wide",)

    def __init__(self, process_wide: bool) -> None:
        self.process_wide = process_wide

    def get(self) -> bool:
        return self.process_wide or _disabled_here.get()


caching_disabled: Final = _DisabledSwitch(disabled_by_environment())
"""``caching_disabled.get()``: is caching off for the calling thread or task?"""


def set_caching_enabled(enabled: bool) -> None:
    """Turn caching on or off for the whole process (every thread and task).

    While off, decorated functions run their body on every call and store nothing;
    invalidations still run. ``MEMO_REDIS_DISABLED=1`` in the environment starts the process
    with caching off. :func:`disabled` is the per-thread/task form.
    """
    if not isinstance(enabled, bool):
        raise TypeError(f"enabled must be a bool, got {type(enabled).__name__} {enabled!r}")
    caching_disabled.process_wide = not enabled


def caching_enabled() -> bool:
    """Is caching on for the calling thread or task (neither switch turned it off)?"""
    return not caching_disabled.get()


def register_cache_class(cls: Callable[[], Any]) -> None:
    """Called once by :mod:`memo_redis.facade`: the class :func:`get_default_cache` builds."""
    global _cache_class
    _cache_class = cls


def get_default_cache() -> RedisCaching:
    """The process-wide default cache, built on first use with ``RedisCaching()``.

    That reads the ``REDIS_*`` environment variables (see :meth:`RedisArgs.from_env`) but opens
    no connection; the first command does.
    """
    global _default_cache, _built_here
    cache = _default_cache
    if cache is None:
        with _default_lock:
            cache = _default_cache
            if cache is None:
                if _cache_class is None:
                    raise RuntimeError("memo_redis.facade was not imported")
                cache = _default_cache = _cache_class()
                _built_here = True
    return cache


def set_default_cache(cache: RedisCaching | None) -> None:
    """Replace the default cache used by decorators given no ``cache=`` (None: rebuild lazily).

    Functions decorated earlier use the new cache from their next call. A default that
    :func:`get_default_cache` built itself has its connection pool closed (a cache passed in
    here is left to its owner).
    """
    if cache is not None and not is_cache(cache):
        raise TypeError(
            f"set_default_cache() takes a RedisCaching or None, got {type(cache).__name__}"
        )
    global _default_cache, _built_here
    with _default_lock:
        previous, owned = _default_cache, _built_here
        _default_cache, _built_here = cache, False
    if owned and previous is not None and previous is not cache:
        previous.close()


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """Turn caching off inside the ``with`` block, for the current thread or asyncio task only.

    Decorated functions run their body on every call and store nothing; invalidations still run.
    """
    token = _disabled_here.set(True)
    try:
        yield
    finally:
        _disabled_here.reset(token)


def is_cache(value: object) -> bool:
    """Is ``value`` a :class:`~memo_redis.RedisCaching`?"""
    return isinstance(_cache_class, type) and isinstance(value, _cache_class)
