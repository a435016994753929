"""The storage format's constants: flag bits, codec ids and the nesting limit.

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
"""

from __future__ import annotations

import enum

__all__ = ["CODEC_IDS", "FLAG_CODEC_MASK", "FLAG_ZLIB", "MAX_DEPTH", "Codec"]

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


CODEC_IDS: dict[Codec, int] = {Codec.MSGPACK: 0, Codec.JSON: 1, Codec.PICKLE: 2}
