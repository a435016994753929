"""The seed deployment's SQL keys: ``sql:{table}:data:{digest}``.

:func:`build_cache_key` reproduces the original algorithm byte for byte::

    >>> build_cache_key("users", ["id", "name"], [])
    'sql:users:data:2dd67780'
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

from memo_redis.exceptions import ConfigError

__all__ = ["build_cache_key", "seed_digest"]


def _check_digest_length(digest_length: int) -> None:
    if (
        isinstance(digest_length, bool)
        or not isinstance(digest_length, int)
        or not 1 <= digest_length <= 64
    ):
        raise ConfigError(
            f"digest_length must be an int from 1 to 64 (hex characters of a sha256), "
            f"got {digest_length!r}"
        )


def _sorted_names(values: Iterable[str], param: str) -> list[str]:
    if isinstance(values, (str, bytes)):
        raise TypeError(
            f"{param} must be an iterable of str, not a bare {type(values).__name__} "
            f"({values!r}); write [{values!r}]"
        )
    return sorted(values)


def seed_digest(
    table: str, columns: Iterable[str], where: Iterable[str], digest_length: int = 8
) -> str:
    """Return the seed's parameter digest: the first ``digest_length`` hex chars of a sha256.

    The digest covers ``json.dumps({"table", "columns": sorted, "where": sorted},
    sort_keys=True)``, so column and condition order never matter::

        >>> seed_digest("users", ["name", "id"], [])
        '2dd67780'
    """
    _check_digest_length(digest_length)
    if not isinstance(table, str):
        raise TypeError(f"table must be a str, got {type(table).__name__} {table!r}")
    params = {
        "table": table,
        "columns": _sorted_names(columns, "columns"),
        "where": _sorted_names(where, "where"),
    }
    params_json = json.dumps(params, sort_keys=True)
    return hashlib.sha256(params_json.encode()).hexdigest()[:digest_length]


def build_cache_key(
    table: str, columns: Iterable[str], where: Iterable[str], *, digest_length: int = 8
) -> str:
    """Return the seed's key for a SQL read: ``sql:{table}:data:{digest}``.

    Identical to the original algorithm, so keys written by it stay readable::

        >>> build_cache_key("users", ["id", "name"], ["active=1"])
        'sql:users:data:cb668aec'
    """
    return f"sql:{table}:data:{seed_digest(table, columns, where, digest_length)}"
