"""The read-through protocol: what a miss does, written once for sync and async callers.

A call first looks its key up (the hit path lives in the drivers, :mod:`memo_redis.backend`).
On a miss, :func:`miss` claims the entry (arms its fence, tries the cross-process lock), then
computes under the lock, or joins the computation of the state the claim observed (in-process
first, then across processes) until ``lock_wait``; a computation's result is stored only if no
invalidation happened since its claim. :class:`ReadPolicy` carries the per-function options.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, NamedTuple, Protocol

from .. import envelope
from ..exceptions import CacheUnavailable
from ..flight import FlightTables
from ..ttl import CATEGORY_DEFAULT, TTL, to_milliseconds
from . import operations
from .entries import MISS, Lookup, flight_id, is_armed
from .operations import Entries
from .steps import Body, Flow, Join, Lead, Sleep

if TYPE_CHECKING:
    from ..local import LocalCache

MAX_MOVES: Final = 3
"""Claims retried at once while the observed state keeps moving, before waiting again."""


class ReadEvents(Protocol):
    """What a read-through reports (``cache_info()`` and :mod:`memo_redis.metrics` listen)."""

    def hit(self, lookup_ns: int = -1) -> None: ...
    def l1_hit(self) -> None: ...
    def miss(self, lookup_ns: int = -1) -> None: ...
    def error(self) -> None: ...
    def store(self) -> None: ...
    def refused_store(self) -> None: ...
    def computed(self, nanoseconds: int) -> None: ...
    def wait(self, nanoseconds: int) -> None: ...
    def early_refresh(self) -> None: ...


class NoEvents:
    """Reports nowhere."""

    def hit(self, lookup_ns: int = -1) -> None:
        """A hit (its lookup took ``lookup_ns``, -1: not timed)."""

    def l1_hit(self) -> None:
        """A hit served by the in-process L1."""

    def miss(self, lookup_ns: int = -1) -> None:
        """A miss."""

    def error(self) -> None:
        """A Redis failure."""

    def store(self) -> None:
        """A result stored."""

    def refused_store(self) -> None:
        """A store refused (an invalidation happened meanwhile)."""

    def computed(self, nanoseconds: int) -> None:
        """A computation that took ``nanoseconds``."""

    def wait(self, nanoseconds: int) -> None:
        """A wait of ``nanoseconds`` for another caller's computation (single flight)."""

    def early_refresh(self) -> None:
        """A hit recomputed before its expiry (XFetch)."""


class EngineSettings(Entries, Protocol):
    """The engine's settings and L1 a read-through policy consults."""

    def ttl_for(self, category: str) -> int: ...
    def local_cache(self) -> LocalCache | None: ...


class ReadPolicy:
    """The options of one read-through (one decorated function, or one ``get_or_create``
    setting): TTL, what to store, single-flight, early refresh, strictness, L1, events.

    It also holds the function's in-process single-flight tables.
    """

    def __init__(self, *, ttl: TTL = CATEGORY_DEFAULT, category: str = "data",
                 should_store: Callable[[Any], bool] | None = None, single_flight: bool = True,
                 early_refresh: float = 0.0, jitter: float = 0.0, strict: bool | None = None,
                 events: ReadEvents | None = None, local: bool = False,
                 tracking_prefix: Callable[[Any], str] | None = None,
                 name: str | None = None, encrypt: bool | None = None,
                 local_copy: bool = False) -> None:
        self.name = name
        """The function this policy reads for (spans name it)."""
        self.encrypt = encrypt
        """Encrypt (True) or only sign (False) what this read stores; None: the cache's choice."""
        self.ttl = ttl
        self.category = category
        self.should_store = should_store
        self.single_flight = single_flight
        self.beta = early_refresh
        self.jitter = jitter
        self.strict = strict
        self.events: ReadEvents = events if events is not None else NoEvents()
        self.local = local
        self.local_copy = local_copy
        """L1 hits decode a fresh copy from the kept bytes (safe to mutate) instead of returning
        the one shared object."""
        self.tracking_prefix = tracking_prefix
        self.flights = FlightTables()
        self._local_for: tuple[Any, LocalCache | None] | None = None

    def ttl_ms(self, engine: EngineSettings) -> int | None:
        """This read's TTL in milliseconds (None: no expiry), with jitter applied."""
        ttl = engine.ttl_for(self.category) if self.ttl is CATEGORY_DEFAULT else self.ttl
        ms = to_milliseconds(ttl)
        if ms is not None and self.jitter:
            ms = max(1, round(ms * (1.0 - random.random() * self.jitter)))
        return ms

    def failed(self, engine: Entries, error: CacheUnavailable) -> None:
        """Count a Redis failure; raise it in strict mode (else the caller runs uncached)."""
        self.events.error()
        if engine.strict if self.strict is None else self.strict:
            raise error

    def storable(self, result: Any) -> bool:
        """Should ``result`` be stored?"""
        return self.should_store is None or self.should_store(result)

    def due_early(self, look: Lookup) -> bool:
        """XFetch: refresh before expiry with a probability growing as expiry approaches."""
        env = look.envelope
        if not self.beta or env is None or not env.flags & envelope.FLAG_EARLY:
            return False
        now_ms = time.time() * 1000.0
        gap = -env.delta_ms * self.beta * math.log(random.random() or 1e-12)
        return now_ms + gap >= env.expires_ms

    def early(self, ttl_ms: int | None, delta_ms: int) -> tuple[int, int] | None:
        """The early-refresh data stored with a value (its expiry and compute time)."""
        if not self.beta or ttl_ms is None:
            return None
        return int(time.time() * 1000) + ttl_ms, delta_ms

    def local_cache(self, engine: EngineSettings) -> LocalCache | None:
        """The engine's L1, tracking this read's keys (None where it cannot run)."""
        known = self._local_for
        if known is not None and known[0] is engine:
            return known[1]
        local = engine.local_cache()
        if local is not None and self.tracking_prefix is not None:
            local.track_prefix(self.tracking_prefix(engine))
        self._local_for = (engine, local)
        return local

    def keep_local(self, local: LocalCache, key: str, look: Lookup, epoch: int) -> None:
        """Keep a hit in the L1 for as long as the entry lives in Redis (its serialized body,
        with ``local_copy``)."""
        env = look.envelope
        size = len(env.body) if env is not None else 64
        ttl_ms = None
        if env is not None and env.expires_ms:
            ttl_ms = max(1, env.expires_ms - int(time.time() * 1000))
        value = look.value
        if self.local_copy and env is not None:
            value = LocalBytes(env.flags, env.body)
        local.put(key, value, size, ttl_ms, epoch)


class LocalBytes(NamedTuple):
    """What the L1 keeps for ``local_copy``: a value still serialized, decoded on each hit."""

    flags: int
    body: bytes


def miss(ctx: EngineSettings, policy: ReadPolicy, key: str, fingerprint: bytes | None, look: Lookup,
         body: Body) -> Flow[Any]:
    """After a lookup missed: compute once (single-flight) and store the result race-free."""
    if not policy.single_flight:
        return (yield from compute_armed(ctx, policy, key, fingerprint, body))
    # One deadline for both layers: a thread that waited lock_wait for another thread must not
    # then wait lock_wait again for the Redis lock.
    deadline = time.monotonic() + ctx.lock_wait
    return (yield from fill(ctx, policy, key, fingerprint, look, body, deadline))


def fill(ctx: EngineSettings, policy: ReadPolicy, key: str, fingerprint: bytes | None, look: Lookup,
         body: Body, deadline: float) -> Flow[Any]:
    """Claim the entry (arm its fence, try the cross-process lock), then compute under the lock,
    or join (until ``deadline``) the computation of the state the claim observed."""
    token = envelope.new_token()
    try:
        claim = yield from operations.claim(ctx, key, look, token, fingerprint)
    except CacheUnavailable as error:
        policy.failed(ctx, error)
        return (yield body)
    got = claim.look
    if got.value is not MISS:  # a holder stored between our lookup and our claim
        if claim.taken:
            yield from operations.release(ctx, key, got, token)
        return got.value
    if claim.taken:
        return (yield Lead(policy.flights, (key, *flight_id(got)),
                           compute(ctx, policy, key, fingerprint, got, body, token)))
    if not is_armed(got):
        return (yield from broken(ctx, policy, key, body))
    waiting = time.perf_counter_ns()
    result = yield Join(policy.flights, (key, *flight_id(got)),
                        max(0.0, deadline - time.monotonic()),
                        wait_turn(ctx, policy, key, fingerprint, got, body, token, deadline,
                                  claim.held))
    policy.events.wait(time.perf_counter_ns() - waiting)
    return result


def wait_turn(ctx: EngineSettings, policy: ReadPolicy, key: str, fingerprint: bytes | None,
              look: Lookup, body: Body, token: bytes, deadline: float, held: bool) -> Flow[Any]:
    """Wait for the lock holder of ``look``'s state (``held``: it was found holding it): claim
    again until a value is stored, the lock is ours, or ``deadline`` passes (then compute
    without the lock, against the fence ``look`` observed)."""
    delay = 0.002
    moves = 0
    while True:
        if held or moves >= MAX_MOVES:
            moves = 0
            if time.monotonic() + delay > deadline:
                return (yield from compute(ctx, policy, key, fingerprint, look, body, None))
            yield Sleep(delay)
            delay = min(delay * 2, 0.05)
        try:
            claim = yield from operations.claim(ctx, key, look, token, fingerprint)
        except CacheUnavailable as error:
            policy.failed(ctx, error)
            return (yield body)
        got = claim.look
        if got.value is not MISS:
            if claim.taken:
                yield from operations.release(ctx, key, got, token)
            return got.value
        if claim.taken:
            return (yield from compute(ctx, policy, key, fingerprint, got, body, token))
        if not is_armed(got):
            return (yield from broken(ctx, policy, key, body))
        # Not held: the state moved (invalidated meanwhile, or the fence was re-armed); claim
        # again at once under the new one.
        held, moves, look = claim.held, moves + (not claim.held), got


def broken(ctx: EngineSettings, policy: ReadPolicy, key: str, body: Body) -> Flow[Any]:
    """A claim could not arm ``key`` (a bookkeeping key of the wrong type): run uncached."""
    policy.events.error()
    ctx.codec.warn_key(key, "has bookkeeping keys of the wrong type (its fence or generations "
                       "cannot be set); calls of it run uncached")
    return (yield body)


def compute_armed(ctx: EngineSettings, policy: ReadPolicy, key: str, fingerprint: bytes | None,
                  body: Body) -> Flow[Any]:
    """Arm the entry (no lock), run the body, store against what was armed."""
    try:
        look = yield from operations.arm(ctx, key, fingerprint)
    except CacheUnavailable as error:
        policy.failed(ctx, error)
        return (yield body)
    return (yield from compute(ctx, policy, key, fingerprint, look, body, None))


def compute(ctx: EngineSettings, policy: ReadPolicy, key: str, fingerprint: bytes | None,
            look: Lookup, body: Body, token: bytes | None) -> Flow[Any]:
    """Run the body; store its result against ``look``; release the lock ``token`` holds."""
    started = time.monotonic()
    try:
        result = yield body
    except GeneratorExit:
        raise
    except BaseException:
        if token is not None:
            yield from operations.release(ctx, key, look, token)
        raise
    yield from store(ctx, policy, key, fingerprint, look, result, started, token)
    return result


def store(ctx: EngineSettings, policy: ReadPolicy, key: str, fingerprint: bytes | None,
          look: Lookup, result: Any, started: float, token: bytes | None) -> Flow[None]:
    """Store a computation's result (if wanted), counting the outcome; never leaves the lock."""
    elapsed = time.monotonic() - started
    stored = attempted = False
    try:
        # A computation slower than the fence TTL might have outlived an invalidation's fence.
        if policy.storable(result) and elapsed * 1000 < ctx.fence_ttl_ms:
            attempted = True
            ttl_ms = policy.ttl_ms(ctx)
            stored = yield from operations.store(
                ctx, key, result, ttl_ms, seen=look, fingerprint=fingerprint, token=token,
                early=policy.early(ttl_ms, round(elapsed * 1000)), encrypt=policy.encrypt)
    except CacheUnavailable as error:
        # A store Redis refused (NOPERM, WRONGTYPE, a script error) must not leave the lock to
        # expire under the waiters; after an outage the release would only time out too.
        if token is not None and ctx.is_refusal(error):
            yield from operations.release(ctx, key, look, token)
        policy.failed(ctx, error)
        return
    except GeneratorExit:
        raise
    except BaseException:
        # e.g. SerializationError: never leave the lock to time out under the waiters.
        if token is not None:
            yield from operations.release(ctx, key, look, token)
        raise
    policy.events.computed(int(elapsed * 1e9))
    if stored:
        policy.events.store()
        return
    if attempted:
        policy.events.refused_store()
    if token is not None:
        yield from operations.release(ctx, key, look, token)


def refresh_early(ctx: EngineSettings, policy: ReadPolicy, key: str, fingerprint: bytes | None,
                  look: Lookup, body: Body) -> Flow[Any]:
    """A hit due for early refresh: recompute it if this caller takes the lock, else serve it."""
    token = envelope.new_token()
    try:
        claim = yield from operations.claim(ctx, key, look, token, fingerprint)
    except CacheUnavailable:
        claim = None
    if claim is None or not claim.taken:
        policy.events.hit()
        return look.value
    policy.events.early_refresh()
    return (yield from compute(ctx, policy, key, fingerprint, claim.look, body, token))
