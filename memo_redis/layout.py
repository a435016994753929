"""Where memo_redis keeps its bookkeeping keys next to the entries it caches.

For an entry ``sql:users:data:ab12`` (its *scope* is everything before the last ``:``):

* generation tokens, one per ancestor scope: ``__memo__:gen:``, ``__memo__:gen:sql``,
  ``__memo__:gen:sql:users``, ``__memo__:gen:sql:users:data``; invalidating ``sql:users:*`` replaces
  ``__memo__:gen:sql:users``;
* a fence ``__memo__:fence:sql:users:data:ab12``, a random token armed (with a TTL) before a
  computation of that entry runs; the computation's store needs it still there and unchanged, a
  successful store deletes it, and invalidating the entry deletes it (with the entry);
* the single-flight lock ``__memo__:lock:<stamp><fence>:sql:users:data:ab12``, named after the
  generations and the fence its computation observed;
* the indexes, which make removing entries cost O(entries), not O(keyspace): an entry whose
  scope has two segments (``sql:users:ab12``) is listed in its table's index
  ``__memo__:idx:sql:users``; a deeper one (``sql:users:data:ab12``, ``sql:users:7:data:ab12``)
  in the index of its first three segments, its *row* (``__memo__:idx:sql:users:data``,
  ``__memo__:idx:sql:users:7``), and the table's index lists that row index. Invalidating a table
  drains its index and the row indexes it lists; invalidating a row (``sql:users:7:*``) drains
  only that row's index.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from .exceptions import ConfigError
from .keys import literal_prefix, segment_prefixes

INTERNAL_PREFIX = "__memo__:"
_GEN = INTERNAL_PREFIX + "gen:"
_FENCE = INTERNAL_PREFIX + "fence:"
FENCE_PREFIX = _FENCE
"""The start of every fence key."""
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


ROW_INDEX_PREFIX = _INDEX
"""The start of every index name: what a table index's members that are row indexes start with
(entry names never do)."""


@lru_cache(maxsize=4096)
def index_keys(scope: str) -> tuple[str, str]:
    """The index set of an entry in ``scope`` and the table index that lists that set.

    ``("", "")`` when the scope has fewer than 2 segments (no index); a 2-segment scope's entries
    are listed in the table index itself (``sql:users:x`` in ``__memo__:idx:sql:users``, no
    parent); deeper ones in their row's index, the first three segments
    (``sql:users:7:data:ab12`` in ``__memo__:idx:sql:users:7``), listed in the table index.
    """
    parts = scope.split(":", 3)
    if len(parts) < 2:
        return "", ""
    table = f"{_INDEX}{parts[0]}:{parts[1]}"
    if len(parts) == 2:
        return table, ""
    return f"{table}:{parts[2]}", table


def index_key(scope: str) -> str:
    """The index set an entry in ``scope`` is listed in (``""``: none)."""
    return index_keys(scope)[0]


def index_key_for_prefix(prefix: str) -> str:
    """The index holding the entries matched by ``prefix:*``: the table's for a 2-segment
    prefix, the row's (its first three segments) for a deeper one; ``""`` for a prefix of fewer
    than 2 segments, which has no index."""
    return index_key(prefix)


def is_internal(key: str | bytes) -> bool:
    """True for memo_redis's own bookkeeping keys (never deleted by a pattern)."""
    if isinstance(key, bytes):
        return key.startswith(b"__memo__:")
    return key.startswith(INTERNAL_PREFIX)


def _group(key: str) -> str:
    """The first two ``:`` segments of ``key`` (the whole key when it has fewer)."""
    first = key.find(":")
    if first < 0:
        return key
    second = key.find(":", first + 1)
    return key if second < 0 else key[:second]


class KeyLayout:
    """Names of the keys one entry involves on a single server (or Sentinel): as documented above.

    Every method takes the *logical* key, the one users and patterns see.
    """

    tagged = False

    def physical(self, key: str) -> str:
        """The Redis key holding ``key``'s value."""
        return key

    def logical(self, key: bytes) -> bytes:
        """The logical key of a physical one (as found by SCAN)."""
        return key

    def generation_keys(self, key: str) -> tuple[str, ...]:
        """Generation keys guarding ``key``: one per ancestor scope."""
        return generation_keys(scope_of(key))

    def lookup_keys(self, key: str) -> list[str]:
        """What a lookup reads in one MGET: the generations, then the value (a hit needs no
        fence: the fence only guards a computation's store)."""
        return [*self.generation_keys(key), self.physical(key)]

    def fence_key(self, key: str) -> str:
        """The fence of one entry."""
        return _FENCE + key

    def lock_key(self, key: str, stamp: bytes) -> str:
        """The single-flight lock of one entry under one set of generations."""
        return lock_key(key, stamp)

    def index_key(self, key: str) -> str:
        """The index set ``key`` is recorded in (``""`` for none)."""
        return index_key(scope_of(key))

    def index_keys(self, key: str) -> tuple[str, str]:
        """The index set ``key`` is recorded in and the table index listing that set (``""``
        for none)."""
        return index_keys(scope_of(key))

    def index_key_for_prefix(self, prefix: str) -> str:
        """The index holding the entries under ``prefix`` (``""`` when there is none)."""
        return index_key(prefix)

    def group(self, key: str) -> str | None:
        """The hash-tag group of ``key`` (None: no tags in this layout)."""
        return None

    def bump_keys(self, prefix: str, groups: Iterable[str]) -> list[str]:
        """The generation keys to replace when invalidating ``prefix:*`` (``*`` for ``""``)."""
        return [_GEN + prefix]

    def needs_registry(self, prefix: str) -> bool:
        """Does invalidating ``prefix:*`` need the registry of groups?"""
        return False


class ClusterLayout(KeyLayout):
    """Names for Redis Cluster: every key of one entry shares the hash tag of its *group*.

    The group is the key's first two segments: ``sql:users:data:ab12`` is stored as
    ``{sql:users}:data:ab12``, next to ``__memo__:gen:{sql:users}|sql:users`` and the other keys a
    lookup or a store touches atomically. Each group keeps its own copy of the generations of the
    scopes above it (``|``, ``|sql``); invalidating ``sql:*`` replaces the copy in every group
    under ``sql`` (listed in the ``__memo__:groups`` registry), ``sql:users:*`` only its own.
    """

    tagged = True

    def physical(self, key: str) -> str:
        group = _group(key)
        return "{" + group + "}" + key[len(group):]

    def logical(self, key: bytes) -> bytes:
        if key.startswith(b"{"):
            end = key.find(b"}")
            if end > 0:
                return key[1:end] + key[end + 1:]
        return key

    def generation_keys(self, key: str) -> tuple[str, ...]:
        return _cluster_generation_keys(_group(key), scope_of(key))

    def fence_key(self, key: str) -> str:
        return f"{_FENCE}{{{_group(key)}}}|{key}"

    def lock_key(self, key: str, stamp: bytes) -> str:
        return f"{_LOCK}{{{_group(key)}}}{stamp.decode()}:{key}"

    def index_key(self, key: str) -> str:
        return f"{_INDEX}{{{_group(key)}}}"

    def index_keys(self, key: str) -> tuple[str, str]:
        return self.index_key(key), ""  # one index per group (table), no rows

    def index_key_for_prefix(self, prefix: str) -> str:
        return f"{_INDEX}{{{prefix}}}" if prefix.count(":") == 1 else ""

    def group(self, key: str) -> str | None:
        return _group(key)

    def bump_keys(self, prefix: str, groups: Iterable[str]) -> list[str]:
        if prefix.count(":") >= 1:
            return [f"{_GEN}{{{_group(prefix)}}}|{prefix}"]
        under = prefix + ":"
        return [f"{_GEN}{{{g}}}|{prefix}" for g in groups
                if not prefix or g == prefix or g.startswith(under)]

    def needs_registry(self, prefix: str) -> bool:
        return prefix.count(":") == 0


@lru_cache(maxsize=4096)
def _cluster_generation_keys(group: str, scope: str) -> tuple[str, ...]:
    tag = f"{_GEN}{{{group}}}|"
    if not scope:
        return (tag,)
    return (*(tag + p for p in segment_prefixes(scope)), tag + scope)


GROUPS_KEY = INTERNAL_PREFIX + "groups"
"""The registry of hash-tag groups (cluster layout only)."""


def check_key(key: object) -> None:
    """Refuse a key that is not a non-empty str, or that is in the reserved namespace."""
    if not isinstance(key, str):
        raise TypeError(f"key must be a str, got {type(key).__name__} {key!r}")
    if not key:
        raise ValueError("key must be a non-empty str, got ''")
    if key.startswith(INTERNAL_PREFIX):
        raise ConfigError(
            f"key {key!r} is in the {INTERNAL_PREFIX!r} namespace, reserved for "
            "memo_redis's bookkeeping (generations, fences, locks, indexes): use another key"
        )


def check_pattern(pattern: str) -> None:
    """Refuse a glob whose literal start is in the reserved ``__memo__:`` namespace."""
    head = literal_prefix(pattern)
    if head == INTERNAL_PREFIX[:-1] or head.startswith(INTERNAL_PREFIX):
        raise ConfigError(
            f"pattern {pattern!r} is in the {INTERNAL_PREFIX!r} namespace, reserved for "
            "memo_redis's bookkeeping (generations, fences, locks, indexes); '*' never deletes "
            "those keys"
        )
