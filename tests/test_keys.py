"""Pure tests of memo_redis.keys: seed keys, binding, canonical encoding, templates, globs."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import fnmatch
import hashlib
import inspect
import json
import os
import random
import sqlite3
import struct
import subprocess
import sys
import uuid
import zoneinfo
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memo_redis.exceptions import ConfigError, MemoRedisError
from memo_redis.keys import (
    ArgumentBinder,
    KeyTemplate,
    build_cache_key,
    canonical_bytes,
    canonical_encode,
    fingerprint_of,
    glob_escape,
    glob_unescape,
    is_glob,
    literal_prefix,
    matches,
    seed_digest,
    segment_prefixes,
)


def seed_build_cache_key(table: str, columns: Iterable[str], where: Iterable[str]) -> str:
    """The seed's algorithm, copied verbatim from the original design."""
    params = {"table": table, "columns": sorted(columns), "where": sorted(where)}
    params_json = json.dumps(params, sort_keys=True)
    param_hash = hashlib.sha256(params_json.encode()).hexdigest()[:8]
    return f"sql:{table}:data:{param_hash}"


def cb(value: object) -> bytes:
    """Canonical bytes of a single argument named ``p``."""
    return canonical_bytes([("p", value)])


def digest(value: object) -> str:
    """Hex digest of a single argument named ``p``."""
    return fingerprint_of(cb(value))[0]


# --- seed SQL keys -------------------------------------------------------------------------


def test_seed_keys_pinned_to_literals() -> None:
    """Two seed keys are pinned literally: changing them orphans every cached SQL result."""
    assert build_cache_key("users", ["id", "name"], []) == "sql:users:data:2dd67780"
    assert build_cache_key("users", ["id", "name"], ["active=1"]) == "sql:users:data:cb668aec"


@pytest.mark.parametrize(
    ("table", "columns", "where"),
    [
        ("users", ["id", "username", "email"], []),
        ("users", ["email", "id"], ["id=1", "active=1"]),
        ("orders", [], []),
        ("caf\u00e9", ["n\u00e4me", "*"], ["x > 'y'"]),
    ],
    ids=["seed-example", "where", "empty", "non-ascii"],
)
def test_build_cache_key_matches_seed_code(
    table: str, columns: list[str], where: list[str]
) -> None:
    """build_cache_key equals the seed's own code for the same inputs."""
    assert build_cache_key(table, columns, where) == seed_build_cache_key(table, columns, where)
    assert seed_digest(table, columns, where) == seed_build_cache_key(table, columns, where)[-8:]


def test_seed_key_ignores_column_and_where_order() -> None:
    """Column and condition order do not change the seed key; tuples and generators work."""
    a = build_cache_key("t", ["b", "a"], ["y=2", "x=1"])
    assert a == build_cache_key("t", ("a", "b"), iter(["x=1", "y=2"]))


def test_seed_digest_length() -> None:
    """digest_length picks how many hex characters of the sha256 are kept."""
    full = seed_digest("users", ["id"], [], digest_length=64)
    assert len(full) == 64
    assert build_cache_key("users", ["id"], [], digest_length=12) == f"sql:users:data:{full[:12]}"
    assert seed_digest("users", ["id"], [], 1) == full[0]


@pytest.mark.parametrize("bad", [0, 65, -1, True, "8", 8.0], ids=repr)
def test_bad_digest_length_is_config_error(bad: Any) -> None:
    """digest_length outside 1..64 (or not an int) is a ConfigError naming it and the value."""
    with pytest.raises(ConfigError, match=r"digest_length .*" + repr(bad).replace(".", r"\.")):
        build_cache_key("users", ["id"], [], digest_length=bad)


def test_bare_string_columns_rejected() -> None:
    """A bare str for columns or where (a classic slip) is a TypeError naming the parameter."""
    with pytest.raises(TypeError, match="columns must be an iterable of str"):
        build_cache_key("users", "id", [])
    with pytest.raises(TypeError, match="where must be an iterable of str"):
        seed_digest("users", ["id"], "id=1")


# --- argument binding ----------------------------------------------------------------------


def f2(a: int, b: int = 2) -> None:
    """Two parameters, the second with a default."""


def test_equivalent_calls_give_identical_items() -> None:
    """f(1, 2), f(1, b=2), f(a=1, b=2), f(b=2, a=1) and f(1) bind to the same key items."""
    binder = ArgumentBinder(f2)
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
        ((1, 2), {}),
        ((1,), {"b": 2}),
        ((), {"a": 1, "b": 2}),
        ((), {"b": 2, "a": 1}),
        ((1,), {}),
        ((), {"a": 1}),
    ]
    results = [binder.key_items(binder.bind(args, kwargs)) for args, kwargs in calls]
    assert all(items == [("a", 1), ("b", 2)] for items in results)
    assert len({canonical_bytes(items) for items in results}) == 1


def test_fast_paths_skip_signature_bind(monkeypatch: pytest.MonkeyPatch) -> None:
    """Calls of a positional-or-keyword signature bind without inspect.Signature.bind."""
    binder = ArgumentBinder(f2)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("Signature.bind was called")

    monkeypatch.setattr(inspect.Signature, "bind", refuse)
    assert binder.bind((1, 5), {}) == {"a": 1, "b": 5}
    assert binder.bind((1,), {}) == {"a": 1, "b": 2}
    assert binder.bind((1,), {"b": 7}) == {"a": 1, "b": 7}
    assert binder.bind((), {"a": 3}) == {"a": 3, "b": 2}


def test_bind_applies_defaults_and_ignores_nothing() -> None:
    """bind returns every parameter, defaults applied, even those left out of the key."""

    def g(conn: object, table: str, limit: int = 10, *, order: str = "id") -> None: ...

    binder = ArgumentBinder(g, ignore=("conn",))
    bound = binder.bind(("C", "users"), {})
    assert bound == {"conn": "C", "table": "users", "limit": 10, "order": "id"}
    assert binder.key_items(bound) == [("table", "users"), ("limit", 10), ("order", "id")]


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((), {}, "missing a required argument: 'a'"),
        ((1, 2, 3), {}, "too many positional arguments"),
        ((1,), {"a": 1}, "multiple values for argument 'a'"),
        ((1,), {"zzz": 1}, "unexpected keyword argument 'zzz'"),
        ((), {"b": 1}, "missing a required argument: 'a'"),
    ],
    ids=["missing", "too-many", "duplicate", "unknown", "missing-with-kw"],
)
def test_bad_arguments_raise_type_error(
    args: tuple[Any, ...], kwargs: dict[str, Any], message: str
) -> None:
    """Bad arguments raise the TypeError a real call would, fast path or not."""
    binder = ArgumentBinder(f2)
    with pytest.raises(TypeError, match=message):
        binder.bind(args, kwargs)


def test_positional_only_parameters() -> None:
    """Positional-only parameters bind positionally and refuse keywords."""

    def p(a: int, /, b: int = 0) -> None: ...

    binder = ArgumentBinder(p)
    assert binder.bind((1,), {"b": 2}) == binder.bind((1, 2), {}) == {"a": 1, "b": 2}
    with pytest.raises(TypeError, match="positional only"):
        binder.bind((), {"a": 1})


def test_var_args_and_kwargs() -> None:
    """*args is a tuple and **kwargs an order-free dict in the key."""

    def g(a: int, *rest: int, flag: bool = False, **extra: int) -> None: ...

    binder = ArgumentBinder(g)
    assert binder.parameters == ("a", "rest", "flag", "extra")
    one = binder.key_items(binder.bind((1, 2, 3), {"x": 1, "y": 2}))
    two = binder.key_items(binder.bind((1, 2, 3), {"y": 2, "x": 1}))
    assert one == [("a", 1), ("rest", (2, 3)), ("flag", False), ("extra", {"x": 1, "y": 2})]
    assert canonical_bytes(one) == canonical_bytes(two)
    nested = binder.key_items(binder.bind((1, (2, 3)), {"x": 1, "y": 2}))
    assert canonical_bytes(nested) != canonical_bytes(one)
    flagged = binder.key_items(binder.bind((1, 2, 3), {"x": 1, "y": 2, "flag": True}))
    assert canonical_bytes(flagged) != canonical_bytes(one)


def test_skip_first_drops_self() -> None:
    """skip_first leaves self out of the key, so two instances share entries."""

    class Repo:
        def find(self, table: str, limit: int = 5) -> None: ...

    binder = ArgumentBinder(Repo.find, skip_first=True)
    a = binder.key_items(binder.bind((Repo(), "users"), {}))
    b = binder.key_items(binder.bind((Repo(),), {"table": "users"}))
    assert a == b == [("table", "users"), ("limit", 5)]
    assert "self" in binder.bind((Repo(), "users"), {})


def test_skip_first_needs_a_positional_parameter() -> None:
    """skip_first on a function without a leading positional parameter is a ConfigError."""

    def kw_only(*, a: int) -> None: ...

    with pytest.raises(ConfigError, match="skip_first=True needs a first positional parameter"):
        ArgumentBinder(kw_only, skip_first=True)


def test_unknown_ignore_name_is_config_error() -> None:
    """ignore naming a missing parameter fails at construction, naming it and the function."""
    with pytest.raises(ConfigError) as info:
        ArgumentBinder(f2, ignore=("a", "x"))
    assert str(info.value) == f"ignore names 'x', which is not a parameter of {__name__}.f2"
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, MemoRedisError)


def test_ignore_as_bare_string_is_config_error() -> None:
    """ignore='conn' (a str, not a tuple) is a ConfigError suggesting ignore=('conn',)."""
    with pytest.raises(ConfigError, match=r"ignore=\('a',\)"):
        ArgumentBinder(f2, ignore="a")


# --- canonical encoding: identity ----------------------------------------------------------


def test_canonical_bytes_pinned() -> None:
    """The canonical bytes of a typical call are pinned: a change orphans decorator keys."""
    items = [("table", "users"), ("columns", ["id", "name"]), ("where", ())]
    assert canonical_bytes(items).hex() == (
        "96a57461626c65a57573657273a7636f6c756d6e7392a26964a46e616d65a5776865726591c70001"
    )


class PinColor(enum.Enum):
    """An Enum with a fixed module name, for the pinned digest."""

    __module__ = "app.models"
    RED = 1


@dataclasses.dataclass
class PinPoint:
    """A dataclass with a fixed module name, for the pinned digest."""

    x: int
    y: list[int]


class PinTenant:
    """A __cache_key__ object with a fixed module name, for the pinned digest."""

    __module__ = "app.models"

    def __cache_key__(self) -> str:
        return "acme"


# After decoration: dataclass() resolves annotations through the real module.
PinPoint.__module__ = "app.models"


def test_digest_of_every_type_pinned() -> None:
    """A digest over every supported type is pinned: a change orphans decorator keys."""
    aware = dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    items = [
        ("a", [None, True, 1, -1.5, "s", b"b", 2**70, (1,), {"k": {1, 2}}, frozenset({"x"})]),
        (
            "b",
            (
                dt.datetime(2024, 5, 1, 12, 30),
                aware,
                dt.date(2024, 5, 1),
                dt.time(8, 15),
                dt.timedelta(days=1, seconds=5),
                decimal.Decimal("1.50"),
                uuid.UUID(int=1),
                PinColor.RED,
                PinPoint(1, [2]),
                PinTenant(),
                bytearray(b"ba"),
            ),
        ),
    ]
    assert fingerprint_of(canonical_bytes(items))[0] == (
        "692d22a70b4022ab0dd686ad5f0f135f0bc30ac2fdd4224efbfff04c25353092"
    )


def test_type_identity_of_scalars() -> None:
    """True, 1, 1.0, "1" and b"1" (and the falsy 0-likes) all give different digests."""
    assert len({digest(v) for v in (True, 1, 1.0, "1", b"1")}) == 5
    assert len({digest(v) for v in (False, 0, 0.0, -0.0, "", b"", None, bytearray())}) == 8


def test_list_and_tuple_differ() -> None:
    """List and tuple are different types; ordering matters in both."""
    assert cb([1, 2]) != cb((1, 2))
    assert cb([1, 2]) != cb([2, 1])
    assert cb((1, 2)) != cb((2, 1))
    assert len({cb(v) for v in ([[1, 2]], [(1, 2)], ((1, 2),), ([1, 2],), [1, 2], [])}) == 6


def test_dict_and_set_order_never_matters() -> None:
    """Insertion order of dicts and sets does not change the bytes; contents do."""
    assert cb({"a": 1, "b": [2]}) == cb({"b": [2], "a": 1})
    assert cb({"a": 1, "b": 2}) != cb({"a": 2, "b": 1})
    assert cb({3, 1, 2}) == cb({2, 3, 1}) == cb(set(range(1, 4)))
    assert cb(frozenset({"x", "y"})) == cb(frozenset(["y", "x"]))
    assert cb(OrderedDict([("a", 1), ("b", 2)])) == cb({"b": 2, "a": 1})
    assert cb({1, 2}) != cb(frozenset({1, 2}))
    assert cb({}) != cb(set()) != cb(frozenset())
    assert cb({"a": 1}) != cb([("a", 1)])


def test_big_ints() -> None:
    """Ints of any size encode, stay distinct at the 64-bit edges, and differ by sign."""
    values = [2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 10**40, -(10**40)]
    assert len({cb(v) for v in values}) == len(values)
    assert cb(10**40) == cb(int("1" + "0" * 40))


def test_datetimes() -> None:
    """Naive and aware datetimes differ; so do zones with the same instant, and fold."""
    naive = dt.datetime(2024, 5, 1, 12, 30)
    utc = naive.replace(tzinfo=dt.timezone.utc)
    plus2 = dt.datetime(2024, 5, 1, 14, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert utc == plus2
    assert len({cb(naive), cb(utc), cb(plus2), cb(naive.replace(fold=1))}) == 4
    assert cb(naive) == cb(dt.datetime(2024, 5, 1, 12, 30))
    assert cb(naive) != cb(naive.date())
    assert cb(naive.date()) == cb(dt.date(2024, 5, 1))


def test_zoneinfo_datetimes() -> None:
    """ZoneInfo-aware datetimes are keyed by the zone name and the wall time."""
    try:
        paris = zoneinfo.ZoneInfo("Europe/Paris")
        berlin = zoneinfo.ZoneInfo("Europe/Berlin")
    except zoneinfo.ZoneInfoNotFoundError:
        pytest.skip("no time zone database")
    a = dt.datetime(2024, 1, 1, 9, tzinfo=paris)
    assert cb(a) == cb(dt.datetime(2024, 1, 1, 9, tzinfo=zoneinfo.ZoneInfo("Europe/Paris")))
    assert cb(a) != cb(a.replace(tzinfo=berlin))


def test_time_timedelta_decimal_uuid() -> None:
    """time, timedelta, Decimal and UUID encode by value, distinct from look-alikes."""
    t = dt.time(8, 15, 30, 5)
    assert cb(t) == cb(dt.time(8, 15, 30, 5))
    assert cb(t) != cb(t.replace(tzinfo=dt.timezone.utc))
    assert cb(dt.timedelta(days=1)) == cb(dt.timedelta(hours=24))
    assert cb(dt.timedelta(days=1)) != cb(dt.timedelta(days=-1))
    assert cb(dt.timedelta.max) != cb(dt.timedelta.min)
    assert cb(decimal.Decimal("1.5")) == cb(decimal.Decimal((0, (1, 5), -1)))
    assert cb(decimal.Decimal("1.0")) != cb(decimal.Decimal("1.00"))
    assert cb(decimal.Decimal("1.5")) != cb(1.5) != cb("1.5")
    u = uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert cb(u) == cb(uuid.UUID(str(u)))
    assert cb(u) != cb(u.bytes) != cb(str(u))


class Color(enum.Enum):
    """A plain Enum for key tests."""

    RED = 1
    BLUE = 2


class Level(enum.IntEnum):
    """An IntEnum: must be keyed as an Enum, not as its int value."""

    LOW = 1


class Mode(str, enum.Enum):
    """A str-mixin Enum: must be keyed as an Enum, not as its str value."""

    FAST = "fast"


def test_enum_members() -> None:
    """Enum members (including IntEnum / str mixins) are keyed by class and name."""
    assert cb(Color.RED) == cb(Color(1))
    assert cb(Color.RED) != cb(Color.BLUE)
    assert cb(Level.LOW) != cb(1)
    assert cb(Mode.FAST) != cb("fast")
    encoded = canonical_encode(Level.LOW, "p")
    assert isinstance(encoded, tuple)
    assert encoded[1:] == (f"{__name__}.Level", "LOW")


@dataclasses.dataclass(frozen=True)
class Point:
    """A dataclass for key tests."""

    x: int
    y: list[int] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Other:
    """A dataclass with the same fields as Point."""

    x: int
    y: list[int] = dataclasses.field(default_factory=list)


def test_dataclasses() -> None:
    """Dataclass instances are keyed by class and field values in definition order."""
    assert cb(Point(1, [2])) == cb(Point(x=1, y=[2]))
    assert cb(Point(1, [2])) != cb(Point(1, [3]))
    assert cb(Point(1, [2])) != cb(Other(1, [2]))
    assert cb([Point(1)]) != cb([(1, [])])


class Tenant:
    """An object that opts in to keys with __cache_key__."""

    def __init__(self, name: str, conn: object) -> None:
        self.name = name
        self.conn = conn

    def __cache_key__(self) -> tuple[str, ...]:
        return ("tenant", self.name)


def test_cache_key_protocol() -> None:
    """__cache_key__() decides the key; the class name is part of it."""
    assert cb(Tenant("acme", object())) == cb(Tenant("acme", object()))
    assert cb(Tenant("acme", None)) != cb(Tenant("other", None))
    assert cb(Tenant("acme", None)) != cb(("tenant", "acme"))


def test_cache_key_returning_self_is_rejected() -> None:
    """A __cache_key__ that returns the object itself is a TypeError, not a recursion."""

    class Loop:
        def __cache_key__(self) -> object:
            return self

    with pytest.raises(TypeError, match=r"__cache_key__\(\) returned the object itself"):
        cb(Loop())


def test_builtin_subclasses_encode_as_base() -> None:
    """Subclasses of str, int, float, bytes, list and dict key like their base values."""

    class S(str):
        pass

    class I(int):  # noqa: E742 - a one-letter subclass name reads fine in this table
        pass

    class F(float):
        pass

    class B(bytes):
        pass

    class L(list[int]):
        pass

    assert cb(S("a")) == cb("a")
    assert cb(I(5)) == cb(5)
    assert cb(I(2**70)) == cb(2**70)
    assert cb(F(1.5)) == cb(1.5)
    assert cb(B(b"x")) == cb(b"x")
    assert cb(L([1])) == cb([1])


def test_lone_surrogates_encode() -> None:
    """Strings with lone surrogates encode, distinct from each other and from valid text."""
    assert cb("\ud800") != cb("\udc00")
    assert cb("\ud800") != cb("")
    assert cb(["a", "\ud800"]) == cb(["a", "\ud800"])


# --- canonical encoding: refusals ----------------------------------------------------------


def test_unsupported_type_names_parameter_and_type() -> None:
    """An unsupported argument raises TypeError naming the parameter, its type and the fixes."""
    conn = sqlite3.connect(":memory:")
    try:
        with pytest.raises(TypeError) as info:
            canonical_bytes([("table", "users"), ("conn", conn)])
    finally:
        conn.close()
    assert str(info.value) == (
        "cannot derive a cache key from parameter 'conn' of type 'sqlite3.Connection'; "
        "ignore it (ignore=('conn',)), give it a __cache_key__() method, or pass key="
    )


@pytest.mark.parametrize(
    "value",
    [object(), lambda: 1, [1, {"k": object()}], {object()}, Point(1, [object()])],  # type: ignore[list-item]
    ids=["object", "lambda", "nested-in-list", "in-set", "in-dataclass"],
)
def test_memory_address_objects_rejected(value: object) -> None:
    """Objects whose repr holds a memory address are refused, never keyed by repr()."""
    with pytest.raises(TypeError, match="cannot derive a cache key from parameter 'p'") as info:
        cb(value)
    assert "0x" not in str(info.value)


def test_classes_and_functions_rejected() -> None:
    """Classes are not keyed implicitly (their qualnames can collide); a clear error instead."""
    with pytest.raises(TypeError, match="of type 'type'"):
        cb(Tenant)


def test_fingerprint_of() -> None:
    """fingerprint_of returns sha256's hex digest and the digest's first 16 raw bytes."""
    data = b"memo"
    hexdigest, raw = fingerprint_of(data)
    assert hexdigest == hashlib.sha256(data).hexdigest()
    assert raw == hashlib.sha256(data).digest()[:16]


# --- canonical encoding: properties --------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.integers()
    | st.integers(min_value=2**62, max_value=2**66)
    | st.sampled_from([0.0, -0.0, 1.0, float("inf")])
    | st.floats(allow_nan=False)
    | st.text("ab\u00e9", max_size=2)
    | st.binary(max_size=2)
)
hashables = st.recursive(
    scalars, lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=3), max_leaves=5
)
values = st.recursive(
    scalars | hashables,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(hashables, inner, max_size=3)
        | st.sets(hashables, max_size=3)
        | st.frozensets(hashables, max_size=3)
    ),
    max_leaves=10,
)


def ref(value: Any) -> Any:
    """A reference identity: type tags everywhere, floats by bits, unordered parts sorted."""
    cls = type(value)
    if value is None or cls in (bool, int, str, bytes):
        return (cls.__name__, value)
    if cls is float:
        return ("float", struct.pack(">d", value))
    if cls in (list, tuple):
        return (cls.__name__, tuple(ref(v) for v in value))
    if cls is dict:
        return ("dict", tuple(sorted((ref(k), ref(v)) for k, v in value.items())))
    if cls in (set, frozenset):
        return (cls.__name__, tuple(sorted(ref(v) for v in value)))
    raise AssertionError(cls)


def reordered(value: Any, rnd: random.Random) -> Any:
    """A deep copy of ``value`` whose dicts and sets are rebuilt in a shuffled order."""
    cls = type(value)
    if cls is list:
        return [reordered(v, rnd) for v in value]
    if cls is tuple:
        return tuple(reordered(v, rnd) for v in value)
    if cls is dict:
        entries = list(value.items())
        rnd.shuffle(entries)
        return {reordered(k, rnd): reordered(v, rnd) for k, v in entries}
    if cls in (set, frozenset):
        elements = [reordered(v, rnd) for v in value]
        rnd.shuffle(elements)
        return cls(elements)
    return value


@settings(max_examples=300)
@given(values, st.randoms(use_true_random=False))
def test_equal_values_give_equal_bytes(value: Any, rnd: random.Random) -> None:
    """A value and a reordered deep copy of it give identical canonical bytes."""
    assert cb(value) == cb(reordered(value, rnd))


@settings(max_examples=500)
@given(values, values)
def test_different_values_give_different_bytes(a: Any, b: Any) -> None:
    """Canonical bytes are equal exactly when the type-tagged reference identities are."""
    assert (cb(a) == cb(b)) == (ref(a) == ref(b))


def twin(value: Any, rnd: random.Random, hashable: bool = False) -> Any:
    """A copy of ``value`` in which random nodes are swapped for a look-alike of another type.

    Look-alikes: list/tuple, set/frozenset, dict/list of pairs, bool/int/float, str/bytes,
    None/False. ``hashable`` keeps dict keys and set elements hashable.
    """
    swap = rnd.random() < 0.3
    cls = type(value)
    if cls is dict:
        if swap:
            return [(k, twin(v, rnd)) for k, v in value.items()]
        return {twin(k, rnd, True): twin(v, rnd) for k, v in value.items()}
    if cls in (list, tuple):
        items = [twin(v, rnd, hashable or cls is tuple) for v in value]
        if not swap:
            return cls(items)
        if cls is list:
            return tuple(items)
        if hashable:
            try:
                return frozenset(items)
            except TypeError:  # the tuple holds a list: not hashable in any form
                return items
        return items
    if cls in (set, frozenset):
        items = [twin(v, rnd, True) for v in value]
        if not swap:
            return cls(items)
        return frozenset(items) if cls is set else (tuple(items) if hashable else set(items))
    if not swap:
        return value
    if value is None:
        return False
    if cls is bool:
        return int(value)
    if cls is int:
        return float(value) if abs(value) < 2**53 else str(value)
    if cls is float:
        return int(value) if value.is_integer() else -value
    if cls is str:
        return value.encode()
    return value.decode("latin-1")


@settings(max_examples=500)
@given(values, st.randoms(use_true_random=False))
def test_look_alike_values_give_different_bytes(value: Any, rnd: random.Random) -> None:
    """Swapping any node for a same-looking value of another type changes the bytes."""
    other = twin(value, rnd)
    assert (cb(value) == cb(other)) == (ref(value) == ref(other))


@settings(max_examples=100)
@given(values, values)
def test_call_forms_give_equal_bytes(a: Any, b: Any) -> None:
    """Positional, keyword and default-filled calls with equal values give equal bytes."""

    def g(x: Any, y: Any = None, *rest: Any, **extra: Any) -> None: ...

    binder = ArgumentBinder(g)
    first = canonical_bytes(binder.key_items(binder.bind((a, b), {})))
    assert first == canonical_bytes(binder.key_items(binder.bind((a,), {"y": b})))
    assert first == canonical_bytes(binder.key_items(binder.bind((), {"y": b, "x": a})))
    if b is None:
        assert first == canonical_bytes(binder.key_items(binder.bind((a,), {})))


HASHSEED_SCRIPT = """
import sys
from memo_redis.keys import canonical_bytes
words = [f"w{i}" for i in range(60)]
value = {"set": set(words), "frozen": frozenset(words[::-1]),
         "dict": {w: i for i, w in enumerate(words)}, "nested": [{w: {w}} for w in words[:5]]}
print(",".join(list(set(words))[:10]))
print(canonical_bytes([("p", value)]).hex())
"""


def test_bytes_identical_across_hash_seeds() -> None:
    """Processes with different PYTHONHASHSEED iterate sets differently but agree on bytes."""
    outputs = []
    for seed in ("1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run(
            [sys.executable, "-c", HASHSEED_SCRIPT],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        outputs.append(result.stdout.split())
    (order1, bytes1), (order2, bytes2) = outputs
    assert order1 != order2, "the seeds should change set iteration order"
    assert bytes1 == bytes2


# --- key templates -------------------------------------------------------------------------

PARAMS = ("table", "limit", "mode", "flag")


def test_template_render() -> None:
    """Placeholders are filled from bound arguments; fields and is_static are exposed."""
    t = KeyTemplate("sql:{table}:{limit}:{table}", PARAMS, owner="app.fetch")
    assert t.fields == ("table", "limit")
    assert not t.is_static
    assert t.render({"table": "users", "limit": 10}, escape=False) == "sql:users:10:users"


def test_template_escape_only_escapes_values() -> None:
    """escape=True glob-escapes the values but keeps the template's own wildcards."""
    t = KeyTemplate("sql:{table}:*", PARAMS, owner="app.fetch")
    assert t.render({"table": "a[b]*"}, escape=True) == "sql:a\\[b\\]\\*:*"
    assert t.render({"table": "a[b]*"}, escape=False) == "sql:a[b]*:*"


def test_static_template_and_brace_escapes() -> None:
    """A template without placeholders is static; {{ and }} are literal braces."""
    t = KeyTemplate("sql:{{literal}}:users", PARAMS, owner="app.fetch")
    assert t.is_static
    assert t.fields == ()
    assert t.render({}, escape=True) == "sql:{literal}:users"


def test_template_renders_enums_and_int_subclasses() -> None:
    """Enum members render as their value; IntEnum and str-mixin Enums too."""
    t = KeyTemplate("{mode}:{limit}", PARAMS, owner="app.fetch")
    assert t.render({"mode": Mode.FAST, "limit": Level.LOW}, escape=False) == "fast:1"
    assert t.render({"mode": Color.BLUE, "limit": -3}, escape=False) == "2:-3"


@pytest.mark.parametrize(
    ("value", "type_name"),
    [(None, "NoneType"), (True, "bool"), (1.5, "float"), (b"x", "bytes"), ((1,), "tuple")],
    ids=["none", "bool", "float", "bytes", "tuple"],
)
def test_template_rejects_other_types(value: object, type_name: str) -> None:
    """Values other than str, int or Enum raise TypeError naming the placeholder and type."""
    t = KeyTemplate("sql:{flag}", PARAMS, owner="app.fetch")
    with pytest.raises(TypeError, match=r"placeholder \{flag\} got a value of type '" + type_name):
        t.render({"flag": value}, escape=False)


def test_template_unknown_placeholder_is_config_error() -> None:
    """A placeholder naming no parameter fails at construction, naming it, template and owner."""
    with pytest.raises(ConfigError) as info:
        KeyTemplate("sql:{tabel}", PARAMS, owner="app.fetch")
    message = str(info.value)
    assert "{tabel}" in message
    assert "'sql:{tabel}'" in message
    assert "app.fetch" in message


@pytest.mark.parametrize(
    "template",
    ["{table.name}", "{table[0]}", "{table!r}", "{table:>5}", "{}", "{0}", "{table", "x}"],
    ids=["attribute", "index", "conversion", "spec", "positional", "number", "open", "close"],
)
def test_template_bad_syntax_is_config_error(template: str) -> None:
    """Attribute, index, conversion, format spec, positional and unbalanced braces fail."""
    with pytest.raises(ConfigError, match=r"app\.fetch"):
        KeyTemplate(template, PARAMS, owner="app.fetch")


# --- glob helpers --------------------------------------------------------------------------


def test_glob_escape_and_unescape() -> None:
    """Every glob special character is escaped, and unescape reverses it."""
    assert glob_escape("users*") == "users\\*"
    assert glob_escape("a[b]?\\") == "a\\[b\\]\\?\\\\"
    assert glob_escape("plain:text") == "plain:text"
    assert glob_unescape("a\\[b\\]\\?\\\\") == "a[b]?\\"
    assert glob_unescape("tail\\") == "tail\\"


def test_is_glob() -> None:
    """Only unescaped * ? [ make a pattern a glob."""
    assert is_glob("sql:*")
    assert is_glob("a?b")
    assert is_glob("a[bc]")
    assert is_glob("a\\\\*")
    assert not is_glob("sql:users")
    assert not is_glob("a\\*b\\?\\[")
    assert not is_glob("a]b")


@pytest.mark.parametrize(
    ("pattern", "prefix"),
    [
        ("sql:users:*", "sql:users"),
        ("sql:us*", "sql"),
        ("sql:users:data:*", "sql:users:data"),
        ("*", ""),
        ("a\\*b:*", "a*b"),
        ("sql:users", "sql:users"),
        ("sql:users:[ab]:x", "sql:users"),
        ("a\\:b:?", "a:b"),
        ("", ""),
    ],
)
def test_literal_prefix(pattern: str, prefix: str) -> None:
    """literal_prefix keeps whole unescaped segments before the first wildcard."""
    assert literal_prefix(pattern) == prefix


@pytest.mark.parametrize(
    ("key", "prefixes"),
    [
        ("sql:users:data:ab12", ("", "sql", "sql:users", "sql:users:data")),
        ("plain", ("",)),
        ("", ("",)),
        ("a::b", ("", "a", "a:")),
        (":a", ("",)),
    ],
)
def test_segment_prefixes(key: str, prefixes: tuple[str, ...]) -> None:
    """segment_prefixes lists "" and every proper prefix ending before a colon."""
    assert segment_prefixes(key) == prefixes


@pytest.mark.parametrize(
    ("pattern", "key", "expected"),
    [
        ("sql:users:*", "sql:users:data:1", True),
        ("sql:users:*", "sql:users2:data:1", False),
        ("sql:users*", "sql:users2", True),
        ("sql:users\\*:*", "sql:users*:x", True),
        ("sql:users\\*:*", "sql:usersX:x", False),
        ("a?c", "abc", True),
        ("a?c", "ac", False),
        ("a[bc]d", "acd", True),
        ("a[^bc]d", "acd", False),
        ("a[^bc]d", "aed", True),
        ("a[a-c]", "ab", True),
        ("a[c-a]", "ab", True),
        ("a[\\]]", "a]", True),
        ("a\\[b\\]", "a[b]", True),
        ("a\\[b\\]", "ab", False),
        ("[]", "a", False),
        ("[^]", "a", True),
        ("a[bc", "ac", True),
        ("a\\", "a\\", True),
        ("*", "", True),
        ("", "", True),
        ("?", "\u00e9", False),
        ("??", "\u00e9", True),
        ("a*b*c", "a:b:c", True),
        ("a\nb", "a\nb", True),
        ("?", "\n", True),
    ],
)
def test_matches_redis_semantics(pattern: str, key: str, expected: bool) -> None:
    """matches follows Redis glob rules: escapes, classes, negation, ranges, bytes."""
    assert matches(pattern, key) is expected


def test_matches_differs_from_fnmatch() -> None:
    """fnmatch has no backslash escapes and negates with [!...]: matches does not."""
    assert fnmatch.fnmatchcase("a\\b", "a\\*")
    assert not matches("a\\*", "a\\b")
    assert matches("a\\*", "a*")
    assert fnmatch.fnmatchcase("ab", "a[!c]")
    assert not matches("a[!c]", "ab")


def test_matches_accepts_bytes() -> None:
    """Patterns and keys may be bytes, as redis-py returns them without decoding."""
    assert matches(b"sql:*", b"sql:users")
    assert matches("sql:*", b"sql:\xff")


glob_text = st.text(alphabet="ab:*?[]^-\\\u00e9", max_size=8)


@given(glob_text)
def test_escaped_text_matches_only_itself(text: str) -> None:
    """glob_escape gives a non-glob pattern that matches the text and unescapes back to it."""
    pattern = glob_escape(text)
    assert matches(pattern, text)
    assert not is_glob(pattern)
    assert glob_unescape(pattern) == text
    assert literal_prefix(pattern) == text
    assert not matches(pattern, text + "a")


@settings(max_examples=500)
@given(glob_text, st.text(alphabet="ab:*?[]\\", max_size=8))
def test_literal_prefix_is_a_segment_prefix_of_every_match(pattern: str, key: str) -> None:
    """Any key a pattern matches has the pattern's literal_prefix among its segment prefixes."""
    if matches(pattern, key):
        assert literal_prefix(pattern) in (*segment_prefixes(key), key)
