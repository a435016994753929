"""The msgpack codec: exact round trips through msgpack ext types, decoded with bounded depth.

msgpack extension types
-----------------------
The msgpack codec round-trips values exactly (type and value). Types msgpack has no native form
for are stored as ext types. **This table is a storage format: changing a code or a layout
orphans every cached entry and is a breaking change.**

==== =========== =====================================================================
code type        ext payload
==== =========== =====================================================================
0    int         outside msgpack's native range ``[-2**63, 2**64)``: two's complement,
                 big-endian, minimal length
1    tuple       msgpack array of the items (nested values use these same rules)
2    set         msgpack array of the items
3    frozenset   msgpack array of the items
4    datetime    struct ``!HBBBBBIB``: year, month, day, hour, minute, second,
                 microsecond, fold (12 bytes); aware values append struct ``!q``, the
                 utcoffset in microseconds (20 bytes)
5    date        struct ``!HBB``: year, month, day
6    time        struct ``!BBBIB``: hour, minute, second, microsecond, fold (8 bytes);
                 aware values append struct ``!q``, the utcoffset in microseconds
7    timedelta   struct ``!iII``: days, seconds, microseconds
8    Decimal     ``str(value)`` as ASCII (keeps NaN, sNaN, Infinity, exponent, zeros)
9    UUID        the 16 bytes of ``UUID.bytes``
==== =========== =====================================================================

Aware datetimes and times come back with a fixed-offset :class:`datetime.timezone` equal to the
original ``utcoffset()`` (the zone's name and rules are not stored). A datetime or time whose
``utcoffset()`` is ``None`` is naive. Subclasses of the supported types (an ``IntEnum``, a
``str`` subclass, ``OrderedDict``, a namedtuple, ...) raise
:class:`~memo_redis.exceptions.SerializationError` rather than silently coming back as the base
type. ``bytearray`` and ``memoryview`` come back as
``bytes`` (msgpack packs them natively); values that are msgpack ``ExtType`` objects themselves
are not supported.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import functools
import struct
import uuid
from collections.abc import Callable
from typing import Any, NoReturn, cast

import msgpack

from .errors import DecodeError, UnsupportedType
from .format import MAX_DEPTH

__all__ = ["ext_hook", "msgpack_decode", "msgpack_encode"]

_EXT_BIGINT = 0
_EXT_TUPLE = 1
_EXT_SET = 2
_EXT_FROZENSET = 3
_EXT_DATETIME = 4
_EXT_DATE = 5
_EXT_TIME = 6
_EXT_TIMEDELTA = 7
_EXT_DECIMAL = 8
_EXT_UUID = 9

_DATETIME = struct.Struct("!HBBBBBIB")
_DATETIME_AWARE = struct.Struct("!HBBBBBIBq")
_DATE = struct.Struct("!HBB")
_TIME = struct.Struct("!BBBIB")
_TIME_AWARE = struct.Struct("!BBBIBq")
_TIMEDELTA = struct.Struct("!iII")
_OFFSET = struct.Struct("!q")


def _offset_microseconds(offset: _dt.timedelta) -> int:
    return (offset.days * 86_400 + offset.seconds) * 1_000_000 + offset.microseconds


@functools.lru_cache(maxsize=256)
def _fixed_timezone(offset_us: int) -> _dt.timezone:
    return _dt.timezone(_dt.timedelta(microseconds=offset_us))


def _pack_bigint(value: int) -> Any:
    data = value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True)
    return msgpack.ExtType(_EXT_BIGINT, data)


def _pack_tuple(value: tuple[Any, ...]) -> Any:
    return msgpack.ExtType(_EXT_TUPLE, msgpack_encode(list(value)))


def _pack_set(value: set[Any]) -> Any:
    return msgpack.ExtType(_EXT_SET, msgpack_encode(list(value)))


def _pack_frozenset(value: frozenset[Any]) -> Any:
    return msgpack.ExtType(_EXT_FROZENSET, msgpack_encode(list(value)))


def _pack_datetime(value: _dt.datetime) -> Any:
    fields = (
        value.year, value.month, value.day,
        value.hour, value.minute, value.second, value.microsecond, value.fold,
    )  # fmt: skip
    offset = value.utcoffset()
    if offset is None:
        return msgpack.ExtType(_EXT_DATETIME, _DATETIME.pack(*fields))
    data = _DATETIME_AWARE.pack(*fields, _offset_microseconds(offset))
    return msgpack.ExtType(_EXT_DATETIME, data)


def _pack_date(value: _dt.date) -> Any:
    return msgpack.ExtType(_EXT_DATE, _DATE.pack(value.year, value.month, value.day))


def _pack_time(value: _dt.time) -> Any:
    fields = (value.hour, value.minute, value.second, value.microsecond, value.fold)
    offset = value.utcoffset()
    if offset is None:
        return msgpack.ExtType(_EXT_TIME, _TIME.pack(*fields))
    return msgpack.ExtType(_EXT_TIME, _TIME_AWARE.pack(*fields, _offset_microseconds(offset)))


def _pack_timedelta(value: _dt.timedelta) -> Any:
    data = _TIMEDELTA.pack(value.days, value.seconds, value.microseconds)
    return msgpack.ExtType(_EXT_TIMEDELTA, data)


def _pack_decimal(value: decimal.Decimal) -> Any:
    return msgpack.ExtType(_EXT_DECIMAL, str(value).encode("ascii"))


def _pack_uuid(value: uuid.UUID) -> Any:
    return msgpack.ExtType(_EXT_UUID, value.bytes)


# Keyed by exact type: the packer runs with strict_types=True, so subclasses reach the default
# hook too and are refused here instead of being packed as their base type.
_EXT_ENCODERS: dict[type, Callable[[Any], Any]] = {
    int: _pack_bigint,  # only reached when the int overflows msgpack's 64-bit forms
    tuple: _pack_tuple,
    set: _pack_set,
    frozenset: _pack_frozenset,
    _dt.datetime: _pack_datetime,
    _dt.date: _pack_date,
    _dt.time: _pack_time,
    _dt.timedelta: _pack_timedelta,
    decimal.Decimal: _pack_decimal,
    uuid.UUID: _pack_uuid,
}


def _default(value: object) -> Any:
    encoder = _EXT_ENCODERS.get(type(value))
    if encoder is None:
        raise UnsupportedType(type(value))
    return encoder(value)


def _unpack_datetime(data: bytes) -> _dt.datetime:
    if len(data) == _DATETIME.size:
        year, month, day, hour, minute, second, micro, fold = _DATETIME.unpack(data)
        return _dt.datetime(year, month, day, hour, minute, second, micro, fold=fold)
    year, month, day, hour, minute, second, micro, fold, offset = _DATETIME_AWARE.unpack(data)
    tz = _fixed_timezone(offset)
    return _dt.datetime(year, month, day, hour, minute, second, micro, tz, fold=fold)


def _unpack_date(data: bytes) -> _dt.date:
    return _dt.date(*_DATE.unpack(data))


def _unpack_time(data: bytes) -> _dt.time:
    if len(data) == _TIME.size:
        hour, minute, second, micro, fold = _TIME.unpack(data)
        return _dt.time(hour, minute, second, micro, fold=fold)
    hour, minute, second, micro, fold, offset = _TIME_AWARE.unpack(data)
    return _dt.time(hour, minute, second, micro, _fixed_timezone(offset), fold=fold)


def _unpack_timedelta(data: bytes) -> _dt.timedelta:
    days, seconds, micro = _TIMEDELTA.unpack(data)
    return _dt.timedelta(days=days, seconds=seconds, microseconds=micro)


_SCALAR_EXT_DECODERS: dict[int, Callable[[bytes], Any]] = {
    _EXT_BIGINT: lambda data: int.from_bytes(data, "big", signed=True),
    _EXT_DATETIME: _unpack_datetime,
    _EXT_DATE: _unpack_date,
    _EXT_TIME: _unpack_time,
    _EXT_TIMEDELTA: _unpack_timedelta,
    _EXT_DECIMAL: lambda data: decimal.Decimal(data.decode("ascii")),
    _EXT_UUID: lambda data: uuid.UUID(bytes=data),
}
_CONTAINER_EXTS: dict[int, type] = {_EXT_TUPLE: tuple, _EXT_SET: set, _EXT_FROZENSET: frozenset}

_msgpack_packb = msgpack.packb
_msgpack_unpackb = msgpack.unpackb
_Unpacker = msgpack.Unpacker


def _unknown_ext(code: int) -> NoReturn:
    raise DecodeError(f"unknown msgpack ext type code {code}")


def _make_ext_hook(depth: int, inner: Callable[[int, bytes], Any] | None) -> Callable[..., Any]:
    """The ext hook for ext values found ``depth`` ext levels deep.

    A container ext (tuple, set, frozenset) is itself a msgpack body, unpacked by a nested
    unpacker whose ext hook is ``inner``, the hook one level deeper; ``inner`` is None at
    :data:`MAX_DEPTH`, where a further container is refused. The depth is carried by which hook
    runs, so the common case pays nothing for it. Bodies found in the top-level value are unpacked
    with ``unpackb`` (fastest, but it keeps its 40 KB parser state on the C stack); deeper ones
    with an ``Unpacker``, whose state is on the heap, so even :data:`MAX_DEPTH` levels need well
    under 256 KB of C stack. ``unpackb`` and ``Unpacker(max_buffer_size=len(data))`` bound every
    declared length (str, bin, array, map, ext) by the length of the bytes being unpacked.
    """
    scalar = _SCALAR_EXT_DECODERS.get
    container = _CONTAINER_EXTS.get
    unpackb = _msgpack_unpackb

    if inner is None:

        def hook(code: int, data: bytes) -> Any:
            decoder = scalar(code)
            if decoder is not None:
                return decoder(data)
            if code in _CONTAINER_EXTS:
                raise DecodeError(f"value nested deeper than MAX_DEPTH={MAX_DEPTH} ext levels")
            _unknown_ext(code)

    elif depth == 0:

        def hook(code: int, data: bytes) -> Any:
            kind = container(code)
            if kind is not None:
                return kind(unpackb(data, ext_hook=inner, strict_map_key=False))
            decoder = scalar(code)
            if decoder is None:
                _unknown_ext(code)
            return decoder(data)

    else:

        def hook(code: int, data: bytes) -> Any:
            kind = container(code)
            if kind is not None:
                unpacker = _Unpacker(
                    ext_hook=inner, strict_map_key=False, max_buffer_size=len(data) or 1
                )
                unpacker.feed(data)
                items = unpacker.unpack()
                if unpacker.tell() != len(data):
                    raise DecodeError(f"extra data after an ext type {code} payload")
                return kind(items)
            decoder = scalar(code)
            if decoder is None:
                _unknown_ext(code)
            return decoder(data)

    return hook


def _build_ext_hooks() -> list[Callable[[int, bytes], Any]]:
    hooks: list[Callable[[int, bytes], Any]] = []
    inner: Callable[[int, bytes], Any] | None = None
    for depth in range(MAX_DEPTH, -1, -1):
        inner = _make_ext_hook(depth, inner)
        hooks.append(inner)
    hooks.reverse()
    return hooks


_EXT_HOOKS = _build_ext_hooks()
ext_hook = _EXT_HOOKS[0]
"""The ext hook of a top-level body: containers in it may nest :data:`MAX_DEPTH` levels."""


def msgpack_encode(value: object) -> bytes:
    """Pack ``value`` (ext types as in the module docstring); others raise ``UnsupportedType``."""
    # msgpack.packb builds a fresh Packer per call, which keeps encoding thread-safe and lets the
    # default hook pack nested tuples and sets re-entrantly.
    return cast(bytes, _msgpack_packb(value, default=_default, strict_types=True))


def msgpack_decode(data: bytes) -> Any:
    """Unpack a body written by :func:`msgpack_encode` (ext levels bounded by MAX_DEPTH)."""
    # Only ext types go through Python; lists, dicts, str, int, ... are built by the C unpacker.
    # (A functools.partial here costs more than this call: it merges the keywords on every call.)
    return _msgpack_unpackb(data, ext_hook=ext_hook, strict_map_key=False)
