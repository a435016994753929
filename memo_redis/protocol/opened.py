"""The sealed values a cache opened recently, so that reading the same bytes again skips the
seal check's cryptography.

A hot key is read many times between two writes, and each read returns the same stored bytes.
:class:`OpenedSeals` keeps, per logical key name, the last sealed value whose seal opened and what
opening it gave. A read whose bytes are *equal* to those (compared whole, after the stamp check)
is the value that was verified before, for the same key name, under the same immutable keys:
opening it again would give the same answer, so it is not redone. Anything else (another value,
one bit changed, a value copied from another key) is opened, and checked, as usual. The memo
holds only values that opened, so a rejected value is rejected again on every read.

Bounded in entries and in bytes (values over a size are not kept: the first read of every value
pays the full check). For encrypted values the memo holds the decrypted inner bytes, as long as
the entry is kept; a process's memory is inside the trust boundary (docs/security.md).
"""

from __future__ import annotations

import threading
from typing import Final

MAX_ENTRIES: Final = 2048
MAX_BYTES: Final = 4 << 20
MAX_VALUE_BYTES: Final = 256 << 10

Opened = tuple[bytes, int, int]
"""What :meth:`memo_redis.sealing.Sealer.open_at` returns: the inner bytes are
``buffer[begin:end]``."""


class OpenedSeals:
    """Per key name, the last sealed value that opened and what it opened to.

    Thread-safe: lookups take no lock (single dict reads); insertions and evictions do.
    ``max_entries=0`` keeps nothing (every read is checked).
    """

    def __init__(self, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES,
                 max_value_bytes: int = MAX_VALUE_BYTES) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.max_value_bytes = max_value_bytes
        self._entries: dict[str, tuple[bytes, Opened, int]] = {}
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: str, raw: bytes) -> Opened | None:
        """What ``raw`` opened to, when it is exactly the value last opened for ``key``."""
        entry = self._entries.get(key)
        # Not a constant-time comparison, and it need not be: both sides are stored values that
        # any reader of Redis sees; no key or secret is compared.
        if entry is not None and entry[0] == raw:
            return entry[1]
        return None

    def put(self, key: str, raw: bytes, opened: Opened) -> None:
        """Remember that ``raw`` (read at ``key``) opened to ``opened``."""
        buffer = opened[0]
        size = len(raw) + (0 if buffer is raw else len(buffer))
        if size > self.max_value_bytes or size > self.max_bytes or self.max_entries <= 0:
            return
        with self._lock:
            entries = self._entries
            old = entries.pop(key, None)
            if old is not None:
                self._bytes -= old[2]
            while entries and (len(entries) >= self.max_entries
                               or self._bytes + size > self.max_bytes):
                self._bytes -= entries.pop(next(iter(entries)))[2]  # the oldest first
            entries[key] = (raw, opened, size)
            self._bytes += size

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        """The bytes of stored values (and decrypted inner bytes) held."""
        return self._bytes
