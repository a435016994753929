"""The stored envelope: what memo_redis writes around a serialized value.

Layout of a value written by memo_redis (all integers big-endian)::

    0xC1 | flags (1) | stamp (16 ASCII hex) | [fingerprint (16)]
         | [expires_ms (8), delta_ms (4)] | body

* ``0xC1`` is a byte msgpack never uses and JSON text never starts with, so a stored
  value that does not start with it is a plain value in the seed's format (JSON text).
* ``flags``: the low bits belong to :mod:`memo_redis.serialization` (codec, zlib);
  ``FLAG_FINGERPRINT`` and ``FLAG_EARLY`` say which optional fields follow the stamp.
* ``stamp``: the first 16 hex characters of ``sha1("|".join(generation tokens))`` of the
  key's scopes when the computation *started*; the store script writes it, readers
  recompute it from the generations they read, so an invalidated entry is a miss.
* ``fingerprint``: 16 bytes of the sha256 of the full normalized call arguments; a digest
  collision in the key is then a miss, never another call's result.
* ``expires_ms``/``delta_ms``: wall-clock expiry and compute time, for early (XFetch)
  refresh.

A cache with a signing or encryption key (:mod:`memo_redis.sealing`) writes *sealed*
envelopes instead::

    0xC1 | FLAG_SEALED (1) | stamp (16 ASCII hex) | seal(key name, inner)
    inner = flags (1) | [fingerprint (16)] | [expires_ms (8), delta_ms (4)] | body

The head's flag byte is exactly ``FLAG_SEALED``; the real flags travel inside the seal with the
fields they announce, so nothing a reader acts on besides the stamp is outside it. The stamp
stays outside: the store script writes it on the server, and a changed stamp can only turn a
value into a miss. :func:`pack_sealed` builds the inner part, :func:`unpack_sealed` reads it back.

The stamp and fingerprint are a storage format: changing them orphans cached entries.
"""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass

MAGIC = 0xC1
MAGIC_BYTE = b"\xc1"
FLAG_FINGERPRINT = 0x08
FLAG_EARLY = 0x10
FLAG_SEALED = 0x20
SEALED_HEAD = bytes((MAGIC, FLAG_SEALED))
STAMP_SIZE = 16
FINGERPRINT_SIZE = 16
_EARLY = struct.Struct(">QI")
_HEADER = 2 + STAMP_SIZE
_OPTIONAL_SIZE = {
    0: 0,
    FLAG_FINGERPRINT: FINGERPRINT_SIZE,
    FLAG_EARLY: _EARLY.size,
    FLAG_FINGERPRINT | FLAG_EARLY: FINGERPRINT_SIZE + _EARLY.size,
}


@dataclass(frozen=True, slots=True)
class Envelope:
    """A decoded envelope; ``body`` is still serialized."""

    flags: int
    stamp: bytes
    fingerprint: bytes | None
    expires_ms: int
    delta_ms: int
    body: bytes


def compute_stamp(generations: list[bytes]) -> bytes:
    """The stamp of a list of generation tokens, identical to the store script's computation."""
    digest = hashlib.sha1(b"|".join(generations), usedforsecurity=False).hexdigest()
    return digest[:STAMP_SIZE].encode()


def new_token() -> bytes:
    """A fresh random generation, fence or lock token."""
    return os.urandom(8).hex().encode()


def pack_tail(
    flags: int,
    body: bytes,
    fingerprint: bytes | None = None,
    early: tuple[int, int] | None = None,
) -> tuple[bytes, bytes]:
    """Split an envelope into the part before the stamp and the part after it.

    The store script joins ``head + stamp + tail``: the stamp is only known on the server.
    """
    parts = []
    if fingerprint is not None:
        flags |= FLAG_FINGERPRINT
        parts.append(fingerprint)
    if early is not None:
        flags |= FLAG_EARLY
        parts.append(_EARLY.pack(*early))
    parts.append(body)
    return bytes((MAGIC, flags)), b"".join(parts)


def unpack(raw: bytes) -> Envelope | None:
    """Decode an envelope; ``None`` when ``raw`` is not one (a plain seed-format value).

    A value that starts with ``0xC1`` but is shorter than the fields its flags announce
    (truncated or foreign bytes) is not an envelope either: ``None``, never an exception.
    """
    if not raw or raw[0] != MAGIC or len(raw) < _HEADER:
        return None
    return _read(raw, raw[1], _HEADER, len(raw), raw[2:_HEADER])


def _read(data: bytes, flags: int, pos: int, end: int, stamp: bytes) -> Envelope | None:
    """The fields ``flags`` announces from ``data[pos:end]``, then the body; ``None`` when
    that is too short for them."""
    if end < pos + _OPTIONAL_SIZE[flags & (FLAG_FINGERPRINT | FLAG_EARLY)]:
        return None
    fingerprint = None
    expires_ms = delta_ms = 0
    if flags & FLAG_FINGERPRINT:
        fingerprint = data[pos : pos + FINGERPRINT_SIZE]
        pos += FINGERPRINT_SIZE
    if flags & FLAG_EARLY:
        expires_ms, delta_ms = _EARLY.unpack_from(data, pos)
        pos += _EARLY.size
    return Envelope(flags, stamp, fingerprint, expires_ms, delta_ms, data[pos:end])


def pack_sealed(
    flags: int,
    body: bytes,
    fingerprint: bytes | None = None,
    early: tuple[int, int] | None = None,
) -> bytes:
    """The inner part of a sealed envelope (flags, optional fields, body), to be sealed.

    The store script joins ``SEALED_HEAD + stamp + seal(key name, inner)``.
    """
    head, tail = pack_tail(flags, body, fingerprint, early)
    return head[1:] + tail


def unpack_sealed(stamp: bytes, inner: bytes, begin: int = 0, end: int | None = None
                  ) -> Envelope | None:
    """The envelope of an opened seal's inner bytes ``inner[begin:end]``, read under ``stamp``
    (without copying them first); ``None`` when they are shorter than their flags announce or
    are themselves marked sealed."""
    if end is None:
        end = len(inner)
    if end <= begin or inner[begin] & FLAG_SEALED:
        return None
    return _read(inner, inner[begin], begin + 1, end, stamp)
