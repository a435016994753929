"""What the codecs raise: :class:`DecodeError`, and the messages for values they cannot encode."""

from __future__ import annotations

import datetime as _dt
import decimal
import uuid

from memo_redis.exceptions import MemoRedisError

from .format import Codec

__all__ = ["DecodeError", "UnsupportedType", "unsupported_message"]


class DecodeError(MemoRedisError, ValueError):
    """A stored body cannot be decoded: corrupt or foreign bytes, an unknown codec id, pickle
    data read by a serializer not configured for pickle, a value nested deeper than
    :data:`MAX_DEPTH` or larger than the reader's size limit. Every failure of a decoder (including
    ``RecursionError`` and ``MemoryError``) is raised as this type, chained from its cause; callers
    treat it as a cache miss."""


class UnsupportedType(TypeError):
    """Raised inside the codecs' hooks to report the type that has no encoding."""

    def __init__(self, cls: type, detail: str = "") -> None:
        super().__init__(cls.__qualname__)
        self.cls = cls
        self.detail = detail


_BUILTIN_BASES: tuple[type, ...] = (
    int, float, str, bytes, list, tuple, dict, set, frozenset,
    _dt.datetime, _dt.date, _dt.time, _dt.timedelta, decimal.Decimal, uuid.UUID,
)  # fmt: skip


def unsupported_message(cls: type, codec: Codec, detail: str = "") -> str:
    """The error message for a value of type ``cls`` that ``codec`` cannot encode."""
    message = f"cannot serialize value of type {cls.__qualname__!r} with codec {codec.value}"
    if detail:
        return f"{message}{detail}"
    if codec is Codec.MSGPACK and issubclass(cls, _BUILTIN_BASES):
        return (
            f"{message} (subclasses of built-in types are not supported: convert the value to "
            "its base type, or use codec='pickle')"
        )
    return message
