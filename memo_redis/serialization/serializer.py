"""The :class:`Serializer` facade: a codec, compression and the bounds behind encode/decode.

A :class:`Serializer` turns a value into ``(flags, body)`` and back::

    >>> s = Serializer()
    >>> s.encode((1, "a"))
    (0, b'\\xd6\\x01\\x92\\x01\\xa1a')
    >>> s.decode(0, b'\\xd6\\x01\\x92\\x01\\xa1a')
    (1, 'a')
"""

from __future__ import annotations

import functools
import json
import pickle
import zlib
from collections.abc import Callable
from typing import Any, NoReturn

import msgpack

from memo_redis.exceptions import ConfigError, SerializationError

from .bounds import inflate, nested_too_deep, too_deep_message
from .errors import DecodeError, UnsupportedType, unsupported_message
from .format import CODEC_IDS, FLAG_CODEC_MASK, FLAG_ZLIB, Codec
from .json_codec import JSON_ENCODER, PLAIN_JSON_ENCODER, json_encode
from .msgpack_codec import ext_hook, msgpack_decode, msgpack_encode

__all__ = ["Serializer"]

# Module-level, as in msgpack_codec: the inlined default-codec decode looks up one global.
_msgpack_unpackb = msgpack.unpackb


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

    ``codec`` is ``"msgpack"`` (default: exact round trips, see
    :mod:`memo_redis.serialization.msgpack_codec`),
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
            Codec.MSGPACK: msgpack_encode,
            Codec.JSON: functools.partial(json_encode, JSON_ENCODER),
            Codec.PICKLE: _pickle_dumps,
        }
        # Indexed by codec id so decode is one tuple lookup; the pickle slot refuses unless
        # pickle was explicitly chosen.
        unpickle: Callable[[bytes], Any] = _refuse_pickle
        if chosen is Codec.PICKLE:
            unpickle = pickle.loads
        decoders: tuple[Callable[[bytes], Any], ...] = (
            msgpack_decode,
            json.loads,
            unpickle,
            _unknown_codec,
        )
        set_ = object.__setattr__
        set_(self, "codec", chosen)
        set_(self, "compress_threshold", compress_threshold)
        set_(self, "compress_level", compress_level)
        set_(self, "_code", CODEC_IDS[chosen])
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
        if nested_too_deep(value):
            raise SerializationError(too_deep_message(value, self.codec))
        try:
            payload = self._encoder(value)
        except UnsupportedType as exc:
            raise SerializationError(unsupported_message(exc.cls, self.codec, exc.detail)) from exc
        except Exception as exc:  # recursion limits, unpicklable objects
            message = unsupported_message(type(value), self.codec, f": {exc}")
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
            body = inflate(body, max_size)
        try:
            if not flags & FLAG_CODEC_MASK:
                # The default codec is inlined: the hit path pays for no extra Python call.
                return _msgpack_unpackb(body, ext_hook=ext_hook, strict_map_key=False)
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
        if nested_too_deep(value):
            raise SerializationError(too_deep_message(value, Codec.JSON))
        try:
            return json_encode(PLAIN_JSON_ENCODER, value)
        except UnsupportedType as exc:
            message = unsupported_message(exc.cls, Codec.JSON, exc.detail)
            raise SerializationError(message) from exc
        except Exception as exc:
            message = unsupported_message(type(value), Codec.JSON, f": {exc}")
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
