"""``fn.many(calls)``: many calls of one decorated function, with one round trip for all
lookups, one to arm the misses and one for all stores."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from ..exceptions import CacheUnavailable
from ..protocol import operations
from ..protocol.entries import MISS, Lookup
from ..protocol.readthrough import EngineSettings, ReadPolicy
from ..protocol.steps import Body, Flow
from ..transaction_state import bypasses

Call = tuple[Any, tuple[Any, ...], dict[str, Any]]
"""(instance, args, kwargs) of one call."""


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


class Deriver(Protocol):
    """Turns a call into its key and fingerprint."""

    def __call__(self, instance: Any, args: tuple[Any, ...],
                 kwargs: dict[str, Any]) -> tuple[str, bytes]: ...


class ManyCalls:
    """One ``.many()`` call: which items hit, which distinct calls must run, what to store."""

    def __init__(self, policy: ReadPolicy, engine: EngineSettings, derive: Deriver,
                 prepared: list[Call]) -> None:
        self.policy = policy
        self.engine = engine
        self.prepared = prepared
        self.derived = [derive(instance, args, kwargs) for instance, args, kwargs in prepared]
        self.values: dict[str, Any] = {}
        self.looks: dict[str, Lookup] = {}

    def uncached(self) -> list[Call]:
        """Every distinct call, for running without the cache (Redis failed)."""
        seen: dict[str, Call] = {}
        for call, (key, _) in zip(self.prepared, self.derived, strict=True):
            seen.setdefault(key, call)
        self.looks = {}
        return list(seen.values())

    def plan(self, looks: list[Lookup]) -> list[Call]:
        """Record the hits; return the distinct calls that must run, in order."""
        to_run: list[Call] = []
        for call, (key, _), look in zip(self.prepared, self.derived, looks, strict=True):
            if look.value is not MISS:
                self.policy.events.hit()
                self.values[key] = look.value
            elif key not in self.looks:
                self.policy.events.miss()
                self.looks[key] = look
                to_run.append(call)
        return to_run

    def to_arm(self) -> list[tuple[str, bytes | None]]:
        """The (key, fingerprint) of every miss: each is armed before its call runs."""
        fingerprints = dict(self.derived)
        return [(key, fingerprints[key]) for key in self.looks]

    def armed(self, looks: list[Lookup]) -> None:
        """Record what arming the misses observed: their stores are checked against it."""
        self.looks = dict(zip(self.looks, looks, strict=True))

    def settle(self, ran: list[Call], results: list[Any]
               ) -> list[tuple[str, Any, int | None, Lookup | None, bytes | None]]:
        """Record the results of the calls that ran; return the stores to make."""
        keys = dict(zip((id(c) for c in self.prepared), (k for k, _ in self.derived),
                        strict=True))
        fingerprints = dict(self.derived)
        stores: list[tuple[str, Any, int | None, Lookup | None, bytes | None]] = []
        for call, result in zip(ran, results, strict=True):
            key = keys[id(call)]
            self.values[key] = result
            look = self.looks.get(key)
            if look is not None and self.policy.storable(result):
                stores.append((key, result, self.policy.ttl_ms(self.engine), look,
                               fingerprints[key]))
        return stores

    def results(self, stored: int) -> list[Any]:
        """The results in call order, after ``stored`` stores."""
        for _ in range(stored):
            self.policy.events.store()
        return [self.values[key] for key, _ in self.derived]


def many_flow(policy: ReadPolicy, engine: EngineSettings, derive: Deriver,
              wrapped: Callable[..., Any], prepared: list[Call]) -> Flow[list[Any]]:
    """The flow of one ``.many()`` call (sync and async alike)."""
    batch = ManyCalls(policy, engine, derive, prepared)
    if any(bypasses(key) for key, _ in batch.derived):
        # Inside a transaction block that invalidated some of these keys: run them all
        # uncached, storing nothing.
        bypassed = []
        for _, args, kwargs in prepared:
            bypassed.append((yield Body(wrapped, args, kwargs)))
        return bypassed
    try:
        to_run = batch.plan((yield from operations.lookup_many(engine, batch.derived)))
    except CacheUnavailable as error:
        policy.failed(engine, error)
        to_run = batch.uncached()
    if batch.looks:
        try:
            batch.armed((yield from operations.arm_many(engine, batch.to_arm())))
        except CacheUnavailable as error:
            policy.failed(engine, error)
            batch.looks = {}  # run them, store nothing
    results = []
    for _, args, kwargs in to_run:
        results.append((yield Body(wrapped, args, kwargs)))
    stores = batch.settle(to_run, results)
    stored = 0
    if stores:
        try:
            outcome = yield from operations.store_many(engine, stores, encrypt=policy.encrypt)
            stored = sum(outcome) if outcome else 0
        except CacheUnavailable as error:
            policy.failed(engine, error)
    return batch.results(stored)
