"""Pure key building: argument binding, canonical encoding, digests, templates and glob patterns.

Nothing here talks to Redis or reads the environment. Everything that does not depend on a
call's arguments (signatures, ignored names, compiled templates) is computed once per decorated
function, because key building sits on the cache-hit path.

Seed SQL keys
-------------
:func:`build_cache_key` reproduces the original algorithm byte for byte::

    >>> build_cache_key("users", ["id", "name"], [])
    'sql:users:data:2dd67780'

Canonical argument encoding
---------------------------
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
import functools
import hashlib
import inspect
import json
import re
import string
import threading
import uuid
import zoneinfo
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

import msgpack

from memo_redis.exceptions import ConfigError
from memo_redis.serialization import MAX_DEPTH

__all__ = [
    "MAX_DEPTH",
    "ArgumentBinder",
    "KeyTemplate",
    "build_cache_key",
    "canonical_bytes",
    "canonical_encode",
    "fingerprint_of",
    "glob_escape",
    "glob_unescape",
    "is_glob",
    "literal_prefix",
    "matches",
    "seed_digest",
    "segment_escape",
    "segment_prefixes",
]

# --- seed SQL keys -------------------------------------------------------------------------


def _check_digest_length(digest_length: int) -> None:
    if (
        isinstance(digest_length, bool)
        or not isinstance(digest_length, int)
        or not 1 <= digest_length <= 64
    ):
        raise ConfigError(
            f"digest_length must be an int from 1 to 64 (hex characters of a sha256), "
            f"got {digest_length!r}"
        )


def _sorted_names(values: Iterable[str], param: str) -> list[str]:
    if isinstance(values, (str, bytes)):
        raise TypeError(
            f"{param} must be an iterable of str, not a bare {type(values).__name__} "
            f"({values!r}); write [{values!r}]"
        )
    return sorted(values)


def seed_digest(
    table: str, columns: Iterable[str], where: Iterable[str], digest_length: int = 8
) -> str:
    """Return the seed's parameter digest: the first ``digest_length`` hex chars of a sha256.

    The digest covers ``json.dumps({"table", "columns": sorted, "where": sorted},
    sort_keys=True)``, so column and condition order never matter::

        >>> seed_digest("users", ["name", "id"], [])
        '2dd67780'
    """
    _check_digest_length(digest_length)
    if not isinstance(table, str):
        raise TypeError(f"table must be a str, got {type(table).__name__} {table!r}")
    params = {
        "table": table,
        "columns": _sorted_names(columns, "columns"),
        "where": _sorted_names(where, "where"),
    }
    params_json = json.dumps(params, sort_keys=True)
    return hashlib.sha256(params_json.encode()).hexdigest()[:digest_length]


def build_cache_key(
    table: str, columns: Iterable[str], where: Iterable[str], *, digest_length: int = 8
) -> str:
    """Return the seed's key for a SQL read: ``sql:{table}:data:{digest}``.

    Identical to the original algorithm, so keys written by it stay readable::

        >>> build_cache_key("users", ["id", "name"], ["active=1"])
        'sql:users:data:cb668aec'
    """
    return f"sql:{table}:data:{seed_digest(table, columns, where, digest_length)}"


# --- canonical argument encoding -----------------------------------------------------------

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


def _type_name(cls: type) -> str:
    return cls.__qualname__ if cls.__module__ == "builtins" else _type_id(cls)


def _unsupported(value: object, param: str) -> TypeError:
    return TypeError(
        f"cannot derive a cache key from parameter {param!r} of type "
        f"{_type_name(type(value))!r}; ignore it (ignore=({param!r},)), give it a "
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


# --- argument binding ----------------------------------------------------------------------

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def _owner_name(func: Callable[..., Any]) -> str:
    module = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", None) or type(func).__qualname__
    return f"{module}.{qualname}" if module else qualname


class ArgumentBinder:
    """Bind a function's call arguments and select those that make up its cache key.

    Built once per decorated function; ``bind`` + ``key_items`` is the per-call work::

        >>> def fetch(table, columns, where=()): ...
        >>> binder = ArgumentBinder(fetch)
        >>> binder.key_items(binder.bind(("users", ["id"]), {}))
        [('table', 'users'), ('columns', ['id']), ('where', ())]

    ``skip_first`` drops the first parameter (``self`` or ``cls``) from the key; ``ignore``
    names parameters to drop (a name the function lacks is a ``ConfigError``).
    """

    __slots__ = (
        "_arity",
        "_default_of",
        "_defaults",
        "_key_names",
        "_keywords_ok",
        "_min_args",
        "_signature",
        "owner",
        "parameters",
    )

    parameters: tuple[str, ...]
    owner: str

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        ignore: Iterable[str] = (),
        skip_first: bool = False,
    ) -> None:
        self.owner = _owner_name(func)
        self._signature = inspect.signature(func)
        params = list(self._signature.parameters.values())
        self.parameters = tuple(p.name for p in params)
        if isinstance(ignore, str):
            raise ConfigError(
                f"ignore must be a collection of parameter names, not the str {ignore!r}; "
                f"write ignore=({ignore!r},)"
            )
        ignored = set(ignore)
        for name in sorted(ignored):
            if name not in self.parameters:
                raise ConfigError(
                    f"ignore names {name!r}, which is not a parameter of {self.owner}"
                )
        if skip_first:
            if not params or params[0].kind not in _POSITIONAL:
                raise ConfigError(
                    f"skip_first=True needs a first positional parameter (self or cls), "
                    f"but {self.owner} has none"
                )
            ignored.add(params[0].name)
        self._key_names = tuple(name for name in self.parameters if name not in ignored)
        # The fast path (no Signature.bind) serves purely positional calls of signatures
        # without *args, **kwargs or keyword-only parameters; -1 disables it.
        self._arity = len(params) if all(p.kind in _POSITIONAL for p in params) else -1
        defaults: list[object] = []
        for p in reversed(params):
            if p.default is inspect.Parameter.empty:
                break
            defaults.append(p.default)
        defaults.reverse()
        self._defaults = tuple(defaults)
        self._min_args = len(params) - len(defaults)
        # Keyword calls skip Signature.bind too when every parameter is positional-or-keyword.
        self._keywords_ok = all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in params)
        self._default_of = {
            p.name: p.default for p in params if p.default is not inspect.Parameter.empty
        }

    def __repr__(self) -> str:
        return f"<ArgumentBinder for {self.owner} key={list(self._key_names)}>"

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, object]:
        """Return every argument by parameter name, defaults applied, nothing ignored.

        ``*args`` arrive as a tuple and ``**kwargs`` as a dict; bad arguments raise the
        ``TypeError`` a call would.
        """
        n = len(args)
        if not kwargs:
            if n == self._arity:
                return dict(zip(self.parameters, args, strict=True))
            if self._min_args <= n < self._arity:
                values = args + self._defaults[n - self._min_args :]
                return dict(zip(self.parameters, values, strict=True))
        elif self._keywords_ok and n < self._arity:
            result = dict(zip(self.parameters[:n], args, strict=True))
            used = 0
            for name in self.parameters[n:]:
                if name in kwargs:
                    result[name] = kwargs[name]
                    used += 1
                elif name in self._default_of:
                    result[name] = self._default_of[name]
                else:
                    break
            else:
                if used == len(kwargs):
                    return result
            # A missing, duplicate or unknown argument: let Signature.bind raise the error.
        bound = self._signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return dict(bound.arguments)

    def key_items(self, bound: Mapping[str, object]) -> list[tuple[str, object]]:
        """Return the ``(name, value)`` pairs of the key, in signature order.

        Ignored and skipped parameters are left out, so ``f(1, 2)``, ``f(1, b=2)``,
        ``f(a=1, b=2)`` and (when 2 is ``b``'s default) ``f(1)`` give identical items.
        """
        return [(name, bound[name]) for name in self._key_names]


# --- key templates -------------------------------------------------------------------------


class KeyTemplate:
    """A ``str.format``-style template whose placeholders name parameters of ``owner``.

    Only plain names are allowed (``{table}``; ``{{`` and ``}}`` are literal braces). It is
    checked when built, so a typo fails when the decorator is applied::

        >>> t = KeyTemplate("sql:{table}:*", ["table", "limit"], owner="app.fetch")
        >>> t.render({"table": "a[1]", "limit": 5}, escape=True)
        'sql:a\\\\[1\\\\]:*'
    """

    __slots__ = ("_head", "_pairs", "fields", "is_static", "owner", "template")

    fields: tuple[str, ...]
    is_static: bool

    def __init__(self, template: str, parameters: Collection[str], *, owner: str) -> None:
        if not isinstance(template, str):
            raise ConfigError(
                f"key template of {owner} must be a str, got {type(template).__name__} {template!r}"
            )
        self.template = template
        self.owner = owner
        try:
            parsed = list(string.Formatter().parse(template))
        except ValueError as exc:
            raise ConfigError(f"key template {template!r} of {owner} is malformed: {exc}") from exc
        literals: list[str] = []
        names: list[str] = []
        pending = ""
        for literal, field, spec, conversion in parsed:
            pending += literal
            if field is None:
                continue
            if not field.isidentifier() or spec or conversion:
                shown = (
                    "{"
                    + field
                    + (f"!{conversion}" if conversion else "")
                    + (f":{spec}" if spec else "")
                    + "}"
                )
                raise ConfigError(
                    f"key template {template!r} of {owner}: placeholder {shown} must be a "
                    f"plain parameter name (no attribute, index, conversion or format spec)"
                )
            if field not in parameters:
                raise ConfigError(
                    f"key template {template!r} of {owner}: placeholder {{{field}}} names no "
                    f"parameter of {owner} (parameters: {', '.join(parameters) or 'none'})"
                )
            literals.append(pending)
            names.append(field)
            pending = ""
        literals.append(pending)
        self._head = literals[0]
        self._pairs = tuple(zip(names, literals[1:], strict=True))
        self.fields = tuple(dict.fromkeys(names))
        self.is_static = not names

    def __repr__(self) -> str:
        return f"KeyTemplate({self.template!r}, owner={self.owner!r})"

    def _text(self, value: object, name: str) -> str:
        cls = type(value)
        if cls is str:
            return segment_escape(value)  # type: ignore[arg-type]
        if cls is int:
            return int.__repr__(value)
        if isinstance(value, enum.Enum):
            value = value.value
        if isinstance(value, str):
            return segment_escape(str.__str__(value))
        if isinstance(value, int) and not isinstance(value, bool):
            return int.__repr__(value)
        raise TypeError(
            f"key template {self.template!r} of {self.owner}: placeholder {{{name}}} got a "
            f"value of type {_type_name(cls)!r}; only str, int and Enum members with str or "
            f"int values can fill a placeholder"
        )

    def render(self, bound: Mapping[str, object], *, escape: bool) -> str:
        """Fill the placeholders from ``bound`` (parameter name -> value).

        With ``escape=True`` the values are glob-escaped, so the result is a Redis pattern in
        which only the template's own literal text can hold wildcards.
        """
        if self.is_static:
            return self._head
        parts = [self._head]
        for name, literal in self._pairs:
            text = self._text(bound[name], name)
            parts.append(glob_escape(text) if escape else text)
            parts.append(literal)
        return "".join(parts)


# A substituted value must stay inside its own segment: ``:`` would add segments (so
# ``table="users:data"`` would land in table ``users``'s scope), ``{``/``}`` would move a Redis
# Cluster hash tag, control characters make keys unreadable in logs. Percent-encoding them (and
# ``%`` itself, so the encoding is one-to-one) keeps every other value's key unchanged.
_SEGMENT_ESCAPES = str.maketrans(
    {c: f"%{ord(c):02X}" for c in "%:{}" + "".join(map(chr, [*range(0x20), 0x7F]))}
)
_SEGMENT_SPECIAL = re.compile(r"[%:{}\x00-\x1f\x7f]")


def segment_escape(text: str) -> str:
    """Percent-encode what would let a template value leave its key segment.

    ``%``, ``:``, ``{``, ``}`` and control characters become ``%XX``; everything else is kept,
    so ``"users"`` stays ``users`` and ``"users:data"`` becomes ``users%3Adata``::

        >>> segment_escape("users:data"), segment_escape("users")
        ('users%3Adata', 'users')
    """
    if _SEGMENT_SPECIAL.search(text) is None:
        return text
    return text.translate(_SEGMENT_ESCAPES)


# --- Redis glob patterns -------------------------------------------------------------------

_GLOB_SPECIAL = "*?["
_ESCAPES = str.maketrans({c: "\\" + c for c in "*?[]\\"})


def glob_escape(text: str) -> str:
    """Backslash-escape ``* ? [ ] \\`` so ``text`` matches only itself in a Redis pattern.

    >>> glob_escape("users*")
    'users\\\\*'
    """
    return text.translate(_ESCAPES)


def glob_unescape(text: str) -> str:
    """Undo backslash escapes: ``\\x`` becomes ``x`` (a trailing lone backslash stays)."""
    if "\\" not in text:
        return text
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n:
            i += 1
            c = text[i]
        out.append(c)
        i += 1
    return "".join(out)


def is_glob(pattern: str) -> bool:
    """Return True if ``pattern`` has an unescaped ``*``, ``?`` or ``[``."""
    if not any(c in pattern for c in _GLOB_SPECIAL):
        return False
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if c in _GLOB_SPECIAL:
            return True
        i += 1
    return False


def literal_prefix(pattern: str) -> str:
    """Return the unescaped whole ``:``-segments that precede the first wildcard.

    A pattern without wildcards is returned whole (unescaped)::

        >>> literal_prefix("sql:users:*"), literal_prefix("sql:us*"), literal_prefix("*")
        ('sql:users', 'sql', '')
    """
    done: list[str] = []
    current: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            current.append(pattern[i + 1])
            i += 2
            continue
        if c in _GLOB_SPECIAL:
            return ":".join(done)
        if c == ":":
            done.append("".join(current))
            current = []
        else:
            current.append(c)
        i += 1
    done.append("".join(current))
    return ":".join(done)


def segment_prefixes(key: str) -> tuple[str, ...]:
    """Return ``""`` and every proper prefix of ``key`` that ends before a ``:``.

    >>> segment_prefixes("sql:users:data:ab12")
    ('', 'sql', 'sql:users', 'sql:users:data')
    """
    out = [""]
    i = key.find(":", 1)
    while i != -1:
        out.append(key[:i])
        i = key.find(":", i + 1)
    return tuple(out)


def _byte_class(members: set[int]) -> bytes:
    if not members:
        return b"(?!)"
    ordered = sorted(members)
    parts: list[bytes] = []
    start = prev = ordered[0]
    for b in [*ordered[1:], -1]:
        if b == prev + 1:
            prev = b
            continue
        parts.append(b"\\x%02x" % start if start == prev else b"\\x%02x-\\x%02x" % (start, prev))
        start = prev = b
    return b"[" + b"".join(parts) + b"]"


def _glob_class(pattern: bytes, i: int, members: set[int]) -> tuple[int, bool]:
    # Mirrors the '[' branch of Redis' stringmatchlen(), quirks included: an unclosed class
    # runs to the end of the pattern, "[]" is empty, and a range may end in ']'.
    n = len(pattern)
    negate = i < n and pattern[i] == 0x5E  # ^
    if negate:
        i += 1
    while True:
        if i + 1 < n and pattern[i] == 0x5C:  # backslash
            i += 1
            members.add(pattern[i])
        elif i < n and pattern[i] == 0x5D:  # ]
            break
        elif i >= n:
            i = n - 1
            break
        elif i + 2 < n and pattern[i + 1] == 0x2D:  # a-z
            low, high = sorted((pattern[i], pattern[i + 2]))
            members.update(range(low, high + 1))
            i += 2
        else:
            members.add(pattern[i])
        i += 1
    return i, negate


@functools.lru_cache(maxsize=512)
def _glob_regex(pattern: bytes) -> re.Pattern[bytes]:
    out: list[bytes] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == 0x2A:  # *
            while i + 1 < n and pattern[i + 1] == 0x2A:
                i += 1
            out.append(b".*")
        elif c == 0x3F:  # ?
            out.append(b".")
        elif c == 0x5B:  # [
            members: set[int] = set()
            i, negate = _glob_class(pattern, i + 1, members)
            out.append(_byte_class(set(range(256)) - members if negate else members))
        else:
            if c == 0x5C and i + 1 < n:
                i += 1
                c = pattern[i]
            out.append(re.escape(bytes((c,))))
        i += 1
    return re.compile(b"".join(out), re.DOTALL)


def _as_bytes(text: str | bytes) -> bytes:
    return text if isinstance(text, bytes) else text.encode("utf-8", "surrogateescape")


def matches(pattern: str | bytes, key: str | bytes) -> bool:
    """Return True if Redis ``SCAN ... MATCH pattern`` would return ``key``.

    Implements Redis glob semantics on the UTF-8 bytes (``?`` is one byte, as in Redis):
    ``*``, ``?``, ``[abc]``, ``[^a]``, ``[a-z]`` and backslash escapes. ``fnmatch`` differs
    (no escapes, ``[!a]``), hence this translator.

        >>> matches("sql:users\\\\*:*", "sql:users*:data:1"), matches("sql:us?rs", "sql:users")
        (True, True)
    """
    return _glob_regex(_as_bytes(pattern)).fullmatch(_as_bytes(key)) is not None
