"""``@cached`` and ``@invalidates``, built on wrapt, for sync and async functions.

>>> @cached(prefix="sql:{table}", category="data", ttl=300)      # doctest: +SKIP
... def fetch(table, columns, where=()): ...
>>> fetch.cache_key("users", ["id"])                             # doctest: +SKIP
'sql:users:data:03d3bce0b583dbfb'
"""

from __future__ import annotations

import functools
import inspect
import math
import random
import string
import threading
import time
from collections.abc import Awaitable, Callable, Collection, Iterable
from typing import Any, NamedTuple, ParamSpec, Protocol, TypeVar, cast, overload

import wrapt

from . import envelope, metrics
from .context import caching_disabled, get_default_cache
from .core import MISS, Claim, Lookup, RedisCaching
from .exceptions import CacheUnavailable, ConfigError
from .flight import AsyncFlights, Flights
from .keys import (
    ArgumentBinder,
    KeyTemplate,
    canonical_bytes,
    canonical_encode,
    fingerprint_of,
    glob_escape,
)
from .layout import INTERNAL_PREFIX
from .local import LocalCache
from .ttl import CATEGORY_DEFAULT, TTL, to_milliseconds

P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)


class CacheInfo(NamedTuple):
    """Per-process counters of one ``@cached`` function, like ``functools.lru_cache``'s.

    ``hits`` counts every hit; ``l1_hits`` is the part of them served by the in-process L1
    (``local=True``) without a Redis round trip.
    """

    hits: int
    misses: int
    errors: int
    stores: int
    l1_hits: int = 0


class CachedFunction(Protocol[P, R_co]):  # type: ignore[misc]
    """A function decorated with :func:`cached`: callable as before, plus cache handles."""

    __wrapped__: Callable[P, R_co]

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R_co: ...
    def cache_key(self, *args: P.args, **kwargs: P.kwargs) -> str: ...
    def invalidate(self, *args: P.args, **kwargs: P.kwargs) -> Any: ...
    def refresh(self, *args: P.args, **kwargs: P.kwargs) -> R_co: ...
    def many(self, calls: Iterable[Any]) -> Any: ...
    def cache_info(self) -> CacheInfo: ...
    def cache_clear(self) -> Any: ...

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> CachedFunction[P, R_co]: ...
    @overload
    def __get__(self, instance: object, owner: type | None = None) -> Any: ...
    def __get__(self, instance: object | None, owner: type | None = None) -> Any:
        """Methods bind like plain functions (the bound form is typed loosely)."""


CachedFactory = Callable[[Callable[P, R]], CachedFunction[P, R]]
InvalidatesFactory = Callable[[Callable[P, R]], Callable[P, R]]


class _Stats:
    """``cache_info()``'s exact counters, mirrored into the function's :mod:`.metrics`."""

    __slots__ = ("_lock", "_record", "errors", "hits", "l1_hits", "misses", "recorder", "stores")

    def __init__(self, function: str, category: str) -> None:
        self.hits = self.misses = self.errors = self.stores = self.l1_hits = 0
        # ``x += 1`` on an attribute is not atomic: concurrent callers would lose counts.
        self._lock = threading.Lock()
        recorder = self.recorder = metrics.register(function, category)
        self._record: dict[str, Callable[[], None]] = {
            "hits": recorder.hit, "misses": recorder.miss, "errors": recorder.error,
            "stores": recorder.store, "l1_hits": recorder.l1_hit,
        }

    def count(self, field: str) -> None:
        with self._lock:
            setattr(self, field, getattr(self, field) + 1)
            if field == "l1_hits":
                self.hits += 1
        self._record[field]()

    def info(self) -> CacheInfo:
        with self._lock:
            return CacheInfo(self.hits, self.misses, self.errors, self.stores, self.l1_hits)

    def clear(self) -> None:
        with self._lock:
            self.hits = self.misses = self.errors = self.stores = self.l1_hits = 0


def _unwrap_descriptor(func: Any) -> tuple[Callable[..., Any], str]:
    if isinstance(func, classmethod):
        return func.__func__, "classmethod"
    if isinstance(func, staticmethod):
        return func.__func__, "staticmethod"
    if not callable(func):
        raise TypeError(f"memo_redis decorators take a function, got {type(func).__name__}")
    return func, "function"


def _reject_generators(raw: Callable[..., Any], decorator: str) -> None:
    if inspect.isgeneratorfunction(raw) or inspect.isasyncgenfunction(raw):
        kind = "an async generator" if inspect.isasyncgenfunction(raw) else "a generator"
        raise TypeError(
            f"@{decorator} cannot decorate {raw.__qualname__}: it is {kind} function, whose "
            "result is a lazy iterator that cannot be stored; return a list instead"
        )


_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def _owner(raw: Callable[..., Any]) -> str:
    return f"{raw.__module__}.{raw.__qualname__}"


class _Plan:
    """Everything about one decorated function that does not depend on a call's arguments."""

    def __init__(self, raw: Callable[..., Any], *, prefix: str | None, namespace: str | None,
                 category: str, ignore: Collection[str], key: Callable[..., Any] | None,
                 digest_length: int | None) -> None:
        if not isinstance(category, str) or not category or ":" in category or "*" in category:
            raise ConfigError(
                f"category must be a non-empty string without ':' or '*', got {category!r}"
            )
        if key is not None and not callable(key):
            raise ConfigError(f"key must be a callable returning a str, got {type(key).__name__}")
        if digest_length is not None and (
            isinstance(digest_length, bool) or not isinstance(digest_length, int)
            or not 1 <= digest_length <= 64
        ):
            raise ConfigError(f"digest_length must be an integer in 1..64, got {digest_length!r}")
        if namespace is not None and (
            not isinstance(namespace, str) or not namespace or "*" in namespace
        ):
            raise ConfigError(
                f"namespace must be a non-empty string without '*', got {namespace!r}"
            )
        if prefix is not None and (not isinstance(prefix, str) or not prefix):
            raise ConfigError(f"prefix must be a non-empty str or None, got {prefix!r}")
        for name, value in (("prefix", prefix), ("namespace", namespace)):
            if value is not None and (value + ":").startswith(INTERNAL_PREFIX):
                raise ConfigError(f"{name} {value!r} is in the {INTERNAL_PREFIX!r} namespace, "
                                  "reserved for memo_redis's bookkeeping keys")
        self.raw = raw
        self.owner = _owner(raw)
        self.category = category
        self.key_fn = key
        self.digest_length = digest_length
        self.namespace = namespace
        self.plain = ArgumentBinder(raw, ignore=ignore)
        # A method's instance arrives apart from its arguments (wrapt's ``instance``). Without a
        # positional first parameter to drop (``def m(*args)``), bind the arguments alone.
        first = next(iter(inspect.signature(raw).parameters.values()), None)
        self.method = (
            ArgumentBinder(raw, ignore=ignore, skip_first=True)
            if first is not None and first.kind in _POSITIONAL
            else None
        )
        # "mod.Outer.Cls" for a function defined in a class body, else None.
        home, _, _ = raw.__qualname__.rpartition(".")
        self.home_module = raw.__module__
        self.home_qualname = home if home and not home.endswith(">") else None
        self.prefix = prefix
        self.template = (
            KeyTemplate(prefix, self.plain.parameters, owner=self.owner) if prefix else None
        )
        self._scopes: dict[str, str] = {}

    def scope(self, cache: RedisCaching, bound: dict[str, Any] | None) -> str:
        """``{prefix}:{category}``, e.g. ``sql:users:data`` or ``memo:app.fetch:data``."""
        template = self.template
        if template is None:
            namespace = self.namespace or cache.namespace
            scope = self._scopes.get(namespace)
            if scope is None:
                scope = self._scopes[namespace] = f"{namespace}:{self.owner}:{self.category}"
            return scope
        if template.is_static:
            return f"{template.render({}, escape=False)}:{self.category}"
        assert bound is not None
        return f"{template.render(bound, escape=False)}:{self.category}"

    def tracking_prefix(self, cache: RedisCaching) -> str:
        """The longest fixed start of this function's keys (what the L1 asks Redis to track)."""
        if self.prefix is None:
            return self.scope(cache, None) + ":"
        literal: str = next(iter(string.Formatter().parse(self.prefix)))[0]
        return literal

    def clear_pattern(self, cache: RedisCaching) -> str:
        """A pattern matching every entry of this function (placeholders become ``*``)."""
        if self.prefix is None:
            return glob_escape(self.scope(cache, None)) + ":*"
        pieces = []
        for literal, field, _, _ in string.Formatter().parse(self.prefix):
            pieces.append(glob_escape(literal))
            if field is not None:
                pieces.append("*")
        return "".join(pieces) + f":{glob_escape(self.category)}:*"

    def _is_home(self, cls: type) -> bool:
        return cls.__qualname__ == self.home_qualname and cls.__module__ == self.home_module

    def derive(self, cache: RedisCaching, instance: Any, args: tuple[Any, ...],
               kwargs: dict[str, Any]) -> tuple[str, bytes]:
        """The Redis key and the argument fingerprint of one call."""
        if (
            instance is None and args and self.home_qualname is not None
            and isinstance(args[0], type) and any(self._is_home(c) for c in args[0].__mro__)
        ):
            # ``@classmethod`` above ``@cached`` on Python >= 3.13 (which no longer chains
            # classmethod.__get__) calls the wrapper with cls as a plain first argument. A class
            # is never a valid key argument, so this cannot misread a real call.
            instance, args = args[0], args[1:]
        if instance is None or self.method is None:
            binder = self.plain
            bound = binder.bind(args, kwargs)
        else:
            binder = self.method
            bound = binder.bind((instance, *args), kwargs)
        if self.key_fn is not None:
            custom = self.key_fn(*args, **kwargs)
            if not isinstance(custom, str) or not custom:
                raise TypeError(
                    f"key= of {self.owner} must return a non-empty str, got {custom!r}"
                )
            scope = self.scope(cache, bound)
            return f"{scope}:{custom}", fingerprint_of(f"{self.owner}\0{custom}".encode())[1]
        items = binder.key_items(bound)
        if self.template is not None:
            # A shared prefix ("sql:{table}") must not let two functions serve each other's
            # results: the function is part of the digest (the default scope already names it).
            items = [("<function>", self.owner), *items]
        if instance is not None:
            cls = instance if isinstance(instance, type) else type(instance)
            if cls is not instance and getattr(cls, "__cache_key__", None) is not None:
                items = [("self", canonical_encode(instance, "self")), *items]
            elif not self._is_home(cls):
                # Called through a subclass: its entries must not be served to the base class
                # (a classmethod reading ``cls.table``, a method calling overridden helpers).
                items = [("<class>", f"{cls.__module__}.{cls.__qualname__}"), *items]
        digest, fingerprint = fingerprint_of(canonical_bytes(items))
        scope = self.scope(cache, bound)
        return f"{scope}:{digest[: self.digest_length or cache.digest_length]}", fingerprint


def _resolve(cache: RedisCaching | None) -> RedisCaching:
    return cache if cache is not None else get_default_cache()


class _Cached:
    """The behaviour shared by the sync and async wrappers of one ``@cached`` function."""

    def __init__(self, plan: _Plan, *, cache: RedisCaching | None, ttl: TTL, unless:
                 Callable[[Any], bool] | None, cache_none: bool, strict: bool | None,
                 single_flight: bool, early_refresh: float, jitter: float,
                 local: bool = False) -> None:
        self.plan = plan
        self.local = local
        self._local_for: tuple[RedisCaching, LocalCache | None] | None = None
        self.cache = cache
        self.ttl = ttl
        self.unless = unless
        self.cache_none = cache_none
        self.strict = strict
        self.single_flight = single_flight
        self.beta = early_refresh
        self.jitter = jitter
        self.stats = _Stats(plan.owner, plan.category)
        self.is_async = False
        self.many = functools.partial(_many, self)
        self.amany = functools.partial(_amany, self)
        self.flights = Flights()
        self.aflights = AsyncFlights()

    # -- shared pieces ------------------------------------------------------------------------

    def local_cache(self, cache: RedisCaching) -> LocalCache | None:
        """The cache's L1, tracking this function's keys (None where it cannot run)."""
        known = self._local_for
        if known is not None and known[0] is cache:
            return known[1]
        local = cache.local_cache()
        if local is not None:
            local.track_prefix(self.plan.tracking_prefix(cache))
        self._local_for = (cache, local)
        return local

    @staticmethod
    def keep_local(local: LocalCache, key: str, look: Lookup, epoch: int) -> None:
        env = look.envelope
        size = len(env.body) if env is not None else 64
        ttl_ms = None
        if env is not None and env.expires_ms:
            ttl_ms = max(1, env.expires_ms - int(time.time() * 1000))
        local.put(key, look.value, size, ttl_ms, epoch)

    def ttl_ms(self, cache: RedisCaching) -> int | None:
        ttl = cache.ttl_for(self.plan.category) if self.ttl is CATEGORY_DEFAULT else self.ttl
        ms = to_milliseconds(ttl)
        if ms is not None and self.jitter:
            ms = max(1, round(ms * (1.0 - random.random() * self.jitter)))
        return ms

    def strict_for(self, cache: RedisCaching) -> bool:
        return cache.strict if self.strict is None else self.strict

    def failed(self, cache: RedisCaching, error: CacheUnavailable) -> None:
        self.stats.count("errors")
        if self.strict_for(cache):
            raise error

    def storable(self, result: Any) -> bool:
        if result is None and not self.cache_none:
            return False
        return not (self.unless is not None and self.unless(result))

    def due_early(self, look: Lookup) -> bool:
        """XFetch: refresh before expiry with a probability growing as expiry approaches."""
        env = look.envelope
        if not self.beta or env is None or not env.flags & envelope.FLAG_EARLY:
            return False
        now_ms = time.time() * 1000.0
        gap = -env.delta_ms * self.beta * math.log(random.random() or 1e-12)
        return now_ms + gap >= env.expires_ms

    def early(self, ttl_ms: int | None, delta_ms: int) -> tuple[int, int] | None:
        if not self.beta or ttl_ms is None:
            return None
        return int(time.time() * 1000) + ttl_ms, delta_ms

    def wanted(self, cache: RedisCaching, result: Any, elapsed: float) -> bool:
        # A computation slower than the fence TTL might have outlived an invalidation's fence.
        return self.storable(result) and elapsed * 1000 < cache.fence_ttl_ms

    def store(self, cache: RedisCaching, key: str, fingerprint: bytes, look: Lookup,
              result: Any, started: float, token: bytes | None) -> None:
        elapsed = time.monotonic() - started
        stored = attempted = False
        try:
            if self.wanted(cache, result, elapsed):
                attempted = True
                ttl_ms = self.ttl_ms(cache)
                stored = cache.store(key, result, ttl_ms, seen=look, fingerprint=fingerprint,
                                     token=token, early=self.early(ttl_ms, round(elapsed * 1000)))
        except CacheUnavailable as error:
            # A store Redis refused (NOPERM, WRONGTYPE, a script error) must not leave the lock
            # to expire under the waiters; after an outage the release would only time out too.
            if token is not None and cache.is_refusal(error):
                cache.release(key, look, token)
            self.failed(cache, error)
            return
        except BaseException:
            # e.g. SerializationError: never leave the lock to time out under the waiters.
            if token is not None:
                cache.release(key, look, token)
            raise
        self.stats.recorder.computed(int(elapsed * 1e9))
        if stored:
            self.stats.count("stores")
        else:
            if attempted:
                self.stats.recorder.refused_store()
            if token is not None:
                cache.release(key, look, token)

    async def astore(self, cache: RedisCaching, key: str, fingerprint: bytes, look: Lookup,
                     result: Any, started: float, token: bytes | None) -> None:
        elapsed = time.monotonic() - started
        stored = attempted = False
        try:
            if self.wanted(cache, result, elapsed):
                attempted = True
                ttl_ms = self.ttl_ms(cache)
                stored = await cache.astore(
                    key, result, ttl_ms, seen=look, fingerprint=fingerprint, token=token,
                    early=self.early(ttl_ms, round(elapsed * 1000)),
                )
        except CacheUnavailable as error:
            if token is not None and cache.is_refusal(error):
                await cache.arelease(key, look, token)
            self.failed(cache, error)
            return
        except BaseException:
            if token is not None:
                await cache.arelease(key, look, token)
            raise
        self.stats.recorder.computed(int(elapsed * 1e9))
        if stored:
            self.stats.count("stores")
        else:
            if attempted:
                self.stats.recorder.refused_store()
            if token is not None:
                await cache.arelease(key, look, token)

    def broken(self, cache: RedisCaching, key: str) -> None:
        """A claim could not arm ``key`` (a bookkeeping key of the wrong type): run uncached."""
        self.stats.count("errors")
        cache._warn_key(key, "has bookkeeping keys of the wrong type (its fence or generations "
                        "cannot be set); calls of it run uncached")

    # -- sync -----------------------------------------------------------------------------------

    def call(self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...],
             kwargs: dict[str, Any]) -> Any:
        if caching_disabled.get():
            return wrapped(*args, **kwargs)
        cache = self.cache or get_default_cache()
        key, fingerprint = self.plan.derive(cache, instance, args, kwargs)
        local = self.local_cache(cache) if self.local else None
        if local is not None:
            value = local.get(key)
            if not local.is_miss(value):
                self.stats.count("l1_hits")
                return value
            epoch = local.epoch()
        try:
            look = cache.lookup(key, fingerprint)
        except CacheUnavailable as error:
            self.failed(cache, error)
            return wrapped(*args, **kwargs)
        if look.value is not MISS:
            if self.beta and self.due_early(look):
                return self.refresh_early(cache, key, fingerprint, look, wrapped, args, kwargs)
            self.stats.count("hits")
            if local is not None:
                self.keep_local(local, key, look, epoch)
            return look.value
        self.stats.count("misses")
        if not self.single_flight:
            return self.compute_armed(cache, key, fingerprint, wrapped, args, kwargs)
        # One deadline for both layers: a thread that waited lock_wait for another thread must
        # not then wait lock_wait again for the Redis lock.
        deadline = time.monotonic() + cache.lock_wait
        return self.fill(cache, key, fingerprint, look, wrapped, args, kwargs, deadline)

    def fill(self, cache: RedisCaching, key: str, fingerprint: bytes, look: Lookup,
             wrapped: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
             deadline: float) -> Any:
        """Claim the entry (arm its fence, try the cross-process lock), then compute under the
        lock, or join (until ``deadline``) the computation of the state the claim observed."""
        token = envelope.new_token()
        try:
            claim = cache.claim(key, look, token, fingerprint)
        except CacheUnavailable as error:
            self.failed(cache, error)
            return wrapped(*args, **kwargs)
        got = claim.look
        if got.value is not MISS:  # a holder stored between our lookup and our claim
            if claim.taken:
                cache.release(key, got, token)
            return got.value
        if claim.taken:
            return self.flights.lead(
                (key, *_flight_id(got)),
                lambda: self.compute(cache, key, fingerprint, got, wrapped, args, kwargs, token),
            )
        if not _armed(got):
            self.broken(cache, key)
            return wrapped(*args, **kwargs)
        return self.flights.run(
            (key, *_flight_id(got)), max(0.0, deadline - time.monotonic()),
            lambda: self.wait_turn(cache, key, fingerprint, got, wrapped, args, kwargs, token,
                                   deadline, claim.held),
        )

    def wait_turn(self, cache: RedisCaching, key: str, fingerprint: bytes, look: Lookup,
                  wrapped: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                  token: bytes, deadline: float, held: bool) -> Any:
        """Wait for the lock holder of ``look``'s state (``held``: it was found holding it):
        claim again until a value is stored, the lock is ours, or ``deadline`` passes (then
        compute without the lock, against the fence ``look`` observed)."""
        delay = 0.002
        moves = 0
        while True:
            if held or moves >= _MAX_MOVES:
                moves = 0
                if time.monotonic() + delay > deadline:
                    return self.compute(cache, key, fingerprint, look, wrapped, args, kwargs,
                                        None)
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
            try:
                claim = cache.claim(key, look, token, fingerprint)
            except CacheUnavailable as error:
                self.failed(cache, error)
                return wrapped(*args, **kwargs)
            got = claim.look
            if got.value is not MISS:
                if claim.taken:
                    cache.release(key, got, token)
                return got.value
            if claim.taken:
                return self.compute(cache, key, fingerprint, got, wrapped, args, kwargs, token)
            if not _armed(got):
                self.broken(cache, key)
                return wrapped(*args, **kwargs)
            # Not held: the state moved (invalidated meanwhile, or the fence was re-armed);
            # claim again at once under the new one.
            held, moves, look = claim.held, moves + (not claim.held), got

    def compute_armed(self, cache: RedisCaching, key: str, fingerprint: bytes,
                      wrapped: Callable[..., Any], args: tuple[Any, ...],
                      kwargs: dict[str, Any]) -> Any:
        """Arm the entry (no lock), run the body, store against what was armed."""
        try:
            look = cache.arm(key, fingerprint)
        except CacheUnavailable as error:
            self.failed(cache, error)
            return wrapped(*args, **kwargs)
        return self.compute(cache, key, fingerprint, look, wrapped, args, kwargs, None)

    def compute(self, cache: RedisCaching, key: str, fingerprint: bytes, look: Lookup,
                wrapped: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                token: bytes | None) -> Any:
        started = time.monotonic()
        try:
            result = wrapped(*args, **kwargs)
        except BaseException:
            if token is not None:
                cache.release(key, look, token)
            raise
        self.store(cache, key, fingerprint, look, result, started, token)
        return result

    def refresh_early(self, cache: RedisCaching, key: str, fingerprint: bytes, look: Lookup,
                      wrapped: Callable[..., Any], args: tuple[Any, ...],
                      kwargs: dict[str, Any]) -> Any:
        token = envelope.new_token()
        try:
            claim: Claim | None = cache.claim(key, look, token, fingerprint)
        except CacheUnavailable:
            claim = None
        if claim is None or not claim.taken:
            self.stats.count("hits")
            return look.value
        self.stats.count("misses")
        return self.compute(cache, key, fingerprint, claim.look, wrapped, args, kwargs, token)

    def refresh(self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...],
                kwargs: dict[str, Any]) -> Any:
        cache = _resolve(self.cache)
        key, fingerprint = self.plan.derive(cache, instance, args, kwargs)
        return self.compute_armed(cache, key, fingerprint, wrapped, args, kwargs)

    # -- async ------------------------------------------------------------------------------------

    async def acall(self, wrapped: Callable[..., Awaitable[Any]], instance: Any,
                    args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if caching_disabled.get():
            return await wrapped(*args, **kwargs)
        cache = self.cache or get_default_cache()
        key, fingerprint = self.plan.derive(cache, instance, args, kwargs)
        local = self.local_cache(cache) if self.local else None
        if local is not None:
            value = local.get(key)
            if not local.is_miss(value):
                self.stats.count("l1_hits")
                return value
            epoch = local.epoch()
        try:
            look = await cache.alookup(key, fingerprint)
        except CacheUnavailable as error:
            self.failed(cache, error)
            return await wrapped(*args, **kwargs)
        if look.value is not MISS and local is not None and not (
            self.beta and self.due_early(look)
        ):
            self.keep_local(local, key, look, epoch)
        if look.value is not MISS:
            if self.beta and self.due_early(look):
                return await self.arefresh_early(cache, key, fingerprint, look, wrapped, args,
                                                 kwargs)
            self.stats.count("hits")
            return look.value
        self.stats.count("misses")
        if not self.single_flight:
            return await self.acompute_armed(cache, key, fingerprint, wrapped, args, kwargs)
        deadline = time.monotonic() + cache.lock_wait
        return await self.afill(cache, key, fingerprint, look, wrapped, args, kwargs, deadline)

    async def afill(self, cache: RedisCaching, key: str, fingerprint: bytes, look: Lookup,
                    wrapped: Callable[..., Awaitable[Any]], args: tuple[Any, ...],
                    kwargs: dict[str, Any], deadline: float) -> Any:
        token = envelope.new_token()
        try:
            claim = await cache.aclaim(key, look, token, fingerprint)
        except CacheUnavailable as error:
            self.failed(cache, error)
            return await wrapped(*args, **kwargs)
        got = claim.look
        if got.value is not MISS:
            if claim.taken:
                await cache.arelease(key, got, token)
            return got.value
        if claim.taken:
            return await self.aflights.lead(
                (key, *_flight_id(got)),
                lambda: self.acompute(cache, key, fingerprint, got, wrapped, args, kwargs, token),
            )
        if not _armed(got):
            self.broken(cache, key)
            return await wrapped(*args, **kwargs)
        return await self.aflights.run(
            (key, *_flight_id(got)), max(0.0, deadline - time.monotonic()),
            lambda: self.await_turn(cache, key, fingerprint, got, wrapped, args, kwargs, token,
                                    deadline, claim.held),
        )

    async def await_turn(self, cache: RedisCaching, key: str, fingerprint: bytes, look: Lookup,
                         wrapped: Callable[..., Awaitable[Any]], args: tuple[Any, ...],
                         kwargs: dict[str, Any], token: bytes, deadline: float,
                         held: bool) -> Any:
        """Async :meth:`wait_turn`."""
        import asyncio

        delay = 0.002
        moves = 0
        while True:
            if held or moves >= _MAX_MOVES:
                moves = 0
                if time.monotonic() + delay > deadline:
                    return await self.acompute(cache, key, fingerprint, look, wrapped, args,
                                               kwargs, None)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.05)
            try:
                claim = await cache.aclaim(key, look, token, fingerprint)
            except CacheUnavailable as error:
                self.failed(cache, error)
                return await wrapped(*args, **kwargs)
            got = claim.look
            if got.value is not MISS:
                if claim.taken:
                    await cache.arelease(key, got, token)
                return got.value
            if claim.taken:
                return await self.acompute(cache, key, fingerprint, got, wrapped, args, kwargs,
                                           token)
            if not _armed(got):
                self.broken(cache, key)
                return await wrapped(*args, **kwargs)
            held, moves, look = claim.held, moves + (not claim.held), got

    async def acompute_armed(self, cache: RedisCaching, key: str, fingerprint: bytes,
                             wrapped: Callable[..., Awaitable[Any]], args: tuple[Any, ...],
                             kwargs: dict[str, Any]) -> Any:
        """Async :meth:`compute_armed`."""
        try:
            look = await cache.aarm(key, fingerprint)
        except CacheUnavailable as error:
            self.failed(cache, error)
            return await wrapped(*args, **kwargs)
        return await self.acompute(cache, key, fingerprint, look, wrapped, args, kwargs, None)

    async def acompute(self, cache: RedisCaching, key: str, fingerprint: bytes, look: Lookup,
                       wrapped: Callable[..., Awaitable[Any]], args: tuple[Any, ...],
                       kwargs: dict[str, Any], token: bytes | None) -> Any:
        started = time.monotonic()
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException:
            if token is not None:
                await cache.arelease(key, look, token)
            raise
        await self.astore(cache, key, fingerprint, look, result, started, token)
        return result

    async def arefresh_early(self, cache: RedisCaching, key: str, fingerprint: bytes,
                             look: Lookup, wrapped: Callable[..., Awaitable[Any]],
                             args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        token = envelope.new_token()
        try:
            claim: Claim | None = await cache.aclaim(key, look, token, fingerprint)
        except CacheUnavailable:
            claim = None
        if claim is None or not claim.taken:
            self.stats.count("hits")
            return look.value
        self.stats.count("misses")
        return await self.acompute(cache, key, fingerprint, claim.look, wrapped, args, kwargs,
                                   token)

    async def arefresh(self, wrapped: Callable[..., Awaitable[Any]], instance: Any,
                       args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        cache = _resolve(self.cache)
        key, fingerprint = self.plan.derive(cache, instance, args, kwargs)
        return await self.acompute_armed(cache, key, fingerprint, wrapped, args, kwargs)


_Call = tuple[Any, tuple[Any, ...], dict[str, Any]]


class _Batch:
    """One ``.many()`` call: which items hit, which distinct calls must run, what to store.

    The sync and async paths differ only in how they run :attr:`to_run`.
    """

    def __init__(self, core: _Cached, cache: RedisCaching, prepared: list[_Call]) -> None:
        self.core = core
        self.cache = cache
        self.prepared = prepared
        self.derived = [core.plan.derive(cache, instance, args, kwargs)
                        for instance, args, kwargs in prepared]
        self.values: dict[str, Any] = {}
        self.looks: dict[str, Lookup] = {}

    def uncached(self) -> list[_Call]:
        """Every distinct call, for running without the cache (Redis failed)."""
        seen: dict[str, _Call] = {}
        for call, (key, _) in zip(self.prepared, self.derived, strict=True):
            seen.setdefault(key, call)
        self.looks = {}
        return list(seen.values())

    def plan(self, looks: list[Lookup]) -> list[_Call]:
        """Record the hits; return the distinct calls that must run, in order."""
        to_run: list[_Call] = []
        for call, (key, _), look in zip(self.prepared, self.derived, looks, strict=True):
            if look.value is not MISS:
                self.core.stats.count("hits")
                self.values[key] = look.value
            elif key not in self.looks:
                self.core.stats.count("misses")
                self.looks[key] = look
                to_run.append(call)
        return to_run

    def to_arm(self) -> list[tuple[str, bytes]]:
        """The (key, fingerprint) of every miss: each is armed before its call runs."""
        fingerprints = dict(self.derived)
        return [(key, fingerprints[key]) for key in self.looks]

    def armed(self, looks: list[Lookup]) -> None:
        """Record what arming the misses observed: their stores are checked against it."""
        self.looks = dict(zip(self.looks, looks, strict=True))

    def settle(self, ran: list[_Call], results: list[Any]
               ) -> list[tuple[str, Any, int | None, Lookup, bytes]]:
        """Record the results of the calls that ran; return the stores to make."""
        keys = dict(zip((id(c) for c in self.prepared), (k for k, _ in self.derived),
                        strict=True))
        fingerprints = dict(self.derived)
        stores = []
        for call, result in zip(ran, results, strict=True):
            key = keys[id(call)]
            self.values[key] = result
            look = self.looks.get(key)
            if look is not None and self.core.storable(result):
                stores.append((key, result, self.core.ttl_ms(self.cache), look,
                               fingerprints[key]))
        return stores

    def results(self, stored: int) -> list[Any]:
        for _ in range(stored):
            self.core.stats.count("stores")
        return [self.values[key] for key, _ in self.derived]


def _many(core: _Cached, wrapped: Callable[..., Any], prepared: list[_Call]) -> list[Any]:
    if caching_disabled.get():
        return [wrapped(*args, **kwargs) for _, args, kwargs in prepared]
    batch = _Batch(core, _resolve(core.cache), prepared)
    cache = batch.cache
    try:
        to_run = batch.plan(cache.lookup_many(batch.derived))
    except CacheUnavailable as error:
        core.failed(cache, error)
        to_run = batch.uncached()
    if batch.looks:
        try:
            batch.armed(cache.arm_many(batch.to_arm()))
        except CacheUnavailable as error:
            core.failed(cache, error)
            batch.looks = {}  # run them, store nothing
    stores = batch.settle(to_run, [wrapped(*args, **kwargs) for _, args, kwargs in to_run])
    stored = 0
    if stores:
        try:
            stored = cache.store_many(stores)
        except CacheUnavailable as error:
            core.failed(cache, error)
    return batch.results(stored)


async def _amany(core: _Cached, wrapped: Callable[..., Awaitable[Any]],
                 prepared: list[_Call]) -> list[Any]:
    if caching_disabled.get():
        return [await wrapped(*args, **kwargs) for _, args, kwargs in prepared]
    batch = _Batch(core, _resolve(core.cache), prepared)
    cache = batch.cache
    try:
        to_run = batch.plan(await cache.alookup_many(batch.derived))
    except CacheUnavailable as error:
        core.failed(cache, error)
        to_run = batch.uncached()
    if batch.looks:
        try:
            batch.armed(await cache.aarm_many(batch.to_arm()))
        except CacheUnavailable as error:
            core.failed(cache, error)
            batch.looks = {}
    stores = batch.settle(to_run, [await wrapped(*args, **kwargs) for _, args, kwargs in to_run])
    stored = 0
    if stores:
        try:
            stored = await cache.astore_many(stores)
        except CacheUnavailable as error:
            core.failed(cache, error)
    return batch.results(stored)


class Args:
    """One call's arguments for ``.many()``: ``Args("users", columns=["id"])``."""

    __slots__ = ("args", "kwargs")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.kwargs = kwargs

    def __repr__(self) -> str:
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"Args({', '.join(parts)})"

    @staticmethod
    def of(item: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """(args, kwargs) of a ``.many()`` item."""
        if isinstance(item, Args):
            return item.args, item.kwargs
        if type(item) is tuple:
            return item, {}
        if type(item) is dict:
            return (), item
        return (item,), {}


def _flight_id(look: Lookup) -> tuple[Any, ...]:
    """The state a claim observed: a caller after an invalidation never observes the same."""
    return (*look.generations, look.fence)


def _armed(look: Lookup) -> bool:
    """Did the claim find its fence and generations set (else: bookkeeping of the wrong type)?"""
    return look.fence is not None and None not in look.generations


_MAX_MOVES = 3
"""Claims retried at once while the observed state keeps moving, before waiting again."""


class _BoundPickle(wrapt.BoundFunctionWrapper):  # type: ignore[type-arg]
    def __reduce_ex__(self, protocol: Any) -> tuple[Any, ...]:
        target = self._self_instance
        if target is None or self._self_binding == "classmethod":
            target = getattr(self.__wrapped__, "__self__", None) or self._self_owner
        return getattr, (target, self.__name__)


class _Wrapper(wrapt.FunctionWrapper):  # type: ignore[type-arg]
    """A wrapt wrapper that pickles by reference, as plain functions do (multiprocessing)."""

    __bound_function_wrapper__ = _BoundPickle

    def __reduce_ex__(self, protocol: Any) -> str:
        name: str = self.__qualname__
        return name

    def __copy__(self) -> Any:
        return self  # functions are immutable to the copy module

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        return self


class _Handles:
    """The cache handles shared by the unbound and the bound wrapper."""

    def _memo_core(self) -> _Cached:
        raise NotImplementedError

    def _memo_bind(self, args: tuple[Any, ...]
                   ) -> tuple[Any, tuple[Any, ...], Callable[..., Any]]:
        """(instance, args, wrapped) as the wrapper would receive them for a call with ``args``."""
        wrapped: Callable[..., Any] = self.__wrapped__  # type: ignore[attr-defined]
        return None, args, wrapped

    def _memo_key(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[RedisCaching, str]:
        core = self._memo_core()
        cache = _resolve(core.cache)
        instance, args, _ = self._memo_bind(args)
        return cache, core.plan.derive(cache, instance, args, kwargs)[0]

    def cache_key(self, *args: Any, **kwargs: Any) -> str:
        """The exact Redis key a call with these arguments uses (hash-tagged on Redis Cluster)."""
        cache, key = self._memo_key(args, kwargs)
        return cache.layout.physical(key)

    def invalidate(self, *args: Any, **kwargs: Any) -> Any:
        """Invalidate the one entry of this call (race-free); returns the number deleted."""
        cache, key = self._memo_key(args, kwargs)
        if self._memo_core().is_async:
            return cache.ainvalidate_key(key)
        return cache.invalidate_key(key)

    def refresh(self, *args: Any, **kwargs: Any) -> Any:
        """Recompute this call now and store the result."""
        core = self._memo_core()
        instance, args, wrapped = self._memo_bind(args)
        if core.is_async:
            return core.arefresh(wrapped, instance, args, kwargs)
        return core.refresh(wrapped, instance, args, kwargs)

    def many(self, calls: Iterable[Any]) -> Any:
        """Call the function for many argument sets: one round trip for all lookups, one for
        all stores; returns the results in order.

        Each item is a tuple of positional arguments, a dict of keyword arguments, an
        :class:`Args`, or any other value as the single positional argument:
        ``fetch.many([("users", ["id"]), ("feeders", ["id"])])``.
        """
        core = self._memo_core()
        prepared = []
        wrapped: Callable[..., Any] = self.__wrapped__  # type: ignore[attr-defined]
        for item in calls:
            args, kwargs = Args.of(item)
            instance, args, wrapped = self._memo_bind(args)
            prepared.append((instance, args, kwargs))
        if core.is_async:
            return core.amany(wrapped, prepared)
        return core.many(wrapped, prepared)

    def cache_info(self) -> CacheInfo:
        """Hits, misses, errors and stores counted in this process."""
        return self._memo_core().stats.info()

    def cache_clear(self) -> Any:
        """Invalidate every entry of this function (all arguments); returns the number deleted.

        Also resets :meth:`cache_info`. Uses :meth:`RedisCaching.invalidate` with the pattern
        ``{prefix}:{category}:*`` (placeholders of a templated prefix become ``*``), so it costs
        a SCAN of the keyspace; with a templated prefix, entries of other functions under the
        template's literal head (``sql`` for ``"sql:{table}"``) become misses too.
        """
        core = self._memo_core()
        cache = _resolve(core.cache)
        pattern = core.plan.clear_pattern(cache)
        core.stats.clear()
        if core.is_async:
            return cache.ainvalidate(pattern)
        return cache.invalidate(pattern)


class _BoundCachedWrapper(_Handles, _BoundPickle):
    def _memo_core(self) -> _Cached:
        core: _Cached = self._self_parent._self_core
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


class _CachedWrapper(_Handles, _Wrapper):
    """The object ``@cached`` returns; its handles bind like the function does."""

    __bound_function_wrapper__ = _BoundCachedWrapper

    def _memo_core(self) -> _Cached:
        core: _Cached = self._self_core
        return core


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
) -> Callable[[Callable[P, R]], CachedFunction[P, R]]: ...


def cached(
    func: Callable[P, R] | None = None,
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
) -> Any:
    """Memoize a function's results in Redis.

    Works on plain and nested functions, methods, classmethods and staticmethods (either
    decorator order) and ``async def`` functions; decorating never connects. ``cache`` defaults
    to :func:`memo_redis.get_default_cache` at each call. (On Python >= 3.13, which stopped
    chaining ``classmethod.__get__``, the handles of ``@classmethod`` stacked *above*
    ``@cached`` need ``cls`` first: ``Cls.build.cache_key(Cls, ...)``; calls need nothing.)

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
    milliseconds. Local hits return the same object each time, as ``functools.lru_cache`` does.

    The decorated function gains ``cache_key(*a, **kw)``, ``invalidate(*a, **kw)``,
    ``refresh(*a, **kw)``, ``many(calls)``, ``cache_info()``, ``cache_clear()`` and
    ``__wrapped__``; on an async function ``invalidate``, ``refresh``, ``many`` and
    ``cache_clear`` return awaitables.
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
    if cache is not None and not isinstance(cache, RedisCaching):
        raise ConfigError(f"cache must be a RedisCaching, got {type(cache).__name__}")
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

    def decorate(target: Callable[P, R]) -> CachedFunction[P, R]:
        raw, _ = _unwrap_descriptor(target)
        _reject_generators(raw, "cached")
        plan = _Plan(raw, prefix=prefix, namespace=namespace, category=category, ignore=ignore,
                     key=key, digest_length=digest_length)
        core = _Cached(plan, cache=cache, ttl=ttl, unless=unless, cache_none=cache_none,
                       strict=strict, single_flight=single_flight, early_refresh=beta,
                       jitter=jitter, local=local)
        core.is_async = inspect.iscoroutinefunction(raw)
        wrapper = _CachedWrapper(target, core.acall if core.is_async else core.call)
        wrapper._self_core = core  # type: ignore[attr-defined]
        return cast("CachedFunction[P, R]", wrapper)

    if func is not None:
        return decorate(func)
    return decorate


def invalidates(
    *patterns: str,
    cache: RedisCaching | None = None,
    strict: bool | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Invalidate cache entries after the decorated function runs (also when it raises).

    Patterns are Redis globs, literal (``"sql:users:*"``) or templates filled from the call's
    arguments (``"sql:{table}:*"``); substituted values are glob-escaped, so a table named
    ``users*`` never widens the match. The function's result or exception passes through
    unchanged. A failed invalidation is logged at error level (possible stale data), or raises
    ``CacheUnavailable`` with ``strict=True``.
    """
    if not patterns:
        raise ConfigError("@invalidates needs at least one pattern")
    if len(patterns) == 1 and callable(patterns[0]):
        raise TypeError(
            "@invalidates needs its patterns: write @invalidates(\"sql:{table}:*\"), not a bare "
            "@invalidates"
        )
    for pattern in patterns:
        if not isinstance(pattern, str) or not pattern:
            raise ConfigError(f"@invalidates patterns must be non-empty strings, got {pattern!r}")
    if cache is not None and not isinstance(cache, RedisCaching):
        raise ConfigError(f"cache must be a RedisCaching, got {type(cache).__name__}")

    def decorate(target: Callable[P, R]) -> Callable[P, R]:
        raw, _ = _unwrap_descriptor(target)
        _reject_generators(raw, "invalidates")
        binder = ArgumentBinder(raw)
        owner = _owner(raw)
        templates = [KeyTemplate(p, binder.parameters, owner=owner) for p in patterns]

        def render(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[str]:
            if all(t.is_static for t in templates):
                return [t.render({}, escape=True) for t in templates]
            full = args if instance is None else (instance, *args)
            bound = binder.bind(full, kwargs)
            return [t.render(bound, escape=True) for t in templates]

        if inspect.iscoroutinefunction(raw):
            async def async_wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...],
                                    kwargs: dict[str, Any]) -> Any:
                rendered = render(instance, args, kwargs)
                try:
                    result = await wrapped(*args, **kwargs)
                except BaseException as exc:
                    await _arun_invalidations(cache, rendered, strict, exc)
                    raise
                await _arun_invalidations(cache, rendered, strict, None)
                return result

            return cast("Callable[P, R]", _Wrapper(target, async_wrapper))

        def sync_wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...],
                         kwargs: dict[str, Any]) -> Any:
            rendered = render(instance, args, kwargs)
            try:
                result = wrapped(*args, **kwargs)
            except BaseException as exc:
                _run_invalidations(cache, rendered, strict, exc)
                raise
            _run_invalidations(cache, rendered, strict, None)
            return result

        return cast("Callable[P, R]", _Wrapper(target, sync_wrapper))

    return decorate


def _run_invalidations(cache: RedisCaching | None, patterns: list[str], strict: bool | None,
                       pending: BaseException | None) -> None:
    target = _resolve(cache)
    strict_mode = target.strict if strict is None else strict
    for pattern in patterns:
        try:
            target.invalidate(pattern, strict=True)
        except CacheUnavailable:
            if strict_mode and pending is None:
                raise
            # fail open: invalidate() already logged the failure at error level


async def _arun_invalidations(cache: RedisCaching | None, patterns: list[str],
                              strict: bool | None, pending: BaseException | None) -> None:
    target = _resolve(cache)
    strict_mode = target.strict if strict is None else strict
    for pattern in patterns:
        try:
            await target.ainvalidate(pattern, strict=True)
        except CacheUnavailable:
            if strict_mode and pending is None:
                raise
