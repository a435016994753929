"""``@cached``: memoize a sync or async function in Redis, on wrapt.

>>> @cached(prefix="sql:{table}", category="data", ttl=300)      # doctest: +SKIP
... def fetch(table, columns, where=()): ...
>>> fetch.cache_key("users", ["id"])                             # doctest: +SKIP
'sql:users:data:03d3bce0b583dbfb'
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Collection, Coroutine
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast, overload

from ..context import caching_disabled, get_default_cache, is_cache
from ..engine import Engine
from ..exceptions import ConfigError
from ..protocol import readthrough
from ..protocol.readthrough import ReadPolicy
from ..protocol.steps import Body
from ..ttl import CATEGORY_DEFAULT, TTL, to_milliseconds
from .batch import Call, many_flow
from .plan import KeyPlan
from .signatures import AsyncCachedFunction, CachedDecorator, CachedFunction
from .stats import Stats
from .wrappers import CachedWrapper

if TYPE_CHECKING:
    from ..facade import RedisCaching

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


def unwrap_descriptor(func: Any) -> Callable[..., Any]:
    """The function inside a ``classmethod``/``staticmethod`` (or ``func`` itself)."""
    if isinstance(func, (classmethod, staticmethod)):
        func = func.__func__
    if not callable(func):
        raise TypeError(f"memo_redis decorators take a function, got {type(func).__name__}")
    function: Callable[..., Any] = func
    return function


def reject_generators(raw: Callable[..., Any], decorator: str) -> None:
    """Refuse a generator function: its result is a lazy iterator that cannot be stored."""
    if inspect.isgeneratorfunction(raw) or inspect.isasyncgenfunction(raw):
        kind = "an async generator" if inspect.isasyncgenfunction(raw) else "a generator"
        raise TypeError(
            f"@{decorator} cannot decorate {raw.__qualname__}: it is {kind} function, whose "
            "result is a lazy iterator that cannot be stored; return a list instead"
        )


def check_cache(cache: object) -> None:
    """Refuse a ``cache=`` that is not a :class:`~memo_redis.RedisCaching`."""
    if cache is not None and not is_cache(cache):
        raise ConfigError(f"cache must be a RedisCaching, got {type(cache).__name__}")


class CachedCall:
    """What one ``@cached`` function does, for the wrapper and its handles."""

    def __init__(self, plan: KeyPlan, policy: ReadPolicy, stats: Stats, *,
                 cache: RedisCaching | None, is_async: bool) -> None:
        self.plan = plan
        self.policy = policy
        self.stats = stats
        self.cache = cache
        self.is_async = is_async
        self.checked: Engine | None = None
        """The engine last found to have the keys ``encrypt=`` needs."""

    def resolve(self) -> RedisCaching:
        """The cache this function uses now (``cache=``, else the default cache)."""
        return self.cache if self.cache is not None else get_default_cache()

    def check_keys(self, engine: Engine) -> None:
        """Raise :class:`ConfigError` unless ``engine`` has the keys ``encrypt=`` needs."""
        engine.codec.sealer_for(self.policy.encrypt)
        self.checked = engine

    def engine(self) -> Engine:
        """The engine of the cache this function uses now, its keys checked."""
        engine = self.resolve().engine
        if self.policy.encrypt is not None and self.checked is not engine:
            self.check_keys(engine)
        return engine

    def key(self, engine: Engine, instance: Any, args: tuple[Any, ...],
            kwargs: dict[str, Any]) -> tuple[str, bytes]:
        """The key and fingerprint of one call."""
        return self.plan.derive(engine.namespace, engine.digest_length, instance, args, kwargs)

    def physical_key(self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        """The Redis key of one call (hash-tagged on Redis Cluster)."""
        engine = self.resolve().engine
        return engine.layout.physical(self.key(engine, instance, args, kwargs)[0])

    def classmethod_home(self, wrapper: object) -> type | None:
        """The class whose body holds ``classmethod(wrapper)``, if any."""
        cls = self.plan.home_class()
        if cls is None:
            return None
        attribute = cls.__dict__.get(self.plan.raw.__name__)
        if isinstance(attribute, classmethod) and attribute.__func__ is wrapper:
            return cls
        return None

    # -- calls ----------------------------------------------------------------------------------

    def call(self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...],
             kwargs: dict[str, Any]) -> Any:
        """A call of the decorated sync function."""
        if caching_disabled.get():
            return wrapped(*args, **kwargs)
        engine = (self.cache or get_default_cache()).engine
        if self.policy.encrypt is not None and self.checked is not engine:
            self.check_keys(engine)
        key, fingerprint = self.key(engine, instance, args, kwargs)
        return engine.sync.read(self.policy, key, fingerprint, wrapped, args, kwargs)

    async def acall(self, wrapped: Callable[..., Awaitable[Any]], instance: Any,
                    args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """A call of the decorated async function."""
        if caching_disabled.get():
            return await wrapped(*args, **kwargs)
        engine = (self.cache or get_default_cache()).engine
        if self.policy.encrypt is not None and self.checked is not engine:
            self.check_keys(engine)
        key, fingerprint = self.key(engine, instance, args, kwargs)
        return await engine.aio.read(self.policy, key, fingerprint, wrapped, args, kwargs)

    # -- handles --------------------------------------------------------------------------------

    def refresh(self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...],
                kwargs: dict[str, Any]) -> Any:
        """Recompute one call now and store the result (an awaitable for async functions)."""
        engine = self.engine()
        key, fingerprint = self.key(engine, instance, args, kwargs)
        flow = readthrough.compute_armed(engine, self.policy, key, fingerprint,
                                         Body(wrapped, args, kwargs))
        return engine.aio.run(flow) if self.is_async else engine.sync.run(flow)

    def invalidate(self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Invalidate one call's entry (an awaitable for async functions)."""
        cache = self.resolve()
        key = self.key(cache.engine, instance, args, kwargs)[0]
        self.stats.recorder.invalidate(key)
        return cache.ainvalidate_key(key) if self.is_async else cache.invalidate_key(key)

    def many(self, wrapped: Callable[..., Any], prepared: list[Call]) -> Any:
        """``.many()`` (an awaitable for async functions)."""
        if caching_disabled.get():
            if self.is_async:
                return _run_each_async(wrapped, prepared)
            return [wrapped(*args, **kwargs) for _, args, kwargs in prepared]
        engine = self.engine()

        def derive(instance: Any, args: tuple[Any, ...],
                   kwargs: dict[str, Any]) -> tuple[str, bytes]:
            return self.key(engine, instance, args, kwargs)

        flow = many_flow(self.policy, engine, derive, wrapped, prepared)
        return engine.aio.run(flow) if self.is_async else engine.sync.run(flow)

    def clear(self) -> Any:
        """Invalidate every entry of the function; reset the counters."""
        cache = self.resolve()
        pattern = self.plan.clear_pattern(cache.engine.namespace)
        self.stats.clear()
        self.stats.recorder.invalidate(pattern)
        return cache.ainvalidate(pattern) if self.is_async else cache.invalidate(pattern)


async def _run_each_async(wrapped: Callable[..., Awaitable[Any]],
                          prepared: list[Call]) -> list[Any]:
    return [await wrapped(*args, **kwargs) for _, args, kwargs in prepared]


@overload
def cached(  # type: ignore[overload-overlap]
    func: Callable[P, Coroutine[Any, Any, T]], /
) -> AsyncCachedFunction[P, T]: ...


@overload
def cached(func: Callable[P, R], /) -> CachedFunction[P, R]: ...


@overload
def cached(
    func: None = None,
    /,
    *,
    prefix: str | None = None,
    category: str = "data",
    ttl: TTL = CATEGORY_DEFAULT,
    cache: RedisCaching | None = None,
    namespace: str | None = None,
    ignore: Collection[str] = (),
    key: Callable[..., str] | None = None,
    unless: Callable[[Any], bool] | None = None,
    cache_none: bool = True,
    strict: bool | None = None,
    single_flight: bool = True,
    early_refresh: float | bool = False,
    jitter: float = 0.0,
    digest_length: int | None = None,
    local: bool = False,
    local_copy: bool = False,
    encrypt: bool | None = None,
) -> CachedDecorator: ...


def cached(
    func: Callable[..., Any] | None = None,
    /,
    *,
    prefix: str | None = None,
    category: str = "data",
    ttl: TTL = CATEGORY_DEFAULT,
    cache: RedisCaching | None = None,
    namespace: str | None = None,
    ignore: Collection[str] = (),
    key: Callable[..., str] | None = None,
    unless: Callable[[Any], bool] | None = None,
    cache_none: bool = True,
    strict: bool | None = None,
    single_flight: bool = True,
    early_refresh: float | bool = False,
    jitter: float = 0.0,
    digest_length: int | None = None,
    local: bool = False,
    local_copy: bool = False,
    encrypt: bool | None = None,
) -> Any:
    """Memoize a function's results in Redis.

    Works on plain and nested functions, methods, classmethods and staticmethods (either
    decorator order) and ``async def`` functions; decorating never connects. ``cache`` defaults
    to :func:`memo_redis.get_default_cache` at each call.

    Keys are ``{prefix}:{category}:{digest}``: ``prefix`` defaults to
    ``{namespace}:{module.qualname}`` (``namespace`` defaults to the cache's, ``"memo"``) and may
    be a template filled from the call's arguments (``"sql:{table}"`` gives
    ``sql:users:data:03d3bce0b583dbfb``); the digest covers every argument after binding to the
    signature and applying defaults, normalized and type-tagged (see :mod:`memo_redis.keys`).
    ``self``/``cls`` are left out (the class is in the qualname) unless the instance defines
    ``__cache_key__()``; a call through a subclass is keyed apart from the base class.
    ``ignore`` names parameters to leave out; ``key(*args, **kwargs)`` (the call's arguments
    without ``self``/``cls``) replaces the digest with the str it returns. An argument of an
    unsupported type raises ``TypeError``.

    ``ttl`` defaults to the category's TTL (data 300, schema 3600, metadata 7200, count 60, others
    300; ``None`` = no expiry). Exceptions are never cached. ``cache_none`` defaults to True:
    ``None`` results are stored (and told from a miss); ``cache_none=False`` recomputes them.
    ``unless(result)`` returning True skips storing that result. Concurrent misses of one key run
    the body once (``single_flight``, across threads, tasks and processes). With
    ``early_refresh`` (True, or an XFetch beta > 0) a hot entry is recomputed shortly before it
    expires by one caller while the others keep the cached value; ``jitter`` (0..1) shortens each
    TTL by a random fraction up to that value. A Redis failure runs the function uncached, logs
    one warning per outage and counts in ``cache_info().errors``; ``strict=True`` (default: the
    cache's ``strict``) raises ``CacheUnavailable`` instead.

    ``local=True`` also keeps results in the cache's in-process :class:`~memo_redis.local.
    LocalCache` (L1), kept coherent with Redis by client tracking: a local hit costs well under a
    microsecond of cache work, and another process's write or invalidation reaches it within
    milliseconds. Local hits return the same object each time, as ``functools.lru_cache`` does:
    don't mutate it. ``local_copy=True`` (implies ``local``) keeps the serialized value instead
    and decodes a fresh object on every local hit, safe to mutate, at the cost of the decode
    (see the Performance page for the figures).

    The decorated function gains ``cache_key(*a, **kw)``, ``invalidate(*a, **kw)``,
    ``refresh(*a, **kw)``, ``many(calls)``, ``cache_info()``, ``cache_clear()`` and
    ``__wrapped__``; on an async function ``invalidate``, ``refresh``, ``many`` and
    ``cache_clear`` return awaitables. The handles of a ``@classmethod`` stacked above
    ``@cached`` work without ``cls`` on every Python version, keyed for the class that defines
    the method (pass ``cls`` first to address a subclass's entry).

    ``encrypt=True`` encrypts this function's values (AES-256-GCM) on a cache that has an
    encryption key but only signs by default (``RedisCaching(signing_key=...,
    encryption_key=..., encrypt=False)``); ``encrypt=False`` only signs them on a cache that
    encrypts. None (default): the cache's choice. A cache without the key needed is a
    ``ConfigError``: at decoration when ``cache=`` is given, else at the first call.
    """
    if isinstance(early_refresh, bool):
        beta = 1.0 if early_refresh else 0.0
    elif isinstance(early_refresh, (int, float)) and early_refresh >= 0:
        beta = float(early_refresh)
    else:
        raise ConfigError(f"early_refresh must be a bool or a number >= 0, got {early_refresh!r}")
    if isinstance(jitter, bool) or not isinstance(jitter, (int, float)) or not 0 <= jitter < 1:
        raise ConfigError(f"jitter must be a number in [0, 1), got {jitter!r}")
    if ttl is not CATEGORY_DEFAULT:
        to_milliseconds(ttl)
    check_cache(cache)
    if unless is not None and not callable(unless):
        raise ConfigError(
            f"unless must be a callable taking the result, got {type(unless).__name__}"
        )
    if func is not None and not callable(func) and not isinstance(func, (classmethod,
                                                                          staticmethod)):
        raise TypeError(
            f"cached() takes its options as keyword arguments, got a positional "
            f"{type(func).__name__} {func!r}; did you mean cached(prefix={func!r})?"
        )
    if isinstance(ignore, str):
        ignore = (ignore,)
    if encrypt is not None and not isinstance(encrypt, bool):
        raise ConfigError(f"encrypt must be True, False or None, got {encrypt!r}")
    if cache is not None and encrypt is not None:
        cache.engine.codec.sealer_for(encrypt)

    def should_store(result: Any) -> bool:
        if result is None and not cache_none:
            return False
        return not (unless is not None and unless(result))

    def decorate(target: Callable[..., Any]) -> Any:
        raw = unwrap_descriptor(target)
        reject_generators(raw, "cached")
        plan = KeyPlan(raw, prefix=prefix, namespace=namespace, category=category, ignore=ignore,
                       key=key, digest_length=digest_length)
        stats = Stats(plan.owner, plan.category)
        policy = ReadPolicy(
            ttl=ttl, category=category, should_store=should_store, single_flight=single_flight,
            early_refresh=beta, jitter=jitter, strict=strict, events=stats,
            local=local or local_copy, local_copy=local_copy,
            tracking_prefix=lambda engine: plan.tracking_prefix(engine.namespace),
            name=plan.owner, encrypt=encrypt)
        core = CachedCall(plan, policy, stats, cache=cache,
                          is_async=inspect.iscoroutinefunction(raw))
        wrapper = CachedWrapper(target, core.acall if core.is_async else core.call)
        wrapper._self_core = core  # type: ignore[attr-defined]
        return wrapper

    if func is not None:
        return decorate(func)
    return cast(CachedDecorator, decorate)
