"""TTL values: default TTLs per category and validation of user-given TTLs."""

from __future__ import annotations

from datetime import timedelta
from types import MappingProxyType
from typing import Any, Final

DEFAULT_TTLS: Final = MappingProxyType({"data": 300, "schema": 3600, "metadata": 7200, "count": 60})
"""Default TTL in seconds per category, as in the seed design."""

OTHER_CATEGORY_TTL: Final = 300
"""Default TTL in seconds for a category not listed in :data:`DEFAULT_TTLS`."""

TTL = int | float | timedelta | None


class _CategoryDefault:
    __slots__ = ()

    def __repr__(self) -> str:
        return "CATEGORY_DEFAULT"


CATEGORY_DEFAULT: Final[Any] = _CategoryDefault()
"""A ``ttl`` argument meaning "the default TTL of the entry's category"."""


def default_ttl(category: str) -> int:
    """The default TTL (seconds) of a category."""
    return DEFAULT_TTLS.get(category, OTHER_CATEGORY_TTL)


def to_milliseconds(ttl: TTL, param: str = "ttl") -> int | None:
    """Validate a TTL (seconds, or a timedelta) and return it in milliseconds; ``None`` = no expiry.

    >>> to_milliseconds(1.5)
    1500
    """
    if ttl is None:
        return None
    if isinstance(ttl, timedelta):
        seconds = ttl.total_seconds()
    elif isinstance(ttl, bool) or not isinstance(ttl, (int, float)):
        raise TypeError(
            f"{param} must be a number of seconds, a timedelta or None, got {type(ttl).__name__}"
        )
    else:
        seconds = float(ttl)
    if not seconds > 0 or seconds == float("inf"):
        raise ValueError(f"{param} must be > 0 seconds (or None for no expiry), got {ttl!r}")
    return max(1, round(seconds * 1000))
