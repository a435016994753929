"""How decorated functions look to type checkers: the call keeps its signature, and the handles
are typed from the function (``invalidate`` takes its arguments, ``refresh`` returns its result).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable
from typing import Any, ParamSpec, Protocol, TypeVar, overload

from .stats import CacheInfo

P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


class CachedFunction(Protocol[P, R_co]):  # type: ignore[misc]
    """A function decorated with :func:`~memo_redis.cached`: callable as before, plus handles."""

    __wrapped__: Callable[P, R_co]

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R_co: ...
    def cache_key(self, *args: P.args, **kwargs: P.kwargs) -> str: ...
    def invalidate(self, *args: P.args, **kwargs: P.kwargs) -> int: ...
    def refresh(self, *args: P.args, **kwargs: P.kwargs) -> R_co: ...
    def many(self, calls: Iterable[Any]) -> list[R_co]: ...
    def cache_info(self) -> CacheInfo: ...
    def cache_clear(self) -> int: ...

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> CachedFunction[P, R_co]: ...
    @overload
    def __get__(self, instance: object, owner: type | None = None) -> Any: ...
    def __get__(self, instance: object | None, owner: type | None = None) -> Any:
        """Methods bind like plain functions (the bound form is typed loosely)."""


class AsyncCachedFunction(Protocol[P, R_co]):  # type: ignore[misc]
    """An ``async def`` function decorated with :func:`~memo_redis.cached`: its handles that
    talk to Redis return awaitables."""

    __wrapped__: Callable[P, Coroutine[Any, Any, R_co]]

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R_co]: ...
    def cache_key(self, *args: P.args, **kwargs: P.kwargs) -> str: ...
    def invalidate(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, int]: ...
    def refresh(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R_co]: ...
    def many(self, calls: Iterable[Any]) -> Coroutine[Any, Any, list[R_co]]: ...
    def cache_info(self) -> CacheInfo: ...
    def cache_clear(self) -> Coroutine[Any, Any, int]: ...

    @overload
    def __get__(self, instance: None,
                owner: type | None = None) -> AsyncCachedFunction[P, R_co]: ...
    @overload
    def __get__(self, instance: object, owner: type | None = None) -> Any: ...
    def __get__(self, instance: object | None, owner: type | None = None) -> Any:
        """Methods bind like plain functions (the bound form is typed loosely)."""


class CachedDecorator(Protocol):
    """What ``cached(...)`` and ``cache.cached(...)`` return: applied to a function, it keeps
    the function's signature and adds the handles."""

    @overload
    def __call__(  # type: ignore[overload-overlap]
        self, func: Callable[P, Coroutine[Any, Any, T]], /
    ) -> AsyncCachedFunction[P, T]: ...
    @overload
    def __call__(self, func: Callable[P, R], /) -> CachedFunction[P, R]: ...
    def __call__(self, func: Callable[..., Any], /) -> Any:
        """Decorate ``func``."""


class InvalidatesDecorator(Protocol):
    """What ``invalidates(...)`` returns: the decorated function keeps its exact type."""

    def __call__(self, func: F, /) -> F:
        """Decorate ``func``."""
