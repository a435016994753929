"""The memo of opened sealed values (:mod:`memo_redis.protocol.opened`): pure bounds and lookups.

Its effect on reads against a real server is tested in ``test_sealed_values.py``.
"""

from __future__ import annotations

from memo_redis.protocol.opened import OpenedSeals


def signed(raw: bytes) -> tuple[bytes, int, int]:
    """What opening a signed value gives: the stored bytes themselves, and where the inner is."""
    return raw, 6, len(raw) - 32


def test_only_equal_bytes_are_found() -> None:
    memo = OpenedSeals()
    raw = bytes(range(100))
    memo.put("k", raw, signed(raw))
    assert memo.get("k", bytes(range(100))) == signed(raw)  # equal bytes, another object
    flipped = bytearray(raw)
    flipped[50] ^= 1
    assert memo.get("k", bytes(flipped)) is None
    assert memo.get("k", raw[:-1]) is None
    assert memo.get("other", raw) is None  # the same bytes at another key: not verified there


def test_a_newer_value_replaces_the_older_one() -> None:
    memo = OpenedSeals()
    old, new = b"a" * 64, b"b" * 64
    memo.put("k", old, signed(old))
    memo.put("k", new, signed(new))
    assert memo.get("k", old) is None
    assert memo.get("k", new) == signed(new)
    assert len(memo) == 1
    assert memo.size_bytes == 64


def test_bounded_in_entries_oldest_first() -> None:
    memo = OpenedSeals(max_entries=3)
    for n in range(5):
        raw = bytes([n]) * 40
        memo.put(f"k{n}", raw, signed(raw))
    assert len(memo) == 3
    assert memo.get("k0", bytes([0]) * 40) is None
    assert memo.get("k1", bytes([1]) * 40) is None
    assert memo.get("k4", bytes([4]) * 40) is not None
    assert memo.size_bytes == 120


def test_bounded_in_bytes_and_value_size() -> None:
    memo = OpenedSeals(max_bytes=1000, max_value_bytes=400)
    big = b"x" * 401
    memo.put("big", big, signed(big))
    assert len(memo) == 0  # over max_value_bytes: never kept
    for n in range(4):
        raw = bytes([n]) * 300
        memo.put(f"k{n}", raw, signed(raw))  # a signed value's inner is in the stored bytes
    assert memo.size_bytes <= 1000
    assert len(memo) == 3
    assert memo.get("k0", bytes([0]) * 300) is None


def test_decrypted_bytes_count_towards_the_budget() -> None:
    memo = OpenedSeals(max_value_bytes=150)
    raw = b"c" * 100
    memo.put("k", raw, (b"p" * 60, 0, 60))  # an encrypted value: the plaintext is held too
    assert len(memo) == 0
    memo.put("k", raw, (b"p" * 40, 0, 40))
    assert memo.size_bytes == 140
    assert memo.get("k", raw) == (b"p" * 40, 0, 40)


def test_zero_entries_keeps_nothing() -> None:
    memo = OpenedSeals(max_entries=0)
    memo.put("k", b"v" * 50, signed(b"v" * 50))
    assert len(memo) == 0
    assert memo.get("k", b"v" * 50) is None
