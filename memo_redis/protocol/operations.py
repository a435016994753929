"""Flows over entries, shared by the read-through, the key/value API and ``.many()``.

Every function takes the cache's :class:`Entries` context (the engine) and is a flow: the sync
and the async driver run the same code.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from ..exceptions import CacheUnavailable
from .entries import Claim, Lookup
from .requests import Requests
from .steps import Batch, Flow
from .topology import SingleServer
from .values import ValueCodec


class Entries(Protocol):
    """What flows need from the engine that runs them."""

    requests: Requests
    topology: SingleServer
    codec: ValueCodec
    fence_ttl_ms: int
    lock_wait: float
    strict: bool
    race_protection: bool
    before_store: Callable[[str], None] | None

    def is_refusal(self, error: CacheUnavailable) -> bool: ...


def lookup(ctx: Entries, key: str, fingerprint: bytes | None = None) -> Flow[Lookup]:
    """Read ``key`` and the generations guarding it in one round trip (an MGET)."""
    yield from ctx.topology.register_group("lookup", key)
    raws = yield ctx.requests.lookup(key)
    return ctx.requests.parse_lookup(key, raws, fingerprint)


def lookup_many(ctx: Entries, items: Sequence[tuple[str, bytes | None]],
                op: str = "lookup") -> Flow[list[Lookup]]:
    """:func:`lookup` for many (key, fingerprint) pairs in one round trip (a pipeline)."""
    for key, _ in items:
        yield from ctx.topology.register_group(op, key)
    replies = yield Batch(op, tuple(ctx.requests.lookup(key, op) for key, _ in items))
    return [ctx.requests.parse_lookup(key, raws, fp)
            for (key, fp), raws in zip(items, replies, strict=True)]


def claim(ctx: Entries, key: str, seen: Lookup, token: bytes,
          fingerprint: bytes | None = None) -> Flow[Claim]:
    """Before computing ``key``: arm its fence (and create missing generations), read it again,
    and take the single-flight lock if the state is still the one ``seen`` names.

    One round trip. ``claim.look`` is what the computation's store will be checked against (its
    fence is always set); a hit there means a holder stored meanwhile. The lock is named after
    ``seen``'s generations and fence (or a fresh fence this call proposes when ``seen`` has
    none), so callers after an invalidation never wait for a computation from before it.
    """
    yield from ctx.topology.register_group("lock", key)
    reply = yield ctx.requests.claim(key, seen, token)
    return ctx.requests.parse_claim(key, reply, fingerprint)


def arm(ctx: Entries, key: str, fingerprint: bytes | None = None) -> Flow[Lookup]:
    """:func:`claim` without the lock, for a computation that runs without one
    (``single_flight=False``, ``refresh()``, after ``lock_wait``): its store is then checked
    against the returned lookup."""
    yield from ctx.topology.register_group("lock", key)
    reply = yield ctx.requests.claim(key, None, None)
    return ctx.requests.parse_claim(key, reply, fingerprint).look


def arm_many(ctx: Entries, items: Sequence[tuple[str, bytes | None]]) -> Flow[list[Lookup]]:
    """:func:`arm` for many (key, fingerprint) pairs in one round trip (a pipeline)."""
    if not items:
        return []
    for key, _ in items:
        yield from ctx.topology.register_group("lock", key)
    replies = yield Batch("lock", tuple(ctx.requests.claim(key, None, None) for key, _ in items))
    return [ctx.requests.parse_claim(key, reply, fp).look
            for (key, fp), reply in zip(items, replies, strict=True)]


def lock_held(ctx: Entries, key: str, seen: Lookup) -> Flow[bool]:
    """Is the single-flight lock of ``key`` under ``seen`` (a claim's lookup) held?"""
    return bool((yield ctx.requests.lock_held(key, seen)))


def release(ctx: Entries, key: str, seen: Lookup, token: bytes, *,
            drop_fence: bool = True) -> Flow[None]:
    """Release a lock this caller holds (compare-and-delete), and the fence it armed when it
    still holds ``seen``'s token (its result is not stored); errors are ignored."""
    with contextlib.suppress(CacheUnavailable):
        yield ctx.requests.release(key, seen, token, drop_fence)


def store(ctx: Entries, key: str, value: Any, ttl_ms: int | None, *,
          seen: Lookup | None = None, fingerprint: bytes | None = None,
          token: bytes | None = None, early: tuple[int, int] | None = None,
          encrypt: bool | None = None) -> Flow[bool]:
    """Store ``value`` at ``key``; with ``seen`` (a claim's or an arm's lookup), only if no
    invalidation happened since: its fence and generations must still be there, unchanged.
    ``encrypt`` chooses the seal (None: the cache's choice; see :meth:`ValueCodec.encode`).

    Returns False when refused or too large. Raises :class:`SerializationError` for a value that
    cannot be encoded, :class:`CacheUnavailable` on failure (including a store Redis refused with
    an error: the caller releases its lock).
    """
    parts = ctx.codec.encode(key, value, fingerprint, early, encrypt=encrypt)
    if parts is None:
        return False
    if ctx.before_store is not None:
        ctx.before_store(key)
    reply = yield ctx.requests.store(key, parts, ttl_ms, seen, token,
                                     checked=ctx.race_protection)
    return bool(reply)


def store_many(ctx: Entries, entries: Sequence[tuple[str, Any, int | None, Lookup | None,
                                                      bytes | None]],
               op: str = "store", *, encrypt: bool | None = None) -> Flow[list[bool] | None]:
    """Stores of (key, value, ttl_ms, lookup, fingerprint) in one round trip; each with a lookup
    is checked against it. Returns one result per entry (False: too large or refused), or None
    when no entry could be encoded. ``encrypt`` as in :func:`store`, for every entry."""
    encode = ctx.codec.encode
    encoded = [(entry, encode(entry[0], entry[1], entry[4], encrypt=encrypt))
               for entry in entries]
    chosen = [(entry, parts) for entry, parts in encoded if parts is not None]
    if not chosen:
        return None
    if ctx.before_store is not None:
        for (key, *_), _ in chosen:
            ctx.before_store(key)
    calls = tuple(ctx.requests.store(key, parts, ttl_ms, seen, None, checked=ctx.race_protection)
                  for (key, _, ttl_ms, seen, _), parts in chosen)
    replies = yield Batch(op, calls)
    stored = iter(bool(r) for r in replies)
    return [parts is not None and next(stored) for _, parts in encoded]


def delete(ctx: Entries, keys: Sequence[str]) -> Flow[int]:
    """DEL of ``keys`` (no fencing); returns how many existed."""
    physical = [ctx.topology.layout.physical(key).encode() for key in keys]
    return (yield from ctx.topology.remove("delete", physical, command="DEL"))


def get_many(ctx: Entries, keys: list[str], op: str = "get_many") -> Flow[list[Lookup]]:
    """Lookups of ``keys`` without fingerprints, in one round trip."""
    raws = yield from ctx.topology.read_entries(op, ctx.requests, keys)
    return [ctx.requests.parse_lookup(key, r, None) for key, r in zip(keys, raws, strict=True)]
