"""Pure tests of memo_redis.serialization: codecs, compression, flags and error reporting."""

from __future__ import annotations

import enum
import json
import math
import pickle
import random
import sys
import uuid
import zlib
import zoneinfo
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from types import FrameType
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from memo_redis import serialization
from memo_redis.exceptions import ConfigError, MemoRedisError, SerializationError
from memo_redis.serialization import (
    FLAG_CODEC_MASK,
    FLAG_ZLIB,
    Codec,
    DecodeError,
    Serializer,
)

# --- helpers -----------------------------------------------------------------------------------


def _tag(value: object) -> tuple[str, str]:
    return type(value).__qualname__, repr(value)


def assert_same(out: object, expected: object) -> None:
    """Assert ``out`` equals ``expected`` with the same type, recursively (nan-aware)."""
    assert type(out) is type(expected), f"{type(out)!r} is not {type(expected)!r}"
    if isinstance(expected, float):
        assert isinstance(out, float)
        if math.isnan(expected):
            assert math.isnan(out)
        else:
            assert out == expected
            assert math.copysign(1.0, out) == math.copysign(1.0, expected)
    elif isinstance(expected, Decimal):
        assert str(out) == str(expected)
    elif isinstance(expected, (list, tuple)):
        assert isinstance(out, (list, tuple))
        assert len(out) == len(expected)
        for out_item, expected_item in zip(out, expected, strict=True):
            assert_same(out_item, expected_item)
    elif isinstance(expected, dict):
        assert isinstance(out, dict)
        assert len(out) == len(expected)
        for (out_key, out_value), (key, value) in zip(out.items(), expected.items(), strict=True):
            assert_same(out_key, key)
            assert_same(out_value, value)
    elif isinstance(expected, (set, frozenset)):
        assert isinstance(out, (set, frozenset))
        assert sorted(map(_tag, out)) == sorted(map(_tag, expected))
    elif isinstance(expected, (datetime, time)):
        assert isinstance(out, (datetime, time))
        assert out == expected
        assert out.fold == expected.fold
        assert out.utcoffset() == expected.utcoffset()
        if expected.utcoffset() is not None:
            assert isinstance(out.tzinfo, timezone)
    else:
        assert out == expected


def roundtrip(serializer: Serializer, value: object) -> Any:
    flags, body = serializer.encode(value)
    assert isinstance(body, bytes)
    return serializer.decode(flags, body)


class Foo:
    """A user class no safe codec knows."""


class Color(enum.IntEnum):
    RED = 1


class Name(str):
    """A str subclass."""


def _paris(value: datetime) -> datetime:
    try:
        return value.replace(tzinfo=zoneinfo.ZoneInfo("Europe/Paris"))
    except zoneinfo.ZoneInfoNotFoundError:  # pragma: no cover - no tz database on this machine
        pytest.skip("no tz database")


# --- msgpack: exact round trips ----------------------------------------------------------------

EXACT_CASES: list[tuple[str, object]] = [
    ("none", None),
    ("true", True),
    ("false", False),
    ("zero", 0),
    ("int64-min", -(2**63)),
    ("uint64-max", 2**64 - 1),
    ("int-above-uint64", 2**64),
    ("int-below-int64", -(2**63) - 1),
    ("int-huge", 10**100),
    ("int-huge-negative", -(10**100) + 7),
    ("int-minus-2**64", -(2**64)),
    ("float", 1.5),
    ("nan", math.nan),
    ("inf", math.inf),
    ("-inf", -math.inf),
    ("-0.0", -0.0),
    ("str", "héllo ✓ 𝄞"),
    ("str-empty", ""),
    ("bytes", b"\x00\xff\x80"),
    ("bytes-empty", b""),
    ("list", [1, "a", None, 2.5]),
    ("list-empty", []),
    ("tuple", (1, "a")),
    ("tuple-empty", ()),
    ("tuple-nested", ((1, (2, 3)), [4, (5,)], {"k": (6, 7)})),
    ("dict", {"a": 1, "b": [1, 2]}),
    ("dict-empty", {}),
    ("dict-int-keys", {1: "a", 2: "b", -(2**70): "big"}),
    ("dict-tuple-keys", {(1, 2): "x", (3, (4, 5)): "y"}),
    ("dict-mixed-keys", {None: 1, 1.5: 2, b"k": 3, frozenset({1}): 4, date(2024, 1, 2): 5}),
    ("set", {1, 2, 3}),
    ("set-empty", set()),
    ("set-mixed", {1, "a", (1, 2), frozenset({3})}),
    ("frozenset", frozenset({"a", "b"})),
    ("frozenset-empty", frozenset()),
    ("datetime-naive", datetime(2024, 2, 29, 13, 45, 6, 789012)),
    ("datetime-naive-fold", datetime(2024, 10, 27, 2, 30, fold=1)),
    ("datetime-min", datetime.min),
    ("datetime-max", datetime.max),
    ("datetime-utc", datetime(2024, 1, 1, 12, tzinfo=timezone.utc)),
    (
        "datetime-plus-0530",
        datetime(2024, 1, 1, 12, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    ),
    ("datetime-minus-08", datetime(1999, 12, 31, 23, 59, tzinfo=timezone(timedelta(hours=-8)))),
    (
        "datetime-odd-offset",
        datetime(2024, 1, 1, tzinfo=timezone(timedelta(hours=-23, seconds=-59, microseconds=-1))),
    ),
    ("date", date(2024, 2, 29)),
    ("date-min", date.min),
    ("time-naive", time(23, 59, 59, 999999)),
    ("time-naive-fold", time(1, 30, fold=1)),
    ("time-aware", time(8, 15, tzinfo=timezone(timedelta(hours=-3, minutes=-30)))),
    ("timedelta", timedelta(days=3, seconds=5, microseconds=7)),
    ("timedelta-negative", timedelta(microseconds=-1)),
    ("timedelta-max", timedelta.max),
    ("timedelta-min", timedelta.min),
    ("decimal", Decimal("1.10")),
    ("decimal-exponent", Decimal("-1.234E+1000")),
    ("decimal-negative-zero", Decimal("-0")),
    ("decimal-nan", Decimal("NaN")),
    ("decimal-snan", Decimal("-sNaN12")),
    ("decimal-infinity", Decimal("Infinity")),
    ("decimal-negative-infinity", Decimal("-Infinity")),
    ("uuid", uuid.UUID("12345678-1234-5678-1234-567812345678")),
]


@pytest.mark.parametrize(
    "value", [case[1] for case in EXACT_CASES], ids=[c[0] for c in EXACT_CASES]
)
def test_msgpack_round_trip_is_exact(value: object) -> None:
    """The msgpack codec returns a value of the same type that compares equal."""
    assert_same(roundtrip(Serializer(), value), value)


def test_msgpack_round_trip_of_all_cases_in_one_container() -> None:
    """Every supported type round-trips exactly when nested together in one list."""
    value = [case[1] for case in EXACT_CASES]
    assert_same(roundtrip(Serializer(), value), value)


def test_aware_datetime_keeps_its_offset_as_a_fixed_timezone() -> None:
    """An aware datetime comes back with a fixed-offset timezone equal to its utcoffset."""
    original = datetime(2024, 7, 1, 9, 30, tzinfo=timezone(timedelta(hours=2)))
    out = roundtrip(Serializer(), original)
    assert out == original
    assert out.tzinfo == timezone(timedelta(hours=2))
    assert (out.hour, out.minute) == (9, 30)


def test_zoneinfo_datetime_comes_back_with_its_utcoffset() -> None:
    """A ZoneInfo datetime comes back as the same instant and wall time with a fixed offset."""
    original = _paris(datetime(2024, 7, 1, 9, 30))
    out = roundtrip(Serializer(), original)
    assert out == original
    assert out.tzinfo == timezone(timedelta(hours=2))
    assert out.replace(tzinfo=None) == original.replace(tzinfo=None)


def test_ext_type_codes_are_pinned() -> None:
    """The ext type codes and payload layouts are a storage format and must not change."""
    s = Serializer(compress_threshold=None)
    assert s.encode((1,)) == (0, b"\xd5\x01\x91\x01")
    assert s.encode(2**64) == (0, b"\xc7\x09\x00\x01" + bytes(8))
    assert s.encode({1}) == (0, b"\xd5\x02\x91\x01")
    assert s.encode(frozenset({1})) == (0, b"\xd5\x03\x91\x01")
    assert s.encode(datetime(2024, 1, 2, 3, 4, 5, 6)) == (
        0,
        b"\xc7\x0c\x04\x07\xe8\x01\x02\x03\x04\x05\x00\x00\x00\x06\x00",
    )
    assert s.encode(date(2024, 1, 2)) == (0, b"\xd6\x05\x07\xe8\x01\x02")
    assert s.encode(time(1, 2, 3, 4)) == (0, b"\xd7\x06\x01\x02\x03\x00\x00\x00\x04\x00")
    assert s.encode(timedelta(1, 2, 3)) == (
        0,
        b"\xc7\x0c\x07" + bytes.fromhex("000000010000000200000003"),
    )
    assert s.encode(Decimal("1.5")) == (0, b"\xc7\x03\x081.5")
    assert s.encode(uuid.UUID(int=1)) == (0, b"\xd8\x09" + bytes(15) + b"\x01")


@pytest.mark.parametrize(
    ("value", "type_name"),
    [(Color.RED, "Color"), (Name("x"), "Name"), ([1, {"k": Color.RED}], "Color")],
    ids=["int-enum", "str-subclass", "nested-int-enum"],
)
def test_msgpack_refuses_subclasses_of_builtins(value: object, type_name: str) -> None:
    """Subclasses of supported builtins raise SerializationError rather than lose their type."""
    with pytest.raises(SerializationError, match=f"type '{type_name}' with codec msgpack"):
        Serializer().encode(value)


@pytest.mark.parametrize(
    "value",
    [Foo(), [1, (2, {"k": Foo()})], {Foo(): 1}, {frozenset({Foo()})}],
    ids=["top-level", "nested-in-tuple", "dict-key", "inside-frozenset-in-set"],
)
def test_serialization_error_names_the_offending_type(value: object) -> None:
    """SerializationError names the unsupported type wherever it is nested, chained from a cause."""
    with pytest.raises(SerializationError) as info:
        Serializer().encode(value)
    assert str(info.value) == "cannot serialize value of type 'Foo' with codec msgpack"
    assert info.value.__cause__ is not None
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, MemoRedisError)


def test_circular_structure_raises_serialization_error() -> None:
    """A self-referencing list raises SerializationError naming the top-level type."""
    value: list[object] = []
    value.append(value)
    with pytest.raises(SerializationError, match="type 'list' with codec msgpack: "):
        Serializer().encode(value)


def test_circular_structure_through_a_tuple_raises_serialization_error() -> None:
    """A cycle that passes through a tuple (packed re-entrantly) raises SerializationError."""
    inner: list[object] = []
    value = (inner,)
    inner.append(value)
    with pytest.raises(SerializationError, match="type 'tuple' with codec msgpack"):
        Serializer().encode(value)


# --- property test -----------------------------------------------------------------------------

_offsets = st.builds(
    timezone,
    st.timedeltas(min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23)),
)
_timezones = st.none() | _offsets
_hashable_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**63 - 2, max_value=2**64 + 2),
    st.integers(min_value=2**64) | st.integers(max_value=-(2**63) - 1),
    st.floats(allow_nan=False),
    st.text(),
    st.binary(),
    st.dates(),
    st.datetimes(timezones=_timezones),
    st.times(timezones=_timezones),
    st.timedeltas(),
    st.decimals(allow_nan=False),
    st.uuids(),
)
_scalars = _hashable_scalars | st.floats() | st.decimals()
_hashable = _hashable_scalars | st.tuples(_hashable_scalars, _hashable_scalars)
_values = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=4).map(tuple),
        st.dictionaries(_hashable, children, max_size=4),
        st.sets(_hashable, max_size=4),
        st.frozensets(_hashable, max_size=4),
    ),
    max_leaves=20,
)


@pytest.mark.parametrize("threshold", [512, 0], ids=["default-threshold", "always-compress"])
@given(value=_values)
def test_msgpack_round_trip_property(threshold: int, value: object) -> None:
    """Any nesting of supported containers and scalars round-trips exactly, compressed or not."""
    assert_same(roundtrip(Serializer(compress_threshold=threshold), value), value)


# --- decode fast path --------------------------------------------------------------------------


def _python_functions_called(serializer: Serializer, flags: int, body: bytes) -> set[str]:
    called: set[str] = set()

    def profile(frame: FrameType, event: str, arg: object) -> None:
        if event == "call":
            called.add(frame.f_code.co_name)

    sys.setprofile(profile)
    try:
        serializer.decode(flags, body)
    finally:
        sys.setprofile(None)
    return called


def test_decode_of_plain_payloads_runs_no_python_hook() -> None:
    """Decoding dicts, lists, str and ints calls no Python code besides decode (no ext_hook)."""
    s = Serializer(compress_threshold=None)
    flags, body = s.encode({"a": [1, 2, "x" * 50], "b": {"c": None, "d": 1.5}, "e": b"raw"})
    assert _python_functions_called(s, flags, body) == {"decode"}


def test_decode_of_ext_payload_goes_through_ext_hook() -> None:
    """Positive control: a tuple payload is rebuilt by the Python ext_hook."""
    s = Serializer(compress_threshold=None)
    flags, body = s.encode({"a": (1, 2)})
    assert serialization.msgpack_codec.ext_hook.__name__ in _python_functions_called(s, flags, body)


# --- compression -------------------------------------------------------------------------------


def test_small_payload_is_not_compressed() -> None:
    """A payload shorter than compress_threshold is stored uncompressed."""
    flags, body = Serializer(compress_threshold=512).encode("a" * 100)
    assert flags == 0
    assert msgpack.unpackb(body) == "a" * 100


def test_large_compressible_payload_is_compressed() -> None:
    """A compressible payload at or above the threshold gets FLAG_ZLIB and a smaller body."""
    value = {"rows": [["alice", 1], ["bob", 2]] * 200}
    plain_len = len(Serializer(compress_threshold=None).encode(value)[1])
    flags, body = Serializer(compress_threshold=512).encode(value)
    assert flags == FLAG_ZLIB
    assert len(body) < plain_len
    assert Serializer().decode(flags, body) == value


def test_threshold_boundary_is_inclusive() -> None:
    """A payload exactly compress_threshold bytes long is compressed; one byte under is not."""
    value = "x" * 300
    length = len(Serializer(compress_threshold=None).encode(value)[1])
    assert Serializer(compress_threshold=length).encode(value)[0] == FLAG_ZLIB
    assert Serializer(compress_threshold=length + 1).encode(value)[0] == 0


def test_incompressible_payload_is_not_flagged() -> None:
    """When zlib does not make the body smaller, it is stored plain without FLAG_ZLIB."""
    value = random.Random(0).randbytes(4096)
    flags, body = Serializer(compress_threshold=0).encode(value)
    assert flags == 0
    assert Serializer().decode(flags, body) == value


def test_compress_level_zero_never_sets_the_flag() -> None:
    """Level 0 (stored blocks) is never smaller, so the flag is never set."""
    assert Serializer(compress_threshold=0, compress_level=0).encode("a" * 5000)[0] == 0


def test_compression_disabled_with_none() -> None:
    """compress_threshold=None never compresses, however large the payload."""
    flags, body = Serializer(compress_threshold=None).encode("a" * 100_000)
    assert flags == 0
    assert len(body) > 100_000


def test_compress_level_is_used() -> None:
    """compress_level is passed to zlib: the body equals zlib.compress at that level."""
    value = " ".join(str(i) for i in range(2000))
    plain = Serializer(compress_threshold=None).encode(value)[1]
    assert Serializer(compress_level=1).encode(value)[1] == zlib.compress(plain, 1)
    assert Serializer(compress_level=9).encode(value)[1] == zlib.compress(plain, 9)


def test_corrupt_zlib_body_raises_decode_error() -> None:
    """A FLAG_ZLIB body that is not valid zlib data raises DecodeError."""
    with pytest.raises(DecodeError, match="corrupt zlib body"):
        Serializer().decode(FLAG_ZLIB, b"definitely not zlib")


# --- flags and decode errors -------------------------------------------------------------------


def test_codec_ids_in_flags() -> None:
    """Flags carry the codec id: msgpack 0, json 1, pickle 2."""
    assert Serializer("msgpack").encode(1)[0] & FLAG_CODEC_MASK == 0
    assert Serializer("json").encode(1)[0] & FLAG_CODEC_MASK == 1
    assert Serializer("pickle").encode(1)[0] & FLAG_CODEC_MASK == 2
    assert (FLAG_CODEC_MASK, FLAG_ZLIB) == (0b011, 0b100)


def test_decode_ignores_flag_bits_it_does_not_own() -> None:
    """Bits 0x08 and above belong to the envelope module and do not affect decode."""
    s = Serializer(compress_threshold=0)
    flags, body = s.encode(["row"] * 100)
    assert flags & FLAG_ZLIB
    assert s.decode(flags | 0x08 | 0x10 | 0xF00, body) == ["row"] * 100


def test_unknown_codec_id_raises_decode_error() -> None:
    """Codec id 3 is unassigned and raises DecodeError."""
    with pytest.raises(DecodeError, match="unknown codec id 3"):
        Serializer().decode(3, b"\x01")


@pytest.mark.parametrize(
    ("flags", "body"),
    [
        (0, b"\xc1"),
        (0, b"\x92\x01"),
        (0, b"\x01\x02"),
        (0, b""),
        (0, b"\xa2\xff\xfe"),
        (0, msgpack.packb(msgpack.ExtType(42, b"x"))),
        (0, msgpack.packb(msgpack.ExtType(4, b"short"))),
        (0, msgpack.packb(msgpack.ExtType(5, b"\x07\xe8\x02\x1e"))),
        (0, msgpack.packb(msgpack.ExtType(8, b"not a number"))),
        (0, msgpack.packb(msgpack.ExtType(9, b"\x00" * 3))),
        (0, msgpack.packb(msgpack.ExtType(1, b"\xc1"))),
        (0, b"<html>not ours</html>"),
        (1, b"{not json"),
        (1, b"\xff\xfe\x00"),
    ],
    ids=[
        "never-used-byte",
        "truncated-array",
        "trailing-data",
        "empty",
        "invalid-utf8",
        "unknown-ext-code",
        "bad-datetime-length",
        "invalid-date",
        "bad-decimal",
        "bad-uuid-length",
        "corrupt-tuple-payload",
        "foreign-bytes",
        "corrupt-json",
        "json-bad-bytes",
    ],
)
def test_corrupt_body_raises_decode_error(flags: int, body: bytes) -> None:
    """Corrupt or foreign bytes raise DecodeError (a ValueError), never another exception."""
    with pytest.raises(DecodeError) as info:
        Serializer().decode(flags, body)
    assert isinstance(info.value, ValueError)


def test_decode_dispatches_on_flags_for_safe_codecs() -> None:
    """A json serializer reads msgpack-flagged bodies and vice versa (codec migration)."""
    packed = Serializer("msgpack").encode({"a": (1, 2)})
    as_json = Serializer("json").encode({"a": [1, 2]})
    assert Serializer("json").decode(*packed) == {"a": (1, 2)}
    assert Serializer("msgpack").decode(*as_json) == {"a": [1, 2]}


# --- pickle ------------------------------------------------------------------------------------

_UNPICKLE_SINK: list[str] = []


class _SideEffect:
    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (_UNPICKLE_SINK.append, ("unpickled",))


@pytest.mark.parametrize("codec", ["msgpack", "json"])
def test_pickle_payload_is_refused_without_pickle_codec(codec: str) -> None:
    """A serializer not configured for pickle refuses pickle-flagged bodies and never runs them."""
    _UNPICKLE_SINK.clear()
    flags, body = Serializer("pickle").encode(_SideEffect())
    assert flags & FLAG_CODEC_MASK == 2
    with pytest.raises(DecodeError, match="refusing to unpickle"):
        Serializer(codec).decode(flags, body)
    assert _UNPICKLE_SINK == []


def test_pickle_payload_refused_when_compressed_too() -> None:
    """Compression does not let a pickle body past a non-pickle serializer."""
    flags, body = Serializer("pickle", compress_threshold=0).encode(["x"] * 500)
    assert flags == 2 | FLAG_ZLIB
    with pytest.raises(DecodeError, match="refusing to unpickle"):
        Serializer().decode(flags, body)


def test_pickle_codec_round_trips_arbitrary_objects() -> None:
    """The opt-in pickle codec round-trips what the safe codecs cannot, at the highest protocol."""
    value = {"color": Color.RED, "when": datetime(2024, 1, 1), "names": [Name("a")]}
    flags, body = Serializer("pickle", compress_threshold=None).encode(value)
    assert body[:2] == bytes([0x80, pickle.HIGHEST_PROTOCOL])
    out = Serializer("pickle").decode(flags, body)
    assert out == value
    assert type(out["color"]) is Color


def test_pickle_codec_names_unpicklable_type() -> None:
    """An unpicklable value raises SerializationError naming its type, chained from the cause."""
    with pytest.raises(SerializationError, match="type 'function' with codec pickle") as info:
        Serializer("pickle").encode(lambda: None)
    assert isinstance(info.value.__cause__, (pickle.PicklingError, AttributeError, TypeError))


# --- JSON codec --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [None, True, 0, -(10**30), 1.25, "héllo", [1, "a", None], {"a": {"b": [1.5, False]}}],
    ids=["none", "bool", "int", "big-int", "float", "str", "list", "dict"],
)
def test_json_round_trip_of_native_types(value: object) -> None:
    """The JSON codec round-trips JSON-native values exactly."""
    assert_same(roundtrip(Serializer("json"), value), value)


def test_json_turns_tuples_into_lists() -> None:
    """JSON has no tuple: the JSON codec stores tuples as lists."""
    assert_same(roundtrip(Serializer("json"), {"a": (1, (2, 3))}), {"a": [1, [2, 3]]})


def test_json_allows_nan_and_infinity() -> None:
    """nan and inf are written like Python's json module writes them."""
    out = roundtrip(Serializer("json"), [math.nan, math.inf, -math.inf])
    assert math.isnan(out[0])
    assert out[1:] == [math.inf, -math.inf]


def test_json_codec_is_compact_utf8() -> None:
    """The JSON codec uses compact separators and raw UTF-8."""
    assert Serializer("json").encode({"a": [1, 2], "é": "✓"}) == (
        1,
        '{"a":[1,2],"é":"✓"}'.encode(),
    )


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        (b"raw", "bytes"),
        (datetime(2024, 1, 1), "datetime"),
        ({"a": [1, {2, 3}]}, "set"),
        (Foo(), "Foo"),
        (Decimal("1.5"), "Decimal"),
    ],
    ids=["bytes", "datetime", "nested-set", "user-class", "decimal"],
)
def test_json_rejects_non_json_types(value: object, type_name: str) -> None:
    """The JSON codec refuses non-JSON types with a message naming the type."""
    with pytest.raises(SerializationError) as info:
        Serializer("json").encode(value)
    assert str(info.value) == f"cannot serialize value of type '{type_name}' with codec json"


@pytest.mark.parametrize(
    ("value", "type_name"),
    [({1: "a"}, "int"), ({"ok": [{(1, 2): 3}]}, "tuple"), ({None: 1}, "NoneType")],
    ids=["int-key", "nested-tuple-key", "none-key"],
)
def test_json_rejects_non_str_keys(value: object, type_name: str) -> None:
    """The JSON codec refuses non-str dict keys instead of silently turning them into strings."""
    with pytest.raises(
        SerializationError, match=f"type '{type_name}' with codec json as a dict key"
    ):
        Serializer("json").encode(value)


# --- plain JSON (seed interop) -----------------------------------------------------------------


def test_plain_json_is_the_seed_format() -> None:
    """encode_plain_json writes exactly json.dumps(value) as UTF-8, with no header."""
    value = {"users": [[1, "alice", "é"], [2, "bob", None]], "total": 2.5}
    raw = Serializer().encode_plain_json(value)
    assert raw == json.dumps(value).encode("utf-8")
    assert raw.startswith(b'{"users": [[1, "alice"')


def test_plain_json_round_trip() -> None:
    """decode_plain_json reads what encode_plain_json wrote, from bytes or str."""
    value = {"a": [1, 2.5, None, True, "x"]}
    raw = Serializer().encode_plain_json(value)
    assert Serializer().decode_plain_json(raw) == value
    assert Serializer().decode_plain_json(raw.decode("utf-8")) == value


def test_plain_json_rejects_unsupported_values() -> None:
    """encode_plain_json raises SerializationError naming the type, like the JSON codec."""
    with pytest.raises(SerializationError, match="type 'bytes' with codec json"):
        Serializer().encode_plain_json({"a": b"x"})
    with pytest.raises(SerializationError, match="type 'int' with codec json as a dict key"):
        Serializer().encode_plain_json({1: "a"})


def test_plain_json_corrupt_raises_decode_error() -> None:
    """decode_plain_json raises DecodeError for bytes that are not JSON."""
    with pytest.raises(DecodeError, match="plain JSON"):
        Serializer().decode_plain_json(b"\x81\xa1a\x01")


# --- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"codec": "yaml"}, "codec must be one of 'msgpack', 'json', 'pickle', got 'yaml'"),
        ({"codec": "MSGPACK"}, "got 'MSGPACK'"),
        ({"codec": None}, "codec must be one of"),
        ({"compress_threshold": -1}, "compress_threshold must be >= 0 or None, got -1"),
        ({"compress_threshold": "512"}, "compress_threshold must be an int, got '512'"),
        ({"compress_threshold": True}, "compress_threshold must be an int, got True"),
        ({"compress_level": 10}, "compress_level must be between 0 and 9, got 10"),
        ({"compress_level": -1}, "compress_level must be between 0 and 9, got -1"),
        ({"compress_level": 6.0}, "compress_level must be an int, got 6.0"),
    ],
    ids=[
        "unknown-codec",
        "codec-case",
        "codec-none",
        "negative-threshold",
        "str-threshold",
        "bool-threshold",
        "level-too-high",
        "level-negative",
        "float-level",
    ],
)
def test_invalid_configuration_raises_config_error(kwargs: dict[str, Any], fragment: str) -> None:
    """Invalid constructor arguments raise ConfigError naming the parameter and the value."""
    with pytest.raises(ConfigError) as info:
        Serializer(**kwargs)
    assert fragment in str(info.value)
    assert isinstance(info.value, ValueError)


def test_codec_accepts_enum_or_string() -> None:
    """codec may be given as a Codec member or its string value; msgpack is the default."""
    assert Serializer().codec is Codec.MSGPACK
    assert Serializer(Codec.JSON).codec is Codec.JSON
    assert Serializer("pickle").codec is Codec.PICKLE
    assert [c.value for c in Codec] == ["msgpack", "json", "pickle"]


def test_serializer_is_immutable() -> None:
    """Serializer attributes cannot be set or deleted, and instances have no __dict__."""
    s = Serializer()
    with pytest.raises(AttributeError, match="immutable"):
        s.codec = Codec.PICKLE
    with pytest.raises(AttributeError, match="immutable"):
        del s.compress_threshold
    assert not hasattr(s, "__dict__")
    assert s.codec is Codec.MSGPACK


def test_repr() -> None:
    """repr shows the codec and threshold, and the level only when it is not the default."""
    assert repr(Serializer()) == "Serializer(codec='msgpack', compress_threshold=512)"
    assert (
        repr(Serializer("json", compress_threshold=None, compress_level=1))
        == "Serializer(codec='json', compress_threshold=None, compress_level=1)"
    )
