"""What the L1 remembers of recent invalidations, so that a fill racing one is refused only when
it concerns the filled key; and the *row* the L1 groups its keys by."""

from __future__ import annotations

from collections import deque
from typing import Final

EVENTS_KEPT: Final = 1024
"""Invalidations remembered: a fill that started before the oldest one kept is refused (it may
have read a value one of the forgotten ones replaced)."""


def row_of(key: str) -> str:
    """The first three segments of ``key``'s scope (all of it when shorter): ``sql:users:7``
    for ``sql:users:7:data:ab12``, ``sql:users`` for ``sql:users:ab12``.

        >>> row_of("sql:users:7:data:ab12"), row_of("sql:users:ab12"), row_of("plain")
        ('sql:users:7', 'sql:users', '')
    """
    cut = key.rfind(":")
    if cut < 0:
        return ""
    parts = key[:cut].split(":", 3)
    return ":".join(parts[:3])


class InvalidationLog:
    """An epoch counter and the latest invalidations; not thread-safe (the L1 holds its lock).

        >>> log = InvalidationLog()
        >>> start = log.epoch
        >>> log.record("sql:users:2:", under=True)
        >>> log.touched_since(start, "sql:users:1:data:x")
        False
        >>> log.touched_since(start, "sql:users:2:data:x")
        True
    """

    def __init__(self) -> None:
        self.epoch = 0
        """Bumped by every invalidation: a reader takes it before reading Redis."""
        self._events: deque[tuple[int, str | None, bool]] = deque(maxlen=EVENTS_KEPT)

    def record(self, target: str | None, *, under: bool = False) -> None:
        """An invalidation of the key ``target``, of every key starting with ``target``
        (``under``), or of everything (None)."""
        self.epoch += 1
        self._events.append((self.epoch, target, under))

    def touched_since(self, epoch: int, key: str) -> bool:
        """Did an invalidation recorded after ``epoch`` touch ``key``? True as well when the
        events since then are no longer all kept (conservative)."""
        if epoch == self.epoch:
            return False
        events = self._events
        if not events or events[0][0] > epoch + 1:
            return True
        for at, target, under in reversed(events):
            if at <= epoch:
                return False
            if target is None or target == key or (under and key.startswith(target)):
                return True
        return False
