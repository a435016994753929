"""Storage formats pinned byte for byte: keys, digests, envelopes, script hashes, msgpack bodies.

Pure (no server). Every literal here was computed once with the code of the time and pasted in:
a change of any of them orphans cached entries (or, for the scripts, changes the SHA1s a server
caches), so a refactoring must leave every test here passing unchanged. A deliberate format
change updates the literal in the same commit and says so in the changelog.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import hashlib
import uuid
import zlib
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from memo_redis import envelope, scripts
from memo_redis.keys import (
    ArgumentBinder,
    build_cache_key,
    canonical_bytes,
    fingerprint_of,
    seed_digest,
)
from memo_redis.serialization import FLAG_ZLIB, Codec, Serializer

# --- seed SQL keys ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "columns", "where", "digest_length", "expected"),
    [
        ("users", ["id", "name"], [], 8, "sql:users:data:2dd67780"),
        ("users", ["id", "name"], ["active=1"], 8, "sql:users:data:cb668aec"),
        (
            "orders",
            ["total", "id", "user_id"],
            ["status='paid'", "user_id=7"],
            8,
            "sql:orders:data:0bc02843",
        ),
        ("users", ["id"], [], 16, "sql:users:data:6e10267bdea3a427"),
        (
            "users",
            ["id"],
            [],
            64,
            "sql:users:data:6e10267bdea3a427604d310d5a20bf0043f4f5bea882dcd10f68625a59eba9c5",
        ),
    ],
)
def test_build_cache_key_is_pinned(
    table: str, columns: list[str], where: list[str], digest_length: int, expected: str
) -> None:
    """build_cache_key gives the seed's exact keys (sql:{table}:data:{sha256 prefix})."""
    assert build_cache_key(table, columns, where, digest_length=digest_length) == expected


def test_seed_digest_ignores_column_order_and_is_pinned() -> None:
    """seed_digest sorts columns before hashing and keeps its 12-character prefix exact."""
    assert seed_digest("users", ["name", "id"], [], 12) == "2dd677805ac9"
    assert seed_digest("users", ["id", "name"], [], 12) == "2dd677805ac9"


# --- canonical argument encoding ------------------------------------------------------------


class Color(enum.Enum):
    RED = "r"


Color.__module__ = "app.models"
Color.__qualname__ = "Color"


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: int


Point.__module__ = "app.models"
Point.__qualname__ = "Point"


class Account:
    def __init__(self, ident: int) -> None:
        self.ident = ident

    def __cache_key__(self) -> tuple[str, int]:
        return ("account", self.ident)


Account.__module__ = "app.models"
Account.__qualname__ = "Account"

CANONICAL_ITEMS: dict[str, list[tuple[str, object]]] = {
    "scalars": [
        ("a", None),
        ("b", True),
        ("c", 1.5),
        ("d", "txt"),
        ("e", b"\x00\xff"),
        ("f", -7),
        ("g", 2**64 - 1),
    ],
    "containers": [
        ("t", (1, "a")),
        ("l", [1, [2]]),
        ("d", {"b": 1, "a": (2,)}),
        ("s", {3, 1, 2}),
        ("fs", frozenset({"x"})),
        ("ba", bytearray(b"ab")),
        ("e", ()),
        ("ed", {}),
    ],
    "dates_and_times": [
        ("dt", dt.datetime(2024, 2, 29, 13, 45, 30, 123456)),
        ("adt", dt.datetime(2024, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=2), "CEST"))),
        ("d", dt.date(2024, 5, 6)),
        ("t", dt.time(1, 2, 3, 4)),
        ("at", dt.time(5, 6, tzinfo=dt.timezone.utc)),
        ("td", dt.timedelta(days=-1, seconds=5, microseconds=6)),
    ],
    "tagged_objects": [
        ("dec", decimal.Decimal("1.00")),
        ("u", uuid.UUID("12345678-1234-5678-1234-567812345678")),
        ("big", 2**70),
        ("neg", -(2**70)),
        ("en", Color.RED),
        ("dc", Point(1, 2)),
        ("ck", Account(42)),
    ],
}

CANONICAL_PINNED: dict[str, tuple[bytes, str]] = {
    "scalars": (
        b"\x9e\xa1a\xc0\xa1b\xc3\xa1c\xcb?\xf8\x00\x00\x00\x00\x00\x00\xa1d\xa3txt\xa1e\xc4\x02"
        b"\x00\xff\xa1f\xf9\xa1g\xcf\xff\xff\xff\xff\xff\xff\xff\xff",
        "91e8c9923e714855471b69fab0a47761a30cc0b3f6d8a4f1fd0115144e856ad0",
    ),
    "containers": (
        b"\xdc\x00\x10\xa1t\x93\xc7\x00\x01\x01\xa1a\xa1l\x92\x01\x91\x02\xa1d\xc7\n#\xa1a\x92"
        b'\xc7\x00\x01\x02\xa1b\x01\xa1s\xc7\x03$\x01\x02\x03\xa2fs\xd5%\xa1x\xa2ba\xd5"ab\xa1e'
        b"\x91\xc7\x00\x01\xa2ed\xc7\x00#",
        "126c308ac0f67ffe6660b111e5a16b246a9551fc1e7d51ed63cf8b80519dda4d",
    ),
    "dates_and_times": (
        b"\x9c\xa2dt\x99\xc7\x00\x02\xcd\x07\xe8\x02\x1d\r-\x1e\xce\x00\x01\xe2@\x00\xa3adt\x9c"
        b"\xc7\x00\x03\xcd\x07\xe8\x01\x01\x00\x00\x00\x00\x00\xa8timezone\xcf\x00\x00\x00\x01"
        b"\xad'H\x00\xa4CEST\xa1d\x94\xc7\x00\x04\xcd\x07\xe8\x05\x06\xa1t\x96\xc7\x00\x05\x01"
        b"\x02\x03\x04\x00\xa2at\x99\xc7\x00\x06\x05\x06\x00\x00\x00\xa8timezone\x00\xa3UTC\xa2td"
        b"\x94\xc7\x00\x07\xff\x05\x06",
        "b076d861a09f8479a115881886e45112fe545877939d613459b4a453c57ea1e3",
    ),
    "tagged_objects": (
        b"\x9e\xa3dec\x92\xc7\x00\x08\xa41.00\xa1u\xd8!\x124Vx\x124Vx\x124Vx\x124Vx\xa3big\xc7\t "
        b"@\x00\x00\x00\x00\x00\x00\x00\x00\xa3neg\xc7\t \xc0\x00\x00\x00\x00\x00\x00\x00\x00\xa2en"
        b"\x93\xc7\x00\t\xb0app.models.Color\xa3RED\xa2dc\x96\xc7\x00\n\xb0app.models.Point\xa1x"
        b"\x01\xa1y\x02\xa2ck\x93\xc7\x00\x0b\xb2app.models.Account\x93\xc7\x00\x01\xa7account*",
        "61f4ecc2d0fe19286f0b7492bb84238d9ecf265d3a66e0f7b2cd6ebb69beca50",
    ),
}


@pytest.mark.parametrize("case", sorted(CANONICAL_ITEMS))
def test_canonical_bytes_and_fingerprint_are_pinned(case: str) -> None:
    """canonical_bytes and fingerprint_of give the exact bytes and sha256 of each ext-type form."""
    data, digest = CANONICAL_PINNED[case]
    assert canonical_bytes(CANONICAL_ITEMS[case]) == data
    assert fingerprint_of(data) == (digest, bytes.fromhex(digest)[:16])


def fetch(table: str, columns: Iterable[str], where: Iterable[str] = (), *, limit: int = 10) -> Any:
    return None


def method(self: object, user_id: int, flag: bool = False) -> Any:
    return None


def positional(a: int, b: int, /, c: int = 3) -> Any:
    return None


@pytest.mark.parametrize(
    ("func", "options", "args", "kwargs", "data", "digest"),
    [
        (
            fetch,
            {},
            ("users", ["id"]),
            {},
            b"\x98\xa5table\xa5users\xa7columns\x91\xa2id\xa5where\x91\xc7\x00\x01\xa5limit\n",
            "39e6bbcc91bec6d5f03e5315b84f9f9c7b97230b96707d425c7dcedb71d3ae48",
        ),
        (
            fetch,
            {},
            ("users",),
            {"columns": ["id"], "limit": 5},
            b"\x98\xa5table\xa5users\xa7columns\x91\xa2id\xa5where\x91\xc7\x00\x01\xa5limit\x05",
            "476439ced5a3489e629a8cba8b4bffb69b2eeb44428a05bbf47a76fbb723572a",
        ),
        (
            fetch,
            {"ignore": ("limit",)},
            ("users", ["id"], ["a=1"]),
            {"limit": 99},
            b"\x96\xa5table\xa5users\xa7columns\x91\xa2id\xa5where\x91\xa3a=1",
            "efd14b55f12b3a8e6eeba047863e991c6a0a9e109375077e35c21ec0934f685a",
        ),
        (
            method,
            {"skip_first": True},
            (object(), 7),
            {},
            b"\x94\xa7user_id\x07\xa4flag\xc2",
            "9e6a40385c47a6f61cc3b8b56dd34298bcacb7859c31814cee51e36e25cbe076",
        ),
        (
            positional,
            {},
            (1, 2),
            {},
            b"\x96\xa1a\x01\xa1b\x02\xa1c\x03",
            "50c5daa0b8bb474937dcaca98035a6c76bbe7584ecee9544dccc7543201f7b6e",
        ),
    ],
)
def test_bound_arguments_digest_is_pinned(
    func: Callable[..., Any],
    options: dict[str, Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    data: bytes,
    digest: str,
) -> None:
    """ArgumentBinder's key items (defaults applied, ignored/self dropped) digest exactly."""
    binder = ArgumentBinder(func, **options)
    items = binder.key_items(binder.bind(args, kwargs))
    assert canonical_bytes(items) == data
    assert fingerprint_of(data)[0] == digest


def test_library_types_in_arguments_keep_their_public_identity() -> None:
    """Enum members and dataclasses of memo_redis encode under their public module path."""
    from memo_redis.statements import Statement, StatementKind

    statement = Statement(
        StatementKind.DELETE, frozenset(), frozenset({"users"}), "DELETE FROM users"
    )
    items = [("codec", Codec.JSON), ("kind", StatementKind.SELECT), ("statement", statement)]
    data = canonical_bytes(items)
    assert data == (
        b"\x96\xa5codec\x93\xc7\x00\t\xbememo_redis.serialization.Codec\xa4JSON\xa4kind\x93"
        b"\xc7\x00\t\xd9#memo_redis.statements.StatementKind\xa6SELECT\xa9statement\x9a\xc7\x00"
        b"\n\xbfmemo_redis.statements.Statement\xa4kind\x93\xc7\x00\t\xd9#memo_redis.statements."
        b"StatementKind\xa6DELETE\xa5reads\xc7\x00%\xa6writes\xc7\x06%\xa5users\xaanormalized"
        b"\xb1DELETE FROM users"
    )
    assert fingerprint_of(data)[0] == (
        "597d9828475d22febdd4d1bbe047d188e32252c54cb56fbb39f916a15bf9125c"
    )
    pickled = (Codec.JSON.__reduce_ex__(5), StatementKind.SELECT.__reduce_ex__(5))
    assert [(cls.__module__, cls.__qualname__, args) for cls, args in pickled] == [
        ("memo_redis.serialization", "Codec", ("json",)),
        ("memo_redis.statements", "StatementKind", ("SELECT",)),
    ]


# --- the envelope ---------------------------------------------------------------------------

FINGERPRINT = bytes(range(16))


def test_envelope_stamp_is_pinned() -> None:
    """compute_stamp is the first 16 hex chars of sha1 over the '|'-joined generation tokens."""
    assert envelope.compute_stamp([b"0123456789abcdef", b"fedcba9876543210"]) == (
        b"31bb8734c815d388"
    )
    assert envelope.compute_stamp([]) == b"da39a3ee5e6b4b0d"


@pytest.mark.parametrize(
    ("flags", "body", "fingerprint", "early", "head", "tail"),
    [
        (0, b"body", None, None, b"\xc1\x00", b"body"),
        (4, b"body", FINGERPRINT, None, b"\xc1\x0c", FINGERPRINT + b"body"),
        (
            1,
            b"{}",
            FINGERPRINT,
            (1_700_000_000_000, 250),
            b"\xc1\x19",
            FINGERPRINT + b"\x00\x00\x01\x8b\xcf\xe5h\x00\x00\x00\x00\xfa{}",
        ),
        (0, b"", None, (1, 2), b"\xc1\x10", b"\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x02"),
    ],
)
def test_envelope_pack_tail_is_pinned(
    flags: int,
    body: bytes,
    fingerprint: bytes | None,
    early: tuple[int, int] | None,
    head: bytes,
    tail: bytes,
) -> None:
    """pack_tail's head (0xC1, flags) and tail (fingerprint, expires/delta, body) are exact."""
    assert envelope.pack_tail(flags, body, fingerprint, early) == (head, tail)
    stamp = b"0123456789abcdef"
    unpacked = envelope.unpack(head + stamp + tail)
    assert unpacked is not None
    assert (unpacked.stamp, unpacked.fingerprint, unpacked.body) == (stamp, fingerprint, body)


# --- Lua scripts ----------------------------------------------------------------------------

SCRIPT_SHA1 = {
    "BUMP": "7f8ad71565713d6800970f92a7840c058b85055a",
    "CLAIM": "d00d3a3c10d0659380a03ce63dde19203eb9b999",
    "DRAIN_INDEX": "04d671bb152841e0faad558fd693492e648ea39b",
    "INVALIDATE_ONE": "f154c3e0f6211b64d67d9a2cd6d9ee07d84d6b5d",
    "INVALIDATE_ROW": "847c8c96c49f4a62110cf515b622d5c86ff8cb1e",
    "RELEASE": "10f8e923ff753e3fde583272fb40e2be0ae3afd3",
    "STORE": "a1772d43b3f400c7e5e9300a004cfd5974c8e663",
}


def test_script_sources_are_pinned() -> None:
    """Every Lua script in memo_redis.scripts has its exact source (the SHA1 EVALSHA uses)."""
    found = {
        name: hashlib.sha1(value.encode(), usedforsecurity=False).hexdigest()
        for name, value in vars(scripts).items()
        if name.isupper() and isinstance(value, str)
    }
    assert found == SCRIPT_SHA1


# --- msgpack bodies -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "body"),
    [
        (None, b"\xc0"),
        (1, b"\x01"),
        ("a", b"\xa1a"),
        ((1, "a"), b"\xd6\x01\x92\x01\xa1a"),
        ([1, 2, 3], b"\x93\x01\x02\x03"),
        ({"k": [1, (2, 3)]}, b"\x81\xa1k\x92\x01\xc7\x03\x01\x92\x02\x03"),
        ({1, 2}, b"\xc7\x03\x02\x92\x01\x02"),
        (frozenset({"x"}), b"\xc7\x03\x03\x91\xa1x"),
        (2**64, b"\xc7\t\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00"),
        (-(2**63) - 1, b"\xc7\t\x00\xff\x7f\xff\xff\xff\xff\xff\xff\xff"),
        (
            dt.datetime(2024, 2, 29, 13, 45, 30, 123456),
            b"\xc7\x0c\x04\x07\xe8\x02\x1d\r-\x1e\x00\x01\xe2@\x00",
        ),
        (
            dt.datetime(2024, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
            b"\xc7\x14\x04\x07\xe8\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\xff\xff\xff\xfb\xcf\x1d"
            b"\xcc\x00",
        ),
        (dt.date(2024, 5, 6), b"\xd6\x05\x07\xe8\x05\x06"),
        (dt.time(1, 2, 3, 4), b"\xd7\x06\x01\x02\x03\x00\x00\x00\x04\x00"),
        (
            dt.time(1, 2, tzinfo=dt.timezone.utc),
            b"\xd8\x06\x01\x02\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
        ),
        (
            dt.timedelta(days=-1, seconds=5, microseconds=6),
            b"\xc7\x0c\x07\xff\xff\xff\xff\x00\x00\x00\x05\x00\x00\x00\x06",
        ),
        (decimal.Decimal("1.50"), b"\xd6\x081.50"),
        (uuid.UUID("12345678-1234-5678-1234-567812345678"), b"\xd8\t\x124Vx\x124Vx\x124Vx\x124Vx"),
        (b"\x00\x01", b"\xc4\x02\x00\x01"),
        (1.5, b"\xcb?\xf8\x00\x00\x00\x00\x00\x00"),
        (True, b"\xc3"),
    ],
)
def test_msgpack_body_is_pinned(value: object, body: bytes) -> None:
    """Serializer('msgpack').encode gives flags 0 and these exact bytes (ext codes 0 to 9)."""
    assert Serializer("msgpack").encode(value) == (0, body)


def test_compressed_msgpack_payload_is_pinned() -> None:
    """A body at the threshold is flagged FLAG_ZLIB and inflates to the exact msgpack bytes."""
    flags, body = Serializer("msgpack").encode("x" * 600)
    assert flags == FLAG_ZLIB == 4
    # The deflate stream itself depends on the zlib build; what it inflates to does not.
    assert zlib.decompress(body) == b"\xda\x02X" + b"x" * 600


def test_json_bodies_are_pinned() -> None:
    """The json codec (flags 1) is compact UTF-8; the seed's plain JSON is json.dumps."""
    value = {"a": [1, 2], "b": "\u00e9"}
    assert Serializer("json").encode(value) == (1, b'{"a":[1,2],"b":"\xc3\xa9"}')
    assert Serializer().encode_plain_json(value) == b'{"a": [1, 2], "b": "\\u00e9"}'
