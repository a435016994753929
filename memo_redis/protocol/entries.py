"""What the protocol knows about one entry: a lookup's outcome, a claim's, and their stamps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from .. import envelope


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISS"


MISS: Final = _Missing()
"""Sentinel telling a miss from a cached ``None``."""


class SeedFingerprint(bytes):
    """The fingerprint of a seed SQL read: its key may hold the seed deployment's plain JSON,
    which lookups with any other fingerprint (decorated functions) treat as a miss."""

    __slots__ = ()


@dataclass(slots=True)
class Lookup:
    """What one lookup saw: the decoded value (or MISS) and the state a later store must match."""

    value: Any
    generations: list[bytes | None]
    fence: bytes | None
    envelope: envelope.Envelope | None
    lock_stamp: bytes | None = None
    """Memo of :func:`stamp_of` (claim, release and store each need it on a miss)."""


class Claim(NamedTuple):
    """What a claim saw: the entry's state after its fence was armed (``look.fence`` is the
    fence a later store must find unchanged) and the lock's outcome."""

    taken: bool
    """This caller holds the single-flight lock (or armed the entry, when it asked for none)."""
    held: bool
    """Another caller holds the lock of exactly the state this caller expected: wait for it.
    (Neither taken nor held: the state moved, e.g. an invalidation; claim again under it.)"""
    look: Lookup


def stamp_of(seen: Lookup) -> bytes:
    """What names the single-flight lock of a computation: its generations and fence."""
    stamp = seen.lock_stamp
    if stamp is None:
        stamp = envelope.compute_stamp([g or b"-" for g in seen.generations])
        stamp = seen.lock_stamp = stamp + (seen.fence or b"")[:8]
    return stamp


def flight_id(look: Lookup) -> tuple[Any, ...]:
    """The state a claim observed: a caller after an invalidation never observes the same."""
    return (*look.generations, look.fence)


def is_armed(look: Lookup) -> bool:
    """Did the claim find its fence and generations set (else: bookkeeping of the wrong type)?"""
    return look.fence is not None and None not in look.generations
