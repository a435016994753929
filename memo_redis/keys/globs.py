"""Redis glob patterns: escaping, literal prefixes, key segments and ``SCAN MATCH`` semantics."""

from __future__ import annotations

import functools
import re

__all__ = [
    "glob_escape",
    "glob_unescape",
    "is_glob",
    "literal_prefix",
    "matches",
    "scope_pattern",
    "segment_prefixes",
]

_GLOB_SPECIAL = "*?["
_ESCAPES = str.maketrans({c: "\\" + c for c in "*?[]\\"})


def glob_escape(text: str) -> str:
    """Backslash-escape ``* ? [ ] \\`` so ``text`` matches only itself in a Redis pattern.

    >>> glob_escape("users*")
    'users\\\\*'
    """
    return text.translate(_ESCAPES)


def glob_unescape(text: str) -> str:
    """Undo backslash escapes: ``\\x`` becomes ``x`` (a trailing lone backslash stays)."""
    if "\\" not in text:
        return text
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n:
            i += 1
            c = text[i]
        out.append(c)
        i += 1
    return "".join(out)


def is_glob(pattern: str) -> bool:
    """Return True if ``pattern`` has an unescaped ``*``, ``?`` or ``[``."""
    if not any(c in pattern for c in _GLOB_SPECIAL):
        return False
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if c in _GLOB_SPECIAL:
            return True
        i += 1
    return False


def literal_prefix(pattern: str) -> str:
    """Return the unescaped whole ``:``-segments that precede the first wildcard.

    A pattern without wildcards is returned whole (unescaped)::

        >>> literal_prefix("sql:users:*"), literal_prefix("sql:us*"), literal_prefix("*")
        ('sql:users', 'sql', '')
    """
    done: list[str] = []
    current: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            current.append(pattern[i + 1])
            i += 2
            continue
        if c in _GLOB_SPECIAL:
            return ":".join(done)
        if c == ":":
            done.append("".join(current))
            current = []
        else:
            current.append(c)
        i += 1
    done.append("".join(current))
    return ":".join(done)


def scope_pattern(pattern: str) -> str | None:
    """The scope a ``prefix:*`` pattern names, whose generation invalidating it replaces
    (``""`` for ``*``); None for any other glob.

        >>> scope_pattern("sql:users:*"), scope_pattern("*"), scope_pattern("sql:us*")
        ('sql:users', '', None)
    """
    prefix = literal_prefix(pattern)
    return prefix if pattern == (glob_escape(prefix) + ":*" if prefix else "*") else None


def segment_prefixes(key: str) -> tuple[str, ...]:
    """Return ``""`` and every proper prefix of ``key`` that ends before a ``:``.

    >>> segment_prefixes("sql:users:data:ab12")
    ('', 'sql', 'sql:users', 'sql:users:data')
    """
    out = [""]
    i = key.find(":", 1)
    while i != -1:
        out.append(key[:i])
        i = key.find(":", i + 1)
    return tuple(out)


def _byte_class(members: set[int]) -> bytes:
    if not members:
        return b"(?!)"
    ordered = sorted(members)
    parts: list[bytes] = []
    start = prev = ordered[0]
    for b in [*ordered[1:], -1]:
        if b == prev + 1:
            prev = b
            continue
        parts.append(b"\\x%02x" % start if start == prev else b"\\x%02x-\\x%02x" % (start, prev))
        start = prev = b
    return b"[" + b"".join(parts) + b"]"


def _glob_class(pattern: bytes, i: int, members: set[int]) -> tuple[int, bool]:
    # Mirrors the '[' branch of Redis' stringmatchlen(), quirks included: an unclosed class
    # runs to the end of the pattern, "[]" is empty, and a range may end in ']'.
    n = len(pattern)
    negate = i < n and pattern[i] == 0x5E  # ^
    if negate:
        i += 1
    while True:
        if i + 1 < n and pattern[i] == 0x5C:  # backslash
            i += 1
            members.add(pattern[i])
        elif i < n and pattern[i] == 0x5D:  # ]
            break
        elif i >= n:
            i = n - 1
            break
        elif i + 2 < n and pattern[i + 1] == 0x2D:  # a-z
            low, high = sorted((pattern[i], pattern[i + 2]))
            members.update(range(low, high + 1))
            i += 2
        else:
            members.add(pattern[i])
        i += 1
    return i, negate


@functools.lru_cache(maxsize=512)
def _glob_regex(pattern: bytes) -> re.Pattern[bytes]:
    out: list[bytes] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == 0x2A:  # *
            while i + 1 < n and pattern[i + 1] == 0x2A:
                i += 1
            out.append(b".*")
        elif c == 0x3F:  # ?
            out.append(b".")
        elif c == 0x5B:  # [
            members: set[int] = set()
            i, negate = _glob_class(pattern, i + 1, members)
            out.append(_byte_class(set(range(256)) - members if negate else members))
        else:
            if c == 0x5C and i + 1 < n:
                i += 1
                c = pattern[i]
            out.append(re.escape(bytes((c,))))
        i += 1
    return re.compile(b"".join(out), re.DOTALL)


def _as_bytes(text: str | bytes) -> bytes:
    return text if isinstance(text, bytes) else text.encode("utf-8", "surrogateescape")


def matches(pattern: str | bytes, key: str | bytes) -> bool:
    """Return True if Redis ``SCAN ... MATCH pattern`` would return ``key``.

    Implements Redis glob semantics on the UTF-8 bytes (``?`` is one byte, as in Redis):
    ``*``, ``?``, ``[abc]``, ``[^a]``, ``[a-z]`` and backslash escapes. ``fnmatch`` differs
    (no escapes, ``[!a]``), hence this translator.

        >>> matches("sql:users\\\\*:*", "sql:users*:data:1"), matches("sql:us?rs", "sql:users")
        (True, True)
    """
    return _glob_regex(_as_bytes(pattern)).fullmatch(_as_bytes(key)) is not None
