"""Bounds on what is encoded and decoded: the nesting depth of a value and the inflated size.

Containers nested more than :data:`MAX_DEPTH` (64) levels deep are refused by
:meth:`Serializer.encode` with every codec. :meth:`Serializer.decode` never nests more than
:data:`MAX_DEPTH` ext levels (deeper bytes are a :class:`DecodeError`, whoever wrote them), and
with ``max_size`` it inflates at most that many bytes. Every failure to decode is a
:class:`DecodeError`, chained from its cause.
"""

from __future__ import annotations

import gc
import itertools
import zlib

from .errors import DecodeError, unsupported_message
from .format import MAX_DEPTH, Codec

__all__ = ["inflate", "nested_too_deep", "too_deep_message"]


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


def nested_too_deep(value: object) -> bool:
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


def too_deep_message(value: object, codec: Codec) -> str:
    """The error message for ``value`` refused for nesting deeper than :data:`MAX_DEPTH`."""
    return unsupported_message(
        type(value), codec, f": containers nested deeper than MAX_DEPTH={MAX_DEPTH} levels"
    )


def inflate(body: bytes, max_size: int | None) -> bytes:
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
