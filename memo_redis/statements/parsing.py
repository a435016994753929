"""What the analysis uses of sqlglot's tokenizer and parser, and how a step refuses."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from sqlglot import exp

__all__ = ["Named", "Refused", "Token", "first_line", "parse_all"]


class Named(Protocol):
    """What is used of a sqlglot token type: its name."""

    @property
    def name(self) -> str: ...


class Token(Protocol):
    """What is used of a sqlglot token (its class moved between sqlglot versions)."""

    @property
    def token_type(self) -> Named: ...
    @property
    def text(self) -> str: ...
    @property
    def start(self) -> int: ...
    @property
    def end(self) -> int: ...


class Refused(Exception):
    """Internal: the reason a statement is refused (becomes UnsupportedStatement)."""


def parse_all(text: str, dialect: str | None) -> list[exp.Expr]:
    """The statements of ``text`` (empty ones dropped); raises on any parse error."""
    import sqlglot
    from sqlglot.errors import ErrorLevel

    trees = sqlglot.parse(text, read=dialect, error_level=ErrorLevel.RAISE)
    return [t for t in trees if t is not None]


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message, or its type's name when the message is empty."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
