"""The stored envelope layout: header, stamp, optional fingerprint and refresh fields, body."""

from __future__ import annotations

import hashlib

import pytest

from memo_redis import envelope
from memo_redis.envelope import FLAG_EARLY, FLAG_FINGERPRINT, MAGIC_BYTE, STAMP_SIZE

STAMP = b"0123456789abcdef"


def _join(head: bytes, tail: bytes, stamp: bytes = STAMP) -> bytes:
    """What the store script writes: head + stamp + tail."""
    return head + stamp + tail


def test_plain_envelope_round_trip() -> None:
    """An envelope without optional fields unpacks to its flags, stamp and body."""
    head, tail = envelope.pack_tail(0x01, b"body")
    assert head == MAGIC_BYTE + b"\x01"
    env = envelope.unpack(_join(head, tail))
    assert env is not None
    assert (env.flags, env.stamp, env.fingerprint, env.body) == (0x01, STAMP, None, b"body")
    assert (env.expires_ms, env.delta_ms) == (0, 0)


def test_fingerprint_and_early_fields_round_trip() -> None:
    """Fingerprint and (expires_ms, delta_ms) come back exactly, flagged in the header."""
    fingerprint = bytes(range(16))
    head, tail = envelope.pack_tail(0x04, b"\x00zz", fingerprint, (1_700_000_000_123, 250))
    env = envelope.unpack(_join(head, tail))
    assert env is not None
    assert env.flags & FLAG_FINGERPRINT
    assert env.flags & FLAG_EARLY
    assert env.flags & 0x07 == 0x04
    assert env.fingerprint == fingerprint
    assert (env.expires_ms, env.delta_ms) == (1_700_000_000_123, 250)
    assert env.body == b"\x00zz"


@pytest.mark.parametrize(
    "raw",
    [b"", b'{"a": 1}', b"[1, 2]", b"\x80\x81", MAGIC_BYTE, MAGIC_BYTE + b"\x00short"],
    ids=["empty", "json-object", "json-array", "binary", "magic-only", "too-short"],
)
def test_non_envelopes_unpack_to_none(raw: bytes) -> None:
    """Bytes that are not an envelope (seed JSON, foreign, truncated) unpack to None."""
    assert envelope.unpack(raw) is None


def test_empty_body_is_allowed() -> None:
    """A header and stamp with nothing after them is an envelope with an empty body."""
    env = envelope.unpack(MAGIC_BYTE + b"\x00" + STAMP)
    assert env is not None
    assert env.body == b""


def test_compute_stamp_is_sha1_prefix() -> None:
    """The stamp is the first 16 hex chars of sha1 of the generations joined by '|'."""
    gens = [b"aa", b"bb", b"cc"]
    expected = hashlib.sha1(b"aa|bb|cc").hexdigest()[:STAMP_SIZE].encode()
    assert envelope.compute_stamp(gens) == expected
    assert len(expected) == STAMP_SIZE


def test_new_tokens_are_fresh_hex() -> None:
    """new_token() gives 16 hex characters, different every time."""
    tokens = {envelope.new_token() for _ in range(100)}
    assert len(tokens) == 100
    assert all(len(t) == 16 and int(t, 16) >= 0 for t in tokens)


@pytest.mark.parametrize(("flags", "needed"), [(0x08, 16), (0x10, 12), (0x18, 28), (0xFF, 28)])
def test_envelope_shorter_than_its_announced_fields_unpacks_to_none(
    flags: int, needed: int
) -> None:
    """A header whose flags announce a fingerprint or timing fields it lacks is not an envelope
    (None), never a struct.error; with those bytes present it is one."""
    head = MAGIC_BYTE + bytes([flags]) + STAMP
    assert envelope.unpack(head) is None
    assert envelope.unpack(head + b"\x00" * (needed - 1)) is None
    assert envelope.unpack(head + b"\x00" * needed) is not None
