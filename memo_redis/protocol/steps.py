"""What a flow asks its driver to do: Redis commands, and (for read-throughs) the caller's body.

A flow is a generator: it yields a step, the driver performs it and sends back the reply (or
throws the error into the generator, where the flow may handle it). Every Redis step names the
*operation* it belongs to (``"lookup"``, ``"lock"``, ``"store"``, ``"invalidate"``...), which is
what the circuit breaker, the deferred invalidations and the error messages see.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Generator, Hashable
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from .. import scripts

T = TypeVar("T")

Flow = Generator["Step", Any, T]
"""A protocol flow: yields steps, receives their replies, returns its result."""


class LuaScript:
    """A Lua script run by ``EVALSHA`` (the driver loads it on ``NOSCRIPT``)."""

    __slots__ = ("name", "sha", "source")

    def __init__(self, name: str, source: str) -> None:
        self.name = name
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()

    def __repr__(self) -> str:
        return f"LuaScript({self.name}, sha={self.sha[:12]})"


STORE: Final = LuaScript("STORE", scripts.STORE)
CLAIM: Final = LuaScript("CLAIM", scripts.CLAIM)
BUMP: Final = LuaScript("BUMP", scripts.BUMP)
DRAIN_INDEX: Final = LuaScript("DRAIN_INDEX", scripts.DRAIN_INDEX)
INVALIDATE_ONE: Final = LuaScript("INVALIDATE_ONE", scripts.INVALIDATE_ONE)
INVALIDATE_ROW: Final = LuaScript("INVALIDATE_ROW", scripts.INVALIDATE_ROW)
RELEASE: Final = LuaScript("RELEASE", scripts.RELEASE)


@dataclass(slots=True)
class Command:
    """One Redis command; the reply is raw (bytes are never decoded).

    ``target`` routes it on Redis Cluster (``"primaries"``: every primary, replies merged by
    redis-py); elsewhere it is ignored.
    """

    op: str
    args: tuple[Any, ...]
    target: str | None = None


@dataclass(slots=True)
class RunScript:
    """``EVALSHA`` of ``script`` with ``keys`` and ``args``; the reply is the script's."""

    op: str
    script: LuaScript
    keys: list[str]
    args: list[Any]


@dataclass(slots=True)
class Batch:
    """Commands and scripts sent in one pipeline (no MULTI): one round trip (one per primary on
    Redis Cluster). The reply is the list of replies; the first error reply is raised after all
    ran. Scripts are loaded in the same round trip the first time."""

    op: str
    steps: tuple[Command | RunScript, ...]


@dataclass(slots=True)
class ScanPage:
    """One page of ``SCAN MATCH match COUNT count``: the reply is ``(cursor, keys)`` with keys as
    bytes and ``cursor`` None when the scan is complete. Start with ``cursor=None``.

    On Redis Cluster the driver walks every primary in turn; its cursor is opaque to the flow.
    """

    op: str
    match: str
    count: int
    cursor: Any = None


@dataclass(slots=True)
class Call:
    """A redis-py client method, for commands whose reply redis-py must merge across a Redis
    Cluster (``info``, ``ping``) or route by its own rules (``script_load``)."""

    op: str
    method: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


RedisStep = Command | RunScript | Batch | ScanPage | Call


@dataclass(slots=True)
class Body:
    """Run the caller's function (awaited by the async driver); the reply is its result, its
    exception is thrown into the flow."""

    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


@dataclass(slots=True)
class Sleep:
    """Wait ``seconds`` (``asyncio.sleep`` in the async driver)."""

    seconds: float


@dataclass(slots=True)
class Lead:
    """Run ``flow`` as the in-process leader of ``flight_id`` (see :mod:`memo_redis.flight`):
    callers joining that id later share its result."""

    flights: Any
    flight_id: Hashable
    flow: Flow[Any]


@dataclass(slots=True)
class Join:
    """Join the in-process computation of ``flight_id`` for at most ``wait`` seconds, or run
    ``flow`` as its leader when none is running (or the wait ends)."""

    flights: Any
    flight_id: Hashable
    wait: float
    flow: Flow[Any]


Step = RedisStep | Body | Sleep | Lead | Join
