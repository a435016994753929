"""Parameter placeholders (``%s``, ``%(name)s``, ``?``, ``?NNN``, ``:name``) by dialect."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .parsing import Token

__all__ = ["PLACEHOLDER_RE", "Placeholder", "is_opaque"]

# One alternative per parameter style; which are active depends on the dialect.
_STYLE_PATTERNS: dict[str, str] = {
    "pyformat": r"(?P<pct>%%)|%\((?P<pyname>\w+)\)s|(?P<pyseq>%s)(?!\w)",
    "qmark": r"(?P<qmark>\?)(?!\d)",
    "numeric": r"\?(?P<qnum>\d+)",
    "named": r"(?<![:\w]):(?P<colon>[A-Za-z_]\w*)",
}
_STYLES: dict[str | None, tuple[str, ...]] = {
    "postgres": ("pyformat",),  # $1 is native to sqlglot's postgres dialect; ? is an operator
    "mysql": ("pyformat", "qmark"),
    "sqlite": ("numeric", "qmark", "named"),
    None: ("pyformat", "qmark", "named"),
}
PLACEHOLDER_RE: dict[str | None, re.Pattern[str]] = {
    d: re.compile("|".join(_STYLE_PATTERNS[s] for s in styles)) for d, styles in _STYLES.items()
}


@dataclass(frozen=True)
class Placeholder:
    """A parameter placeholder found in the text, kept exactly as written."""

    text: str
    positional: bool  # %s or ? : its meaning is its position


def is_opaque(token: Token, sql: str) -> bool:
    """Strings, quoted identifiers: text a placeholder scan must not look into."""
    kind = token.token_type.name
    if kind.endswith("STRING") or kind == "IDENTIFIER":
        return True
    return sql[token.start : token.end + 1] != token.text
