"""Pure key building: argument binding, canonical encoding, digests, templates and glob patterns.

Nothing here talks to Redis or reads the environment. Everything that does not depend on a
call's arguments (signatures, ignored names, compiled templates) is computed once per decorated
function, because key building sits on the cache-hit path.

The package's modules, one concern each:

* :mod:`~memo_redis.keys.seed`: the seed deployment's SQL keys (:func:`build_cache_key`);
* :mod:`~memo_redis.keys.canonical`: the canonical argument encoding and its digest;
* :mod:`~memo_redis.keys.binding`: which call arguments make up a key (:class:`ArgumentBinder`);
* :mod:`~memo_redis.keys.templates`: key templates and key segment escaping;
* :mod:`~memo_redis.keys.globs`: Redis glob patterns, as ``SCAN ... MATCH`` reads them.
"""

from __future__ import annotations

from .binding import ArgumentBinder
from .canonical import MAX_DEPTH, canonical_bytes, canonical_encode, fingerprint_of
from .globs import (
    glob_escape,
    glob_unescape,
    is_glob,
    literal_prefix,
    matches,
    scope_pattern,
    segment_prefixes,
)
from .seed import build_cache_key, seed_digest
from .templates import KeyTemplate, require_utf8, segment_escape

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
    "require_utf8",
    "scope_pattern",
    "seed_digest",
    "segment_escape",
    "segment_prefixes",
]
