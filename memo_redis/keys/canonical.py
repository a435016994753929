"""Canonical argument encoding: the deterministic bytes a decorator key digests.

Decorator keys digest the arguments through :func:`canonical_bytes`, a deterministic msgpack
encoding in which a value's type is part of its identity and nothing depends on
``PYTHONHASHSEED``, ``id()`` or ``hash()``. ``None``, ``bool``, ``float``, ``str``, ``bytes``
and 64-bit ``int`` are left to msgpack, which already tells them apart. ``list`` is a plain
msgpack array. Every other supported value becomes either an array headed by a *marker*,
``ExtType(code, b"")``, or an ExtType carrying a payload. The codes are part of the key format:

========  =====================  ========================================================
code      form                   content
========  =====================  ========================================================
1         marker array           ``tuple``: the encoded elements
2         marker array           naive ``datetime``: year, month, day, hour, minute,
                                 second, microsecond, fold
3         marker array           aware ``datetime``: the naive fields, then the zone
4         marker array           ``date``: year, month, day
5         marker array           naive ``time``: hour, minute, second, microsecond, fold
6         marker array           aware ``time``: the naive fields, then the zone
7         marker array           ``timedelta``: days, seconds, microseconds
8         marker array           ``Decimal``: ``str(value)`` (so ``1.0`` and ``1.00`` differ)
9         marker array           ``Enum`` member: ``"module.QualName"``, member name
10        marker array           dataclass instance: ``"module.QualName"``, then name and
                                 encoded value of each field in definition order
11        marker array           object with ``__cache_key__()``: ``"module.QualName"``,
                                 the encoded result
32        payload                ``int`` outside the 64-bit range: minimal big-endian
                                 two's complement
33        payload                ``UUID``: its 16 bytes
34        payload                ``bytearray``: its bytes
35        payload                ``dict``: packed key and value of each entry, concatenated
                                 in sorted order of the packed bytes
36        payload                ``set``: packed elements, concatenated in sorted order
37        payload                ``frozenset``: as ``set``
========  =====================  ========================================================

The zone of an aware value is ``("timezone", offset_us, name)`` for ``datetime.timezone``,
``("zoneinfo", key)`` for ``zoneinfo.ZoneInfo`` and otherwise ``("module.QualName",
offset_us, tzname, dst_us)``. Subclasses of the builtin scalars and containers encode as their
base type; ``Enum`` is checked first, so ``IntEnum`` and ``StrEnum`` members are Enum members.
Anything else raises ``TypeError``; an arbitrary object is never reduced to ``repr()`` or
``str()``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import hashlib
import threading
import uuid
import zoneinfo
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

import msgpack

from memo_redis.serialization import MAX_DEPTH

__all__ = [
    "MAX_DEPTH",
    "canonical_bytes",
    "canonical_encode",
    "fingerprint_of",
    "type_name",
]

_TUPLE = msgpack.ExtType(1, b"")
_DATETIME = msgpack.ExtType(2, b"")
_AWARE_DATETIME = msgpack.ExtType(3, b"")
_DATE = msgpack.ExtType(4, b"")
_TIME = msgpack.ExtType(5, b"")
_AWARE_TIME = msgpack.ExtType(6, b"")
_TIMEDELTA = msgpack.ExtType(7, b"")
_DECIMAL = msgpack.ExtType(8, b"")
_ENUM = msgpack.ExtType(9, b"")
_DATACLASS = msgpack.ExtType(10, b"")
_CACHE_KEY = msgpack.ExtType(11, b"")

_BIG_INT_CODE = 32
_UUID_CODE = 33
_BYTEARRAY_CODE = 34
_DICT_CODE = 35
_SET_CODE = 36
_FROZENSET_CODE = 37

_EMPTY_TUPLE = (_TUPLE,)
_EMPTY_DICT = msgpack.ExtType(_DICT_CODE, b"")
_EMPTY_SET = msgpack.ExtType(_SET_CODE, b"")
_EMPTY_FROZENSET = msgpack.ExtType(_FROZENSET_CODE, b"")

# Types msgpack already encodes unambiguously; int is absent because of its 64-bit limit.
_NATIVE: frozenset[type] = frozenset({str, bytes, bool, float, type(None)})
_INT_MIN = -(1 << 63)
_INT_MAX = (1 << 64) - 1


class _PackerLocal(threading.local):
    # A Packer is not safe to share between threads; building one per call costs more than
    # packing a typical argument list.
    def __init__(self) -> None:
        self.pack: Callable[[object], bytes] = msgpack.Packer().pack


_packers = _PackerLocal()


def _pack(obj: object) -> bytes:
    try:
        return _packers.pack(obj)
    except UnicodeEncodeError:
        # Lone surrogates: encode them rather than refuse; valid text packs identically.
        packed: bytes = msgpack.packb(obj, unicode_errors="surrogatepass")
        return packed


def _type_id(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def type_name(cls: type) -> str:
    """A type's name in error messages: ``int`` for a builtin, ``module.QualName`` otherwise."""
    return cls.__qualname__ if cls.__module__ == "builtins" else _type_id(cls)


def _unsupported(value: object, param: str) -> TypeError:
    return TypeError(
        f"cannot derive a cache key from parameter {param!r} of type "
        f"{type_name(type(value))!r}; ignore it (ignore=({param!r},)), give it a "
        f"__cache_key__() method, or pass key="
    )


class _TooDeep(Exception):
    """Raised where a container is nested more than MAX_DEPTH levels deep; the entry point turns
    it into a TypeError naming the parameter (and whether the value contains itself)."""


def _children(node: object) -> list[object]:
    """What the canonical encoding descends into (for the recursion check of an error path)."""
    if isinstance(node, (str, bytes, bytearray, int, float, enum.Enum)) or node is None:
        return []
    if isinstance(node, dict):
        return [*node.keys(), *node.values()]
    if isinstance(node, (list, tuple, set, frozenset)):
        return list(node)
    hook = getattr(type(node), "__cache_key__", None)
    if hook is not None:
        try:
            return [hook(node)]
        except Exception:
            return []
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        return [getattr(node, field.name) for field in dataclasses.fields(node)]
    return []


def _contains_itself(value: object) -> bool:
    """True if ``value`` reaches itself (or one of its parts reaches itself) within the limit."""
    ancestors: set[int] = set()
    explored: set[int] = set()

    def visit(node: object, depth: int) -> bool:
        key = id(node)
        if key in ancestors:
            return True
        if key in explored or depth > MAX_DEPTH + 1:
            return False
        explored.add(key)
        ancestors.add(key)
        found = any(visit(child, depth + 1) for child in _children(node))
        ancestors.discard(key)
        return found

    return visit(value, 0)


def _too_deep(value: object, param: str) -> TypeError:
    if _contains_itself(value):
        problem = "contains itself (a recursive structure)"
    else:
        problem = f"is nested deeper than {MAX_DEPTH} levels (memo_redis.keys.MAX_DEPTH)"
    return TypeError(
        f"cannot derive a cache key from parameter {param!r}: the value {problem}; ignore it "
        f"(ignore=({param!r},)), give it a __cache_key__() method, or pass key="
    )


def _encode_list(value: Iterable[object], param: str, depth: int) -> list[object]:
    if depth >= MAX_DEPTH:
        raise _TooDeep
    inner = depth + 1
    return [v if type(v) in _NATIVE else _encode(v, param, inner) for v in value]


def _encode_tuple(value: tuple[object, ...], param: str, depth: int) -> object:
    if not value:
        if depth >= MAX_DEPTH:
            raise _TooDeep
        return _EMPTY_TUPLE
    return (_TUPLE, *_encode_list(value, param, depth))


def _encode_big_int(value: int) -> object:
    length = (value.bit_length() + 8) // 8
    return msgpack.ExtType(_BIG_INT_CODE, value.to_bytes(length, "big", signed=True))


def _encode_int(value: int, param: str, depth: int) -> object:
    return value if _INT_MIN <= value <= _INT_MAX else _encode_big_int(value)


def _encode_dict(value: Mapping[object, object], param: str, depth: int) -> object:
    if depth >= MAX_DEPTH:
        raise _TooDeep
    if not value:
        return _EMPTY_DICT
    inner = depth + 1
    entries = sorted(
        (_pack(_encode(k, param, inner)), _pack(_encode(v, param, inner)))
        for k, v in value.items()
    )
    return msgpack.ExtType(_DICT_CODE, b"".join([part for entry in entries for part in entry]))


def _encode_set(value: Collection[object], param: str, depth: int) -> object:
    if depth >= MAX_DEPTH:
        raise _TooDeep
    if not value:
        return _EMPTY_SET
    inner = depth + 1
    return msgpack.ExtType(
        _SET_CODE, b"".join(sorted([_pack(_encode(v, param, inner)) for v in value]))
    )


def _encode_frozenset(value: Collection[object], param: str, depth: int) -> object:
    if depth >= MAX_DEPTH:
        raise _TooDeep
    if not value:
        return _EMPTY_FROZENSET
    inner = depth + 1
    return msgpack.ExtType(
        _FROZENSET_CODE, b"".join(sorted([_pack(_encode(v, param, inner)) for v in value]))
    )


def _encode_bytearray(value: bytearray, param: str, depth: int) -> object:
    return msgpack.ExtType(_BYTEARRAY_CODE, bytes(value))


def _offset_us(delta: dt.timedelta | None) -> int | None:
    if delta is None:
        return None
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _zone(value: dt.datetime | dt.time) -> tuple[object, ...]:
    tz = value.tzinfo
    if type(tz) is dt.timezone:
        return ("timezone", _offset_us(tz.utcoffset(None)), tz.tzname(None))
    if isinstance(tz, zoneinfo.ZoneInfo) and tz.key is not None:
        return ("zoneinfo", tz.key)
    return (
        _type_id(type(tz)),
        _offset_us(value.utcoffset()),
        value.tzname(),
        _offset_us(value.dst()),
    )


def _encode_datetime(value: dt.datetime, param: str, depth: int) -> object:
    fields = (
        value.year,
        value.month,
        value.day,
        value.hour,
        value.minute,
        value.second,
        value.microsecond,
        value.fold,
    )
    if value.tzinfo is None:
        return (_DATETIME, *fields)
    return (_AWARE_DATETIME, *fields, *_zone(value))


def _encode_date(value: dt.date, param: str, depth: int) -> object:
    return (_DATE, value.year, value.month, value.day)


def _encode_time(value: dt.time, param: str, depth: int) -> object:
    fields = (value.hour, value.minute, value.second, value.microsecond, value.fold)
    if value.tzinfo is None:
        return (_TIME, *fields)
    return (_AWARE_TIME, *fields, *_zone(value))


def _encode_timedelta(value: dt.timedelta, param: str, depth: int) -> object:
    return (_TIMEDELTA, value.days, value.seconds, value.microseconds)


def _encode_decimal(value: decimal.Decimal, param: str, depth: int) -> object:
    return (_DECIMAL, decimal.Decimal.__str__(value))


def _encode_uuid(value: uuid.UUID, param: str, depth: int) -> object:
    return msgpack.ExtType(_UUID_CODE, value.bytes)


_EXACT: dict[type, Callable[[Any, str, int], object]] = {
    int: _encode_int,
    tuple: _encode_tuple,
    dict: _encode_dict,
    set: _encode_set,
    frozenset: _encode_frozenset,
    bytearray: _encode_bytearray,
    dt.datetime: _encode_datetime,
    dt.date: _encode_date,
    dt.time: _encode_time,
    dt.timedelta: _encode_timedelta,
    decimal.Decimal: _encode_decimal,
    uuid.UUID: _encode_uuid,
}

# Subclasses, in the order they must be tested (datetime before its base class date).
_SUBCLASS_ORDER: tuple[tuple[type, Callable[[Any, str, int], object]], ...] = (
    (dict, _encode_dict),
    (set, _encode_set),
    (frozenset, _encode_frozenset),
    (bytearray, _encode_bytearray),
    (dt.datetime, _encode_datetime),
    (dt.date, _encode_date),
    (dt.time, _encode_time),
    (dt.timedelta, _encode_timedelta),
    (decimal.Decimal, _encode_decimal),
    (uuid.UUID, _encode_uuid),
)


def _encode_other(value: object, param: str, depth: int) -> object:
    cls = type(value)
    if isinstance(value, enum.Enum):
        return (_ENUM, _type_id(cls), value.name)
    hook = getattr(cls, "__cache_key__", None)
    if hook is not None:
        result = hook(value)
        if result is value:
            raise TypeError(
                f"{_type_id(cls)}.__cache_key__() returned the object itself "
                f"(parameter {param!r}); return plain data such as a str or a tuple"
            )
        if depth >= MAX_DEPTH:
            raise _TooDeep
        return (_CACHE_KEY, _type_id(cls), _encode(result, param, depth + 1))
    # Subclasses of builtins compare equal to their base values, so they share its encoding.
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return _encode_int(int.__int__(value), param, depth)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, bytes):
        return b"".join((value,))
    if isinstance(value, list):
        return _encode_list(value, param, depth)
    if isinstance(value, tuple):
        return _encode_tuple(value, param, depth)
    for base, encoder in _SUBCLASS_ORDER:
        if isinstance(value, base):
            return encoder(value, param, depth)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if depth >= MAX_DEPTH:
            raise _TooDeep
        out: list[object] = [_DATACLASS, _type_id(cls)]
        for field in dataclasses.fields(value):
            out.append(field.name)
            out.append(_encode(getattr(value, field.name), param, depth + 1))
        return out
    raise _unsupported(value, param)


def _encode(value: object, param: str, depth: int) -> object:
    """:func:`canonical_encode` of a value nested in ``depth`` containers."""
    cls = type(value)
    if cls in _NATIVE:
        return value
    if cls is list:
        return _encode_list(value, param, depth)  # type: ignore[arg-type]
    encoder = _EXACT.get(cls)
    if encoder is not None:
        return encoder(value, param, depth)
    return _encode_other(value, param, depth)


def canonical_encode(value: object, param: str) -> object:
    """Return a deterministic, type-tagged, msgpack-packable form of ``value``.

    ``param`` is the parameter the value came from; it only appears in the ``TypeError``
    raised for unsupported types, for containers (lists, tuples, dicts, sets, dataclasses,
    ``__cache_key__()`` results) nested more than :data:`MAX_DEPTH` levels deep, and for
    values that contain themselves. The encoding is described in this module's docstring::

        >>> canonical_encode(("a", 1), "p")
        (ExtType(code=1, data=b''), 'a', 1)
    """
    try:
        return _encode(value, param, 0)
    except _TooDeep:
        raise _too_deep(value, param) from None


def canonical_bytes(items: Sequence[tuple[str, object]]) -> bytes:
    """Pack ``(parameter name, value)`` pairs into the canonical bytes a key digest covers.

    Equal arguments give equal bytes in every process::

        >>> canonical_bytes([("table", "users"), ("limit", 10)])
        b'\\x94\\xa5table\\xa5users\\xa5limit\\n'
    """
    flat: list[object] = []
    append = flat.append
    for name, value in items:
        append(name)
        if type(value) in _NATIVE:
            append(value)
            continue
        try:
            append(_encode(value, name, 0))
        except _TooDeep:
            raise _too_deep(value, name) from None
    return _pack(flat)


def fingerprint_of(data: bytes) -> tuple[str, bytes]:
    """Hash ``data`` once with sha256: return (hex digest, first 16 raw bytes of the digest).

    Callers slice the hex digest to their configured length.
    """
    digest = hashlib.sha256(data).digest()
    return digest.hex(), digest[:16]
