"""Pure key building (being split into modules; see memo_redis/keys/canonical.py for now)."""

from __future__ import annotations

from .canonical import (
    MAX_DEPTH,
    ArgumentBinder,
    KeyTemplate,
    build_cache_key,
    canonical_bytes,
    canonical_encode,
    fingerprint_of,
    glob_escape,
    glob_unescape,
    is_glob,
    literal_prefix,
    matches,
    seed_digest,
    segment_escape,
    segment_prefixes,
)

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
