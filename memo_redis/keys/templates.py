"""Key templates (``"sql:{table}:*"``) and the escaping that keeps a value in its segment."""

from __future__ import annotations

import enum
import re
import reprlib
import string
from collections.abc import Collection, Mapping

from memo_redis.exceptions import ConfigError

from .canonical import type_name
from .globs import glob_escape

__all__ = ["KeyTemplate", "require_utf8", "segment_escape"]


class KeyTemplate:
    """A ``str.format``-style template whose placeholders name parameters of ``owner``.

    Only plain names are allowed (``{table}``; ``{{`` and ``}}`` are literal braces). It is
    checked when built, so a typo fails when the decorator is applied::

        >>> t = KeyTemplate("sql:{table}:*", ["table", "limit"], owner="app.fetch")
        >>> t.render({"table": "a[1]", "limit": 5}, escape=True)
        'sql:a\\\\[1\\\\]:*'
    """

    __slots__ = ("_head", "_pairs", "fields", "is_static", "owner", "template")

    fields: tuple[str, ...]
    is_static: bool

    def __init__(self, template: str, parameters: Collection[str], *, owner: str) -> None:
        if not isinstance(template, str):
            raise ConfigError(
                f"key template of {owner} must be a str, got {type(template).__name__} {template!r}"
            )
        require_utf8(template, f"key template of {owner}")
        self.template = template
        self.owner = owner
        try:
            parsed = list(string.Formatter().parse(template))
        except ValueError as exc:
            raise ConfigError(f"key template {template!r} of {owner} is malformed: {exc}") from exc
        literals: list[str] = []
        names: list[str] = []
        pending = ""
        for literal, field, spec, conversion in parsed:
            pending += literal
            if field is None:
                continue
            if not field.isidentifier() or spec or conversion:
                shown = (
                    "{"
                    + field
                    + (f"!{conversion}" if conversion else "")
                    + (f":{spec}" if spec else "")
                    + "}"
                )
                raise ConfigError(
                    f"key template {template!r} of {owner}: placeholder {shown} must be a "
                    f"plain parameter name (no attribute, index, conversion or format spec)"
                )
            if field not in parameters:
                raise ConfigError(
                    f"key template {template!r} of {owner}: placeholder {{{field}}} names no "
                    f"parameter of {owner} (parameters: {', '.join(parameters) or 'none'})"
                )
            literals.append(pending)
            names.append(field)
            pending = ""
        literals.append(pending)
        self._head = literals[0]
        self._pairs = tuple(zip(names, literals[1:], strict=True))
        self.fields = tuple(dict.fromkeys(names))
        self.is_static = not names

    def __repr__(self) -> str:
        return f"KeyTemplate({self.template!r}, owner={self.owner!r})"

    def _text(self, value: object, name: str) -> str:
        cls = type(value)
        if cls is str:
            return segment_escape(value)  # type: ignore[arg-type]
        if cls is int:
            return int.__repr__(value)
        if isinstance(value, enum.Enum):
            value = value.value
        if isinstance(value, str):
            return segment_escape(str.__str__(value))
        if isinstance(value, int) and not isinstance(value, bool):
            return int.__repr__(value)
        raise TypeError(
            f"key template {self.template!r} of {self.owner}: placeholder {{{name}}} got a "
            f"value of type {type_name(cls)!r}; only str, int and Enum members with str or "
            f"int values can fill a placeholder"
        )

    def render(self, bound: Mapping[str, object], *, escape: bool) -> str:
        """Fill the placeholders from ``bound`` (parameter name -> value).

        With ``escape=True`` the values are glob-escaped, so the result is a Redis pattern in
        which only the template's own literal text can hold wildcards.
        """
        if self.is_static:
            return self._head
        parts = [self._head]
        for name, literal in self._pairs:
            text = self._text(bound[name], name)
            parts.append(glob_escape(text) if escape else text)
            parts.append(literal)
        rendered = "".join(parts)
        if rendered.startswith(_RESERVED) and rendered[len(_RESERVED):][:1] in ("", ":"):
            filled = ", ".join(f"{{{name}}}={_SHORT.repr(bound[name])}" for name in self.fields)
            raise ValueError(
                f"key template {self.template!r} of {self.owner}: {filled} would put the key "
                f"in the {_RESERVED + ':'!r} namespace, reserved for memo_redis's bookkeeping "
                "keys (generations, fences, locks, indexes)"
            )
        return rendered


# A substituted value must stay inside its own segment: ``:`` would add segments (so
# ``table="users:data"`` would land in table ``users``'s scope), ``{``/``}`` would move a Redis
# Cluster hash tag, control characters make keys unreadable in logs, and a lone surrogate (text
# decoded with ``surrogateescape``, a JSON ``"\ud800"``) cannot be sent to Redis at all.
# Percent-encoding them (surrogates as their ``surrogatepass`` bytes; ``%`` itself too, so the
# encoding is one-to-one) keeps every other value's key unchanged.
_SEGMENT_ESCAPES = str.maketrans(
    {c: "".join(f"%{b:02X}" for b in c.encode("utf-8", "surrogatepass"))
     for c in "%:{}" + "".join(map(chr, [*range(0x20), 0x7F, *range(0xD800, 0xE000)]))}
)
_SEGMENT_SPECIAL = re.compile(r"[%:{}\x00-\x1f\x7f\ud800-\udfff]")
_RESERVED = "__memo__"
"""The first segment of memo_redis's bookkeeping keys (``memo_redis.layout.INTERNAL_PREFIX``,
a floor above): no rendered template may start with it."""
_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 60


def require_utf8(text: str, what: str) -> None:
    """Raise :class:`ConfigError` naming ``what`` when ``text`` holds a lone surrogate: such
    text cannot be encoded as UTF-8, so no key made of it could ever be sent to Redis (each
    call would fail instead of this one configuration error).
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ConfigError(
            f"{what} {text!r} holds a lone surrogate ({text[exc.start]!r} at index "
            f"{exc.start}), which cannot be encoded as UTF-8 for Redis"
        ) from None


def segment_escape(text: str) -> str:
    """Percent-encode what would let a template value leave its key segment.

    ``%``, ``:``, ``{``, ``}`` and control characters become ``%XX``, a lone surrogate the
    ``%XX%XX%XX`` of its ``surrogatepass`` bytes; everything else is kept, so ``"users"`` stays
    ``users`` and ``"users:data"`` becomes ``users%3Adata``::

        >>> segment_escape("users:data"), segment_escape("users")
        ('users%3Adata', 'users')
    """
    if _SEGMENT_SPECIAL.search(text) is None:
        return text
    return text.translate(_SEGMENT_ESCAPES)
