"""Value codecs: msgpack (the default), JSON, and opt-in pickle, with optional zlib compression.

The package's modules, one concern each:

* :mod:`~memo_redis.serialization.format`: flag bits, codec ids and :data:`MAX_DEPTH`;
* :mod:`~memo_redis.serialization.errors`: :class:`DecodeError` and unsupported-type messages;
* :mod:`~memo_redis.serialization.msgpack_codec`: the msgpack codec and its ext types;
* :mod:`~memo_redis.serialization.json_codec`: the JSON codecs;
* :mod:`~memo_redis.serialization.bounds`: the nesting limit and the bounded inflate;
* :mod:`~memo_redis.serialization.serializer`: the :class:`Serializer` that combines them.
"""

from __future__ import annotations

from .errors import DecodeError
from .format import FLAG_CODEC_MASK, FLAG_ZLIB, MAX_DEPTH, Codec
from .serializer import Serializer

__all__ = ["FLAG_CODEC_MASK", "FLAG_ZLIB", "MAX_DEPTH", "Codec", "DecodeError", "Serializer"]
