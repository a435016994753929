"""Value codecs (being split into modules; see memo_redis/serialization/serializer.py for now)."""

from __future__ import annotations

from .serializer import FLAG_CODEC_MASK, FLAG_ZLIB, MAX_DEPTH, Codec, DecodeError, Serializer

__all__ = ["FLAG_CODEC_MASK", "FLAG_ZLIB", "MAX_DEPTH", "Codec", "DecodeError", "Serializer"]
