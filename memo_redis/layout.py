"""Where memo_redis keeps its bookkeeping keys next to the entries it caches.

For an entry ``sql:users:data:ab12`` (its *scope* is everything before the last ``:``):

* generation tokens, one per ancestor scope: ``__memo__:gen:``, ``__memo__:gen:sql``,
  ``__memo__:gen:sql:users``, ``__memo__:gen:sql:users:data``; invalidating ``sql:users:*`` replaces
  ``__memo__:gen:sql:users``;
* a fence ``__memo__:fence:sql:users:data:ab12``, set briefly when that one entry is invalidated;
* the single-flight lock ``__memo__:lock:<stamp>:sql:users:data:ab12``;
* the index ``__memo__:idx:sql:users`` (the set of entries under the first two segments of the
  scope: one table or function), which makes removing the entries of one table cost O(entries),
  not O(keyspace).
"""

from __future__ import annotations

from functools import lru_cache

from .keys import segment_prefixes

INTERNAL_PREFIX = "__memo__:"
_GEN = INTERNAL_PREFIX + "gen:"
_FENCE = INTERNAL_PREFIX + "fence:"
_LOCK = INTERNAL_PREFIX + "lock:"
_INDEX = INTERNAL_PREFIX + "idx:"


def scope_of(key: str) -> str:
    """The key without its last ``:`` segment (``""`` for a key without ``:``)."""
    cut = key.rfind(":")
    return key[:cut] if cut >= 0 else ""


@lru_cache(maxsize=4096)
def generation_keys(scope: str) -> tuple[str, ...]:
    """Generation keys guarding every entry directly inside ``scope``."""
    if not scope:
        return (_GEN,)
    return (*(_GEN + p for p in segment_prefixes(scope)), _GEN + scope)


def generation_key(prefix: str) -> str:
    """The generation key that invalidating ``prefix:*`` (or ``*`` for ``""``) replaces."""
    return _GEN + prefix


def fence_key(key: str) -> str:
    """The fence of one entry."""
    return _FENCE + key


def lock_key(key: str, stamp: bytes) -> str:
    """The single-flight lock of one entry under one set of generations."""
    return f"{_LOCK}{stamp.decode()}:{key}"


@lru_cache(maxsize=4096)
def index_key(scope: str) -> str:
    """The index set of an entry in ``scope`` (``""`` when the scope has fewer than 2 segments).

    Entries are indexed by the first two segments of their scope, whatever its depth:
    ``sql:users:data:ab12``, ``sql:users:count:9f`` and ``sql:users:x`` all go to
    ``__memo__:idx:sql:users``, so the index of a prefix of 2 or more segments holds every entry
    memo_redis wrote under it.
    """
    first, sep, rest = scope.partition(":")
    if not sep:
        return ""
    second = rest.partition(":")[0]
    return f"{_INDEX}{first}:{second}"


def index_key_for_prefix(prefix: str) -> str:
    """The index holding the entries matched by ``prefix:*`` (``""`` for a prefix of fewer than
    2 segments, which has no index)."""
    return index_key(prefix)


def is_internal(key: str | bytes) -> bool:
    """True for memo_redis's own bookkeeping keys (never deleted by a pattern)."""
    if isinstance(key, bytes):
        return key.startswith(b"__memo__:")
    return key.startswith(INTERNAL_PREFIX)
