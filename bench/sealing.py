"""What signing and encrypting stored values costs per call (CPU only, no server).

    .venv/bin/python -m bench.sealing            # or: .venv/bin/python bench/sealing.py
    .venv/bin/python -m bench.sealing --quick    # checks that it runs, not a result

Times :meth:`memo_redis.sealing.Sealer.seal` and :meth:`~memo_redis.sealing.Sealer.open` on the
benchmark's 20-row entry (as the msgpack serializer encodes it), on 400 random bytes and on 40 KB
of random bytes, next to raw baselines: the bytes slice ``open`` returns (the floor) and, for the
20-row entry, the msgpack decode a hit does anyway. It also times the HMAC constructions that
were considered, so the choice in :mod:`memo_redis.sealing` can be re-checked on other machines.

Each figure is the minimum over ``--repeat`` batches of ``--number`` calls (the cost without
preemption; on a shared machine, medians mostly measure the neighbours). The target line checks
the issue's budget: signing adds at most 3 µs per hit on the 20-row entry. Exits 1 when missed.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import struct
import sys
import timeit
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the ``bench`` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.workload import ROWS
from memo_redis.sealing import EncryptionKeys, Sealer, SigningKeys
from memo_redis.serialization import Serializer

TARGET_US = 3.0
RAW = "raw: bytes slice (the copy open returns)"
SIGN_OPEN = "sign: open"
KEY_NAME = b"memo:bench:sql:users:fetch:0123456789abcdef0123456789abcdef"


def per_call_us(func: Callable[[], object], number: int, repeat: int) -> float:
    """The minimum over ``repeat`` batches of the mean µs per call in a batch of ``number``."""
    return min(timeit.repeat(func, number=number, repeat=repeat)) / number * 1e6


def hmac_alternatives(key: bytes, payload: bytes) -> dict[str, Callable[[], bytes]]:
    """The HMAC-SHA256 constructions considered for the signed format (same tag each)."""
    prefix = struct.pack(">I", len(KEY_NAME)) + KEY_NAME
    header = b"\xf5\x01\x00\x00\x00\x00"
    keyed = hmac.new(key, digestmod=hashlib.sha256)
    block = key.ljust(64, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))

    def hmac_copy() -> bytes:
        mac = keyed.copy()
        mac.update(prefix)
        mac.update(header)
        mac.update(payload)
        return mac.digest()

    def hmac_oneshot() -> bytes:
        return hmac.digest(key, b"".join((prefix, header, payload)), "sha256")

    def precomputed_pads() -> bytes:
        mac = inner.copy()
        mac.update(prefix)
        mac.update(header)
        mac.update(payload)
        out = outer.copy()
        out.update(mac.digest())
        return out.digest()

    tags = {hmac_copy(), hmac_oneshot(), precomputed_pads()}
    assert len(tags) == 1, "the HMAC constructions disagree"
    return {
        "hmac.new(key).copy() + update": hmac_copy,
        "hmac.digest one-shot (joined input)": hmac_oneshot,
        "precomputed ipad/opad sha256 states (used)": precomputed_pads,
    }


def sealing_cases(
    payload: bytes, decode: Callable[[], object] | None
) -> dict[str, Callable[[], object]]:
    """The timed calls for one payload, each checked once; ``decode`` is the hit's own decode."""
    signing_key, old_key = os.urandom(32), os.urandom(32)
    signer = Sealer(SigningKeys.parse(signing_key, source="bench"))
    rotated = Sealer(SigningKeys.parse([os.urandom(32), os.urandom(32), old_key], source="bench"))
    encrypter = Sealer(encryption=EncryptionKeys.parse(os.urandom(32), source="bench"))
    signed = signer.seal(KEY_NAME, payload)
    signed_old = Sealer(SigningKeys.parse(old_key, source="bench")).seal(KEY_NAME, payload)
    encrypted = encrypter.seal(KEY_NAME, payload)
    assert signer.open(KEY_NAME, signed) == payload
    assert rotated.open(KEY_NAME, signed_old) == payload
    assert encrypter.open(KEY_NAME, encrypted) == payload

    cases: dict[str, Callable[[], object]] = {RAW: lambda: signed[6:-32]}
    if decode is not None:
        cases["raw: msgpack decode (a hit does it anyway)"] = decode
    cases["sign: seal"] = lambda: signer.seal(KEY_NAME, payload)
    cases[SIGN_OPEN] = lambda: signer.open(KEY_NAME, signed)
    cases["sign: open, 3rd of 3 rotated keys"] = lambda: rotated.open(KEY_NAME, signed_old)
    cases["encrypt: seal"] = lambda: encrypter.seal(KEY_NAME, payload)
    cases["encrypt: open"] = lambda: encrypter.open(KEY_NAME, encrypted)
    for name, func in hmac_alternatives(signing_key, payload).items():
        cases[f"hmac: {name}"] = func
    return cases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=20_000, help="calls per batch")
    parser.add_argument("--repeat", type=int, default=7, help="batches (the minimum is kept)")
    parser.add_argument("--quick", action="store_true", help="tiny batches: a smoke run")
    args = parser.parse_args(argv)
    number, repeat = (200, 2) if args.quick else (args.number, args.repeat)

    serializer = Serializer()
    flags, entry = serializer.encode(ROWS)
    entry_label = f"20-row entry ({len(entry)} B msgpack)"
    payloads: list[tuple[str, bytes, Callable[[], object] | None]] = [
        (entry_label, entry, lambda: serializer.decode(flags, entry)),
        ("400 B random", os.urandom(400), None),
        ("40 KB random", os.urandom(40_000), None),
    ]
    print(f"µs per call, min of {repeat} x {number}; key name {len(KEY_NAME)} B")
    results: dict[tuple[str, str], float] = {}
    for label, payload, decode in payloads:
        print(f"\n{label}")
        for name, func in sealing_cases(payload, decode).items():
            us = per_call_us(func, number, repeat)
            results[label, name] = us
            print(f"  {name:<52} {us:8.3f}")

    added = results[entry_label, SIGN_OPEN] - results[entry_label, RAW]
    passed = added <= TARGET_US
    print(
        f"\nsigning adds {added:.2f} µs per hit on the 20-row entry "
        f"(target <= {TARGET_US:g} µs): {'PASS' if passed else 'FAIL'}"
    )
    return 0 if passed or args.quick else 1


if __name__ == "__main__":
    sys.exit(main())
