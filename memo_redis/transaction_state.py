"""What the current thread or asyncio task invalidated inside an open transaction block.

:func:`memo_redis.sql.transaction` opens a *scope*; while it is open, every invalidation this
thread or task issues is recorded here (and applied at once as usual), and cached calls whose key
an invalidation in the scope matches bypass the cache: they neither read nor store it, so they see
the transaction's own uncommitted writes and never publish them to other processes. When the
outermost block ends (commit or rollback) the recorded invalidations are applied again: a reader
in another process that filled the cache with the old row between the first application and the
commit is undone.

Nested blocks join the outermost scope. A scope belongs to the thread or task that opened it: a
task spawned inside the block inherits the context variable but not the scope.

This module is pure bookkeeping (no Redis): the engine calls :func:`record_invalidation` and
:func:`bypasses`, the transaction context manager calls :func:`open_scope`/:func:`close_scope`.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Hashable
from typing import Any, Literal

from .keys import matches

__all__ = [
    "Invalidation",
    "TransactionScope",
    "bypasses",
    "close_scope",
    "current_scope",
    "open_scope",
    "record_invalidation",
]

Kind = Literal["pattern", "key"]
Invalidation = tuple[Any, Kind, str]
"""One recorded invalidation: (the cache it went to, "pattern" or "key", the pattern or key)."""

_scope: contextvars.ContextVar[TransactionScope | None] = contextvars.ContextVar(
    "memo_redis_transaction", default=None
)
_open_blocks = 0
"""Outermost blocks open in the process: while 0, :func:`bypasses` costs one global read."""
_open_lock = threading.Lock()


def _owner() -> Hashable:
    """The running asyncio task, else the current thread."""
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no running event loop in this thread
        task = None
    return task if task is not None else threading.get_ident()


class TransactionScope:
    """The invalidations one thread or task issued since its outermost transaction block began."""

    __slots__ = ("_seen", "depth", "invalidations", "owner")

    def __init__(self, owner: Hashable) -> None:
        self.owner = owner
        self.depth = 1
        self.invalidations: list[Invalidation] = []
        self._seen: set[tuple[int, Kind, str]] = set()

    def __repr__(self) -> str:
        return f"TransactionScope(depth={self.depth}, invalidations={len(self.invalidations)})"

    def record(self, cache: Any, kind: Kind, target: str) -> None:
        """Remember one invalidation (once per cache, kind and target)."""
        marker = (id(cache), kind, target)
        if marker not in self._seen:
            self._seen.add(marker)
            self.invalidations.append((cache, kind, target))

    def covers(self, key: str) -> bool:
        """Does an invalidation recorded in this scope target ``key`` (a logical key)?"""
        for _, kind, target in self.invalidations:
            if (target == key) if kind == "key" else matches(target, key):
                return True
        return False


def current_scope() -> TransactionScope | None:
    """The scope of the calling thread or task, or None outside any transaction block."""
    scope = _scope.get()
    if scope is None or scope.owner != _owner():
        return None
    return scope


def record_invalidation(cache: Any, kind: Kind, target: str) -> None:
    """Record an invalidation in the caller's scope, if a transaction block is open."""
    scope = _scope.get()
    if scope is not None and scope.owner == _owner():
        scope.record(cache, kind, target)


def bypasses(key: str) -> bool:
    """Must a cached call of ``key`` skip the cache (it was invalidated in the open block)?

    Costs one context-variable read outside transaction blocks.
    """
    if not _open_blocks:
        return False
    scope = _scope.get()
    return scope is not None and scope.owner == _owner() and scope.covers(key)


def open_scope() -> tuple[TransactionScope, contextvars.Token[TransactionScope | None] | None]:
    """Enter a transaction block: a new scope, or the outer one joined (token None)."""
    scope = current_scope()
    if scope is not None:
        scope.depth += 1
        return scope, None
    global _open_blocks
    scope = TransactionScope(_owner())
    with _open_lock:
        _open_blocks += 1
    return scope, _scope.set(scope)


def close_scope(scope: TransactionScope,
                token: contextvars.Token[TransactionScope | None] | None) -> list[Invalidation]:
    """Leave a block; returns the invalidations to apply again (only when leaving the outermost).

    The scope is closed before the caller re-applies them, so the re-application is not recorded.
    """
    global _open_blocks
    scope.depth -= 1
    if token is None:
        return []
    try:
        _scope.reset(token)
    finally:
        with _open_lock:
            _open_blocks -= 1
    return list(scope.invalidations)
