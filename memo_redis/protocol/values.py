"""Values in and out of the stored envelope: encoding with size bounds, decoding with checks.

A stored value is served only when its stamp matches the generations read with it and its
fingerprint matches the lookup's; anything undecodable is a logged miss, never an exception.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from .. import envelope
from ..serialization import Codec, DecodeError, Serializer
from .entries import MISS, SeedFingerprint

log = logging.getLogger("memo_redis")

_MAX_WARNED_KEYS: Final = 1024


class ValueCodec:
    """The cache's serializer and ``max_value_size``, plus the once-only warnings they raise."""

    def __init__(self, serializer: Serializer, max_value_size: int | None) -> None:
        self.serializer = serializer
        self.max_value_size = max_value_size
        self._warned: set[str] = set()
        self._warned_keys: set[str] = set()

    def warn_once(self, kind: str, message: str) -> None:
        """Log ``message`` the first time a problem of ``kind`` happens."""
        if kind not in self._warned:
            self._warned.add(kind)
            log.warning("memo_redis: %s", message)

    def warn_key(self, key: str, problem: str) -> None:
        """Log a bad value once per key (bounded), so a bad entry does not flood logs."""
        if key in self._warned_keys:
            return
        if len(self._warned_keys) < _MAX_WARNED_KEYS:
            self._warned_keys.add(key)
        log.warning("memo_redis: the value stored at %r %s; treated as a miss", key, problem)

    def decode(self, key: str, raw: bytes | None, generations: list[bytes | None],
               fingerprint: bytes | None) -> tuple[Any, envelope.Envelope | None]:
        """The value held by ``raw`` if it is valid under ``generations``, else MISS."""
        if raw is None:
            return MISS, None
        env = envelope.unpack(raw)
        if env is None:
            # Plain JSON text: the seed deployment's format (no stamp, no fingerprint). Only the
            # key/value API (no fingerprint) and the seed's SQL reader (a SeedFingerprint) read
            # it; decorated functions write envelopes, so at their keys it came from elsewhere.
            if fingerprint is not None and not isinstance(fingerprint, SeedFingerprint):
                self.warn_key(key, "is not a memo_redis envelope (decorated functions write "
                              "only envelopes)")
                return MISS, None
            try:
                return self.serializer.decode_plain_json(raw, max_size=self.max_value_size), None
            except DecodeError as exc:
                self.warn_key(key, f"is neither memo_redis data nor readable JSON text ({exc})")
                return MISS, None
        if None in generations:
            return MISS, None
        if env.stamp != envelope.compute_stamp(generations):  # type: ignore[arg-type]
            return MISS, None
        if fingerprint is not None and env.fingerprint != fingerprint:
            return MISS, None
        try:
            return self.serializer.decode(env.flags, env.body, max_size=self.max_value_size), env
        except DecodeError as exc:
            self.warn_key(key, f"could not be decoded ({exc})")
            return MISS, None

    def encode(self, value: Any, fingerprint: bytes | None = None,
               early: tuple[int, int] | None = None) -> tuple[bytes, bytes] | None:
        """Serialize ``value`` into (head, tail); None when it exceeds ``max_value_size``.

        A JSON value without fingerprint or refresh data is stored as plain JSON text, the seed's
        format (empty head): readable by any language.
        """
        serializer = self.serializer
        plain = (serializer.codec is Codec.JSON and fingerprint is None and early is None
                 and serializer.compress_threshold is None)
        if plain:
            flags, body = 0, serializer.encode_plain_json(value)
        else:
            # Over max_value_size the payload comes back uncompressed: readers refuse to inflate
            # more than that, so it is refused here too.
            flags, body = serializer.encode(value, max_size=self.max_value_size)
        if self.max_value_size is not None and len(body) > self.max_value_size:
            self.warn_once(
                "too-large",
                f"a value of {len(body)} bytes exceeds max_value_size={self.max_value_size} "
                "and is not cached",
            )
            return None
        if plain:
            return b"", body
        return envelope.pack_tail(flags, body, fingerprint, early)
