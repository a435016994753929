"""Value codecs: msgpack (the default), JSON, and opt-in pickle, with optional zlib compression.

A :class:`Serializer` turns a value into ``(flags, body)`` and back::

    >>> s = Serializer()
    >>> s.encode((1, "a"))
    (0, b'\\xd6\\x01\\x92\\x01\\xa1a')
    >>> s.decode(0, b'\\xd6\\x01\\x92\\x01\\xa1a')
    (1, 'a')

Flags
-----
``flags`` is a small int stored next to the body by the envelope module:

=========== ============================================================================
bits        meaning
=========== ============================================================================
0-1         ``FLAG_CODEC_MASK``: codec id, 0 msgpack, 1 json, 2 pickle (3 is unassigned)
2           ``FLAG_ZLIB``: the body is zlib-compressed
3 and up    reserved for the envelope module; :meth:`Serializer.decode` ignores them
=========== ============================================================================

``decode`` dispatches on the codec id in ``flags``, not on the configured codec, so entries
written with another safe codec stay readable after a codec change. Pickle is the exception: only
a serializer configured with ``codec="pickle"`` unpickles.

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

Bounds
------
Containers nested more than :data:`MAX_DEPTH` (64) levels deep are refused by
:meth:`Serializer.encode` with every codec. :meth:`Serializer.decode` never nests more than
:data:`MAX_DEPTH` ext levels (deeper bytes are a :class:`DecodeError`, whoever wrote them), and
with ``max_size`` it inflates at most that many bytes. Every failure to decode is a
:class:`DecodeError`, chained from its cause.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import enum
import functools
import gc
import itertools
import json
import pickle
import struct
import uuid
import zlib
from collections.abc import Callable
from typing import Any, NoReturn, cast

import msgpack

from memo_redis.exceptions import ConfigError, MemoRedisError, SerializationError

__all__ = ["FLAG_CODEC_MASK", "FLAG_ZLIB", "MAX_DEPTH", "Codec", "DecodeError", "Serializer"]

FLAG_CODEC_MASK = 0b011
FLAG_ZLIB = 0b100

MAX_DEPTH = 64
"""The deepest nesting of containers (list, tuple, dict, set, frozenset) a value may have.

``[1]`` is nested 1 level, ``[[1]]`` 2. :meth:`Serializer.encode` refuses deeper values with a
:class:`~memo_redis.exceptions.SerializationError` naming this limit, whatever the codec, and
:meth:`Serializer.decode` refuses stored tuples, sets and frozensets (msgpack ext types, each
decoded by a nested unpacker) nested deeper than this: a hostile value costs a miss, never a
crash. Lists and maps within one ext payload are decoded without recursion (msgpack's own stack
limit, 1024 levels, applies) and JSON is bounded by Python's recursion limit.
"""


class Codec(str, enum.Enum):
    """The value codecs. ``PICKLE`` is never a default: choosing it is an explicit opt-in."""

    MSGPACK = "msgpack"
    JSON = "json"
    PICKLE = "pickle"


# Named by its public path, as before the package was split into modules: canonical keys
# (memo_redis.keys) and pickles name an Enum member's class by its module.
Codec.__module__ = "memo_redis.serialization"

_CODEC_IDS: dict[Codec, int] = {Codec.MSGPACK: 0, Codec.JSON: 1, Codec.PICKLE: 2}


class DecodeError(MemoRedisError, ValueError):
    """A stored body cannot be decoded: corrupt or foreign bytes, an unknown codec id, pickle
    data read by a serializer not configured for pickle, a value nested deeper than
    :data:`MAX_DEPTH` or larger than the reader's size limit. Every failure of a decoder (including
    ``RecursionError`` and ``MemoryError``) is raised as this type, chained from its cause; callers
    treat it as a cache miss."""


class _UnsupportedType(TypeError):
    """Raised inside the codecs' hooks to report the type that has no encoding."""

    def __init__(self, cls: type, detail: str = "") -> None:
        super().__init__(cls.__qualname__)
        self.cls = cls
        self.detail = detail


_BUILTIN_BASES: tuple[type, ...] = (
    int, float, str, bytes, list, tuple, dict, set, frozenset,
    _dt.datetime, _dt.date, _dt.time, _dt.timedelta, decimal.Decimal, uuid.UUID,
)  # fmt: skip


def _unsupported_message(cls: type, codec: Codec, detail: str = "") -> str:
    message = f"cannot serialize value of type {cls.__qualname__!r} with codec {codec.value}"
    if detail:
        return f"{message}{detail}"
    if codec is Codec.MSGPACK and issubclass(cls, _BUILTIN_BASES):
        return (
            f"{message} (subclasses of built-in types are not supported: convert the value to "
            "its base type, or use codec='pickle')"
        )
    return message


# --- msgpack ---------------------------------------------------------------------------------

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
    return msgpack.ExtType(_EXT_TUPLE, _packb(list(value)))


def _pack_set(value: set[Any]) -> Any:
    return msgpack.ExtType(_EXT_SET, _packb(list(value)))


def _pack_frozenset(value: frozenset[Any]) -> Any:
    return msgpack.ExtType(_EXT_FROZENSET, _packb(list(value)))


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
        raise _UnsupportedType(type(value))
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
_ext_hook = _EXT_HOOKS[0]
"""The ext hook of a top-level body: containers in it may nest :data:`MAX_DEPTH` levels."""


def _packb(value: object) -> bytes:
    # msgpack.packb builds a fresh Packer per call, which keeps encoding thread-safe and lets the
    # default hook pack nested tuples and sets re-entrantly.
    return cast(bytes, _msgpack_packb(value, default=_default, strict_types=True))


def _unpackb(data: bytes) -> Any:
    # Only ext types go through Python; lists, dicts, str, int, ... are built by the C unpacker.
    # (A functools.partial here costs more than this call: it merges the keywords on every call.)
    return _msgpack_unpackb(data, ext_hook=_ext_hook, strict_map_key=False)


# --- nesting depth ---------------------------------------------------------------------------


class _ContainerTypes(dict[type, bool]):
    """type -> whether the depth walk descends into its instances (subclasses included)."""

    def __missing__(self, cls: type) -> bool:
        found = issubclass(cls, (list, tuple, dict, set, frozenset))
        if len(self) < 1024:  # a program minting classes must not grow this without bound
            self[cls] = found
        return found


_IS_CONTAINER = _ContainerTypes({
    list: True, tuple: True, dict: True, set: True, frozenset: True,
    str: False, bytes: False, int: False, float: False, bool: False, type(None): False,
})  # fmt: skip
_is_container = _IS_CONTAINER.__getitem__
_compress = itertools.compress
_referents = gc.get_referents


def _nested_too_deep(value: object) -> bool:
    """True if ``value`` has containers nested more than :data:`MAX_DEPTH` levels (or a cycle).

    Walks one level at a time at C speed (``gc.get_referents`` of the whole level, filtered by
    type), keeping each container once per level, so a cycle or shared substructure costs at
    most ``MAX_DEPTH`` visits per container. (The referents of a container subclass instance
    include its ``__dict__``, which then counts as one more level.)
    """
    if not _is_container(type(value)):
        return False
    level = [value]
    for _ in range(MAX_DEPTH):
        below = _referents(*level)
        found = list(_compress(below, map(_is_container, map(type, below))))
        if not found:
            return False
        level = list(dict(zip(map(id, found), found, strict=True)).values())
    return True


def _too_deep_message(value: object, codec: Codec) -> str:
    return _unsupported_message(
        type(value), codec, f": containers nested deeper than MAX_DEPTH={MAX_DEPTH} levels"
    )


# --- JSON ------------------------------------------------------------------------------------


def _json_default(value: object) -> NoReturn:
    raise _UnsupportedType(type(value))


_JSON_CONTAINERS = (dict, list, tuple)


def _check_json_keys(value: object) -> None:
    """Refuse non-str dict keys, which ``json`` would otherwise silently turn into strings."""
    stack = [value]
    seen: set[int] = set()  # a cycle must not loop forever
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    raise _UnsupportedType(
                        type(key), " as a dict key (JSON object keys must be str)"
                    )
                if isinstance(child, _JSON_CONTAINERS):
                    stack.append(child)
        elif isinstance(item, (list, tuple)):
            stack.extend(child for child in item if isinstance(child, _JSON_CONTAINERS))


_JSON_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=_json_default)
# Same output as the seed's json.dumps(value), but with a hook that names unsupported types.
_PLAIN_JSON_ENCODER = json.JSONEncoder(default=_json_default)


def _json_encode(encoder: json.JSONEncoder, value: object) -> bytes:
    try:
        body = encoder.encode(value).encode("utf-8")
    except TypeError:
        # json refuses keys such as tuples with a message that does not name the dict; report
        # the key's type the same way as for keys json would have coerced.
        _check_json_keys(value)
        raise
    # No "{" in the text means no dict anywhere, so the key walk can be skipped.
    if b"{" in body:
        _check_json_keys(value)
    return body


# --- pickle ----------------------------------------------------------------------------------


def _pickle_dumps(value: object) -> bytes:
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def _refuse_pickle(body: bytes) -> NoReturn:
    raise DecodeError(
        "refusing to unpickle a pickle-flagged body: this serializer's codec is not 'pickle'"
    )


def _unknown_codec(body: bytes) -> NoReturn:
    raise DecodeError("unknown codec id 3 in flags (known: 0 msgpack, 1 json, 2 pickle)")


# --- Serializer ------------------------------------------------------------------------------


def _check_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an int, got {value!r}")
    return value


class Serializer:
    """Encodes values to ``(flags, body)`` and decodes them back; immutable.

    ``codec`` is ``"msgpack"`` (default: exact round trips, see the module docstring),
    ``"json"`` (JSON-native types only; tuples come back as lists) or ``"pickle"`` (an explicit
    opt-in: only a pickle serializer ever unpickles). Bodies whose encoded length is at least
    ``compress_threshold`` bytes are zlib-compressed at ``compress_level`` when that makes them
    smaller; ``compress_threshold=None`` disables compression.

    >>> Serializer(codec="json").encode({"a": [1, 2]})
    (1, b'{"a":[1,2]}')
    """

    __slots__ = ("_code", "_decoders", "_encoder", "codec", "compress_level", "compress_threshold")

    codec: Codec
    compress_threshold: int | None
    compress_level: int
    _code: int
    _encoder: Callable[[object], bytes]
    _decoders: tuple[Callable[[bytes], Any], ...]

    def __init__(
        self,
        codec: Codec | str = "msgpack",
        *,
        compress_threshold: int | None = 512,
        compress_level: int = 6,
    ) -> None:
        try:
            chosen = Codec(codec)
        except ValueError:
            choices = ", ".join(repr(c.value) for c in Codec)
            raise ConfigError(f"codec must be one of {choices}, got {codec!r}") from None
        if compress_threshold is not None:
            _check_int("compress_threshold", compress_threshold)
            if compress_threshold < 0:
                raise ConfigError(
                    f"compress_threshold must be >= 0 or None, got {compress_threshold!r}"
                )
        _check_int("compress_level", compress_level)
        if not 0 <= compress_level <= 9:
            raise ConfigError(f"compress_level must be between 0 and 9, got {compress_level!r}")

        encoders: dict[Codec, Callable[[object], bytes]] = {
            Codec.MSGPACK: _packb,
            Codec.JSON: functools.partial(_json_encode, _JSON_ENCODER),
            Codec.PICKLE: _pickle_dumps,
        }
        # Indexed by codec id so decode is one tuple lookup; the pickle slot refuses unless
        # pickle was explicitly chosen.
        unpickle: Callable[[bytes], Any] = _refuse_pickle
        if chosen is Codec.PICKLE:
            unpickle = pickle.loads
        decoders: tuple[Callable[[bytes], Any], ...] = (
            _unpackb,
            json.loads,
            unpickle,
            _unknown_codec,
        )
        set_ = object.__setattr__
        set_(self, "codec", chosen)
        set_(self, "compress_threshold", compress_threshold)
        set_(self, "compress_level", compress_level)
        set_(self, "_code", _CODEC_IDS[chosen])
        set_(self, "_encoder", encoders[chosen])
        set_(self, "_decoders", decoders)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Serializer is immutable; cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Serializer is immutable; cannot delete {name!r}")

    def __repr__(self) -> str:
        level = "" if self.compress_level == 6 else f", compress_level={self.compress_level}"
        return (
            f"Serializer(codec={self.codec.value!r}, "
            f"compress_threshold={self.compress_threshold!r}{level})"
        )

    def encode(self, value: object, *, max_size: int | None = None) -> tuple[int, bytes]:
        """Encode ``value`` to ``(flags, body)``.

        ``flags`` is the codec id, plus ``FLAG_ZLIB`` when the body was compressed. Raises
        :class:`~memo_redis.exceptions.SerializationError` naming the offending type, e.g.
        ``cannot serialize value of type 'Foo' with codec msgpack``, or naming
        :data:`MAX_DEPTH` for containers nested deeper than that. A payload longer than
        ``max_size`` bytes is returned uncompressed (a reader with that limit would refuse to
        inflate it, so the caller is expected not to store it).
        """
        # Checked first: packing recurses in C per level of nesting.
        if _nested_too_deep(value):
            raise SerializationError(_too_deep_message(value, self.codec))
        try:
            payload = self._encoder(value)
        except _UnsupportedType as exc:
            raise SerializationError(_unsupported_message(exc.cls, self.codec, exc.detail)) from exc
        except Exception as exc:  # recursion limits, unpicklable objects
            message = _unsupported_message(type(value), self.codec, f": {exc}")
            raise SerializationError(message) from exc
        threshold = self.compress_threshold
        if (
            threshold is not None
            and len(payload) >= threshold
            and (max_size is None or len(payload) <= max_size)
        ):
            compressed = zlib.compress(payload, self.compress_level)
            if len(compressed) < len(payload):
                return self._code | FLAG_ZLIB, compressed
        return self._code, payload

    def decode(self, flags: int, body: bytes, *, max_size: int | None = None) -> Any:
        """Decode a body produced by :meth:`encode` with these ``flags``.

        Dispatches on the codec id in ``flags``; bits above ``FLAG_ZLIB`` are ignored. With
        ``max_size``, a body (after decompression) longer than ``max_size`` bytes is refused
        without being inflated further, and msgpack's declared lengths are bounded by the body's
        length, so a hostile body costs at most about ``max_size`` bytes plus the objects it
        decodes to. Raises :class:`DecodeError`, chained from the cause, for any failure: corrupt
        or foreign bytes, a body too large, nesting deeper than :data:`MAX_DEPTH`, an unknown
        codec id, or pickle data when this serializer's codec is not pickle.
        """
        if max_size is not None and len(body) > max_size:
            raise DecodeError(f"body of {len(body)} bytes exceeds max_size={max_size}")
        if flags & FLAG_ZLIB:
            body = _inflate(body, max_size)
        try:
            if not flags & FLAG_CODEC_MASK:
                # The default codec is inlined: the hit path pays for no extra Python call.
                return _msgpack_unpackb(body, ext_hook=_ext_hook, strict_map_key=False)
            return self._decoders[flags & FLAG_CODEC_MASK](body)
        except DecodeError:
            raise
        # Any failure of a decoder on bad bytes (msgpack, json, struct, datetime, decimal, and
        # RecursionError or MemoryError) must surface as one error type that callers turn into a
        # cache miss.
        except Exception as exc:
            raise DecodeError(
                f"cannot decode {len(body)}-byte body with flags {flags:#x}: {exc!r}"
            ) from exc

    def encode_plain_json(self, value: object) -> bytes:
        """Encode ``value`` in the seed deployment's format: ``json.dumps(value)`` as UTF-8.

        No header and no compression. Non-str dict keys, non-JSON types and containers nested
        deeper than :data:`MAX_DEPTH` raise :class:`~memo_redis.exceptions.SerializationError`.

        >>> Serializer().encode_plain_json({"a": [1, 2]})
        b'{"a": [1, 2]}'
        """
        if _nested_too_deep(value):
            raise SerializationError(_too_deep_message(value, Codec.JSON))
        try:
            return _json_encode(_PLAIN_JSON_ENCODER, value)
        except _UnsupportedType as exc:
            message = _unsupported_message(exc.cls, Codec.JSON, exc.detail)
            raise SerializationError(message) from exc
        except Exception as exc:
            message = _unsupported_message(type(value), Codec.JSON, f": {exc}")
            raise SerializationError(message) from exc

    def decode_plain_json(self, raw: bytes | str, *, max_size: int | None = None) -> Any:
        """Decode a value stored in the seed deployment's plain JSON format.

        ``raw`` may be ``str`` (a client with ``decode_responses=True``). Raises
        :class:`DecodeError`, chained from the cause, when ``raw`` is not valid JSON, is nested
        too deep for the parser (``RecursionError``) or is longer than ``max_size``.
        """
        if max_size is not None and len(raw) > max_size:
            raise DecodeError(f"plain JSON body of {len(raw)} bytes exceeds max_size={max_size}")
        try:
            return json.loads(raw)
        except Exception as exc:
            raise DecodeError(f"cannot decode plain JSON body: {exc!r}") from exc


def _inflate(body: bytes, max_size: int | None) -> bytes:
    """zlib-decompress ``body``, refusing (without inflating further) more than ``max_size``."""
    try:
        if max_size is None:
            return zlib.decompress(body)
        inflater = zlib.decompressobj()
        data = inflater.decompress(body, max_size + 1)
    except zlib.error as exc:
        raise DecodeError(f"corrupt zlib body ({len(body)} bytes): {exc}") from exc
    except MemoryError as exc:
        raise DecodeError(f"cannot inflate zlib body ({len(body)} bytes): {exc!r}") from exc
    if len(data) > max_size:
        raise DecodeError(
            f"zlib body of {len(body)} bytes inflates to more than max_size={max_size} bytes"
        )
    if not inflater.eof:
        raise DecodeError(f"corrupt zlib body ({len(body)} bytes): incomplete or truncated stream")
    return data
