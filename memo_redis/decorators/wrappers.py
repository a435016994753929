"""The objects decorators return: wrapt wrappers that pickle by reference, and the cache handles
(``cache_key``, ``invalidate``, ``refresh``, ``many``, ``cache_info``, ``cache_clear``) that bind
like the function does."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import wrapt

from .batch import Args

if TYPE_CHECKING:
    from .cached import CachedCall


class BoundPickle(wrapt.BoundFunctionWrapper):  # type: ignore[type-arg]
    """A bound wrapper that pickles as ``getattr(instance_or_class, name)``."""

    def __reduce_ex__(self, protocol: Any) -> tuple[Any, ...]:
        target = self._self_instance
        if target is None or self._self_binding == "classmethod":
            target = getattr(self.__wrapped__, "__self__", None) or self._self_owner
        return getattr, (target, self.__name__)


class Wrapper(wrapt.FunctionWrapper):  # type: ignore[type-arg]
    """A wrapt wrapper that pickles by reference, as plain functions do (multiprocessing)."""

    __bound_function_wrapper__ = BoundPickle

    def __reduce_ex__(self, protocol: Any) -> str:
        name: str = self.__qualname__
        return name

    def __copy__(self) -> Any:
        return self  # functions are immutable to the copy module

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        return self


class Handles:
    """The cache handles shared by the unbound and the bound wrapper."""

    def _memo_core(self) -> CachedCall:
        raise NotImplementedError

    def _memo_bind(self, args: tuple[Any, ...]
                   ) -> tuple[Any, tuple[Any, ...], Callable[..., Any]]:
        """(instance, args, wrapped) as the wrapper would receive them for a call with ``args``."""
        wrapped: Callable[..., Any] = self.__wrapped__  # type: ignore[attr-defined]
        return None, args, wrapped

    def cache_key(self, *args: Any, **kwargs: Any) -> str:
        """The exact Redis key a call with these arguments uses (hash-tagged on Redis Cluster)."""
        instance, args, _ = self._memo_bind(args)
        return self._memo_core().physical_key(instance, args, kwargs)

    def invalidate(self, *args: Any, **kwargs: Any) -> Any:
        """Invalidate the one entry of this call (race-free); returns the number deleted."""
        instance, args, _ = self._memo_bind(args)
        return self._memo_core().invalidate(instance, args, kwargs)

    def refresh(self, *args: Any, **kwargs: Any) -> Any:
        """Recompute this call now and store the result."""
        instance, args, wrapped = self._memo_bind(args)
        return self._memo_core().refresh(wrapped, instance, args, kwargs)

    def many(self, calls: Iterable[Any]) -> Any:
        """Call the function for many argument sets: one round trip for all lookups, one for
        all stores; returns the results in order.

        Each item is a tuple of positional arguments, a dict of keyword arguments, an
        :class:`Args`, or any other value as the single positional argument:
        ``fetch.many([("users", ["id"]), ("feeders", ["id"])])``.
        """
        prepared = []
        wrapped: Callable[..., Any] = self.__wrapped__  # type: ignore[attr-defined]
        for item in calls:
            args, kwargs = Args.of(item)
            instance, args, wrapped = self._memo_bind(args)
            prepared.append((instance, args, kwargs))
        return self._memo_core().many(wrapped, prepared)

    def cache_info(self) -> Any:
        """Hits, misses, errors and stores counted in this process."""
        return self._memo_core().stats.info()

    def cache_clear(self) -> Any:
        """Invalidate every entry of this function (all arguments); returns the number deleted.

        Also resets :meth:`cache_info`. Uses :meth:`RedisCaching.invalidate` with the pattern
        ``{prefix}:{category}:*`` (placeholders of a templated prefix become ``*``), so it costs
        a SCAN of the keyspace; with a templated prefix, entries of other functions under the
        template's literal head (``sql`` for ``"sql:{table}"``) become misses too.
        """
        return self._memo_core().clear()


class BoundCachedWrapper(Handles, BoundPickle):
    """``obj.method`` / ``Cls.method`` of a ``@cached`` function."""

    def _memo_core(self) -> CachedCall:
        core: CachedCall = self._self_parent._self_core
        return core

    def _memo_bind(self, args: tuple[Any, ...]
                   ) -> tuple[Any, tuple[Any, ...], Callable[..., Any]]:
        # Mirrors wrapt's BoundFunctionWrapper.__call__, so a handle sees what a call would.
        binding = self._self_binding
        wrapped: Callable[..., Any] = self.__wrapped__
        if binding == "classmethod":
            return getattr(wrapped, "__self__", self._self_owner), args, wrapped
        if binding == "staticmethod":
            return None, args, wrapped
        instance = self._self_instance
        owner = self._self_owner
        if instance is None and args and isinstance(owner, type) and isinstance(args[0], owner):
            # Unbound access: Class.method.cache_key(obj, ...) / .refresh(obj, ...).
            return args[0], args[1:], functools.partial(wrapped, args[0])
        return instance, args, wrapped


class CachedWrapper(Handles, Wrapper):
    """The object ``@cached`` returns; its handles bind like the function does."""

    __bound_function_wrapper__ = BoundCachedWrapper

    def _memo_core(self) -> CachedCall:
        core: CachedCall = self._self_core
        return core

    def _memo_bind(self, args: tuple[Any, ...]
                   ) -> tuple[Any, tuple[Any, ...], Callable[..., Any]]:
        wrapped: Callable[..., Any] = self.__wrapped__
        core = self._memo_core()
        if args and core.plan.split_instance(None, args)[0] is not None:
            return None, args, wrapped  # cls passed first: the key recognises it
        cls = core.classmethod_home(self)
        if cls is not None:
            # ``@classmethod`` stacked above ``@cached``, reached as ``Cls.build.cache_key(...)``
            # on Python >= 3.13: the classmethod no longer binds this wrapper, so the handle
            # arrives without ``cls``; it is the class the function was defined in.
            return cls, args, functools.partial(wrapped, cls)
        return None, args, wrapped
