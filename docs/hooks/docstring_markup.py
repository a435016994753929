"""MkDocs hook: render the reST-flavoured markup of memo_redis's docstrings as Markdown.

The docstrings are Google-style prose written for ``help()`` and Sphinx habits: doctest
sessions (``>>> ...``), roles (``:class:`RedisCaching```) and ``::`` before literal blocks.
Markdown would show a doctest as nested block quotes and a role as raw text, so this hook adds
a Markdown preprocessor (to the pages and, through mkdocstrings, to every rendered docstring)
that, outside fenced code:

- wraps each doctest session (its ``>>>``/``...`` lines and their output) in a ``pycon`` fence,
  without the ``# doctest:`` directives;
- turns ``:role:`~a.b.C``` into ```C``` and ``:role:`a.b.C``` into ```a.b.C```;
- ends a paragraph introducing an indented literal block with ``:`` instead of ``::``.
"""

from __future__ import annotations

import re
from typing import Any

from markdown import Markdown
from markdown.extensions import Extension
from markdown.preprocessors import Preprocessor
from mkdocs.plugins import event_priority

_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|data|attr|exc|obj|const):`(~?)([^`]+)`")
_DIRECTIVE = re.compile(r"\s*#\s*doctest:.*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


def _role(match: re.Match[str]) -> str:
    target = match.group(2)
    return f"`{target.rsplit('.', 1)[-1] if match.group(1) else target}`"


class _DocstringMarkup(Preprocessor):
    def run(self, lines: list[str]) -> list[str]:
        out: list[str] = []
        fence: str | None = None
        i = 0
        while i < len(lines):
            line = lines[i]
            opening = _FENCE.match(line)
            if fence is not None:
                if opening and opening.group(1) == fence:
                    fence = None
                out.append(line)
                i += 1
                continue
            if opening:
                fence = opening.group(1)
                out.append(line)
                i += 1
                continue
            if line.lstrip().startswith(">>>"):
                indent = line[: len(line) - len(line.lstrip())]
                session: list[str] = []
                while i < len(lines) and lines[i].strip():
                    session.append(_DIRECTIVE.sub("", lines[i][len(indent):]))
                    i += 1
                if out and out[-1].strip():
                    out.append("")
                out.extend([f"{indent}```pycon", *(indent + s for s in session),
                            f"{indent}```", ""])
                continue
            line = _ROLE.sub(_role, line)
            if line.endswith("::") and not line.endswith(":::"):
                following = next((n for n in lines[i + 1:] if n.strip()), "")
                if following.startswith("    ") and not line.lstrip().startswith(":::"):
                    line = line[:-1]
            out.append(line)
            i += 1
        return out


class DocstringMarkupExtension(Extension):
    """The Markdown extension carrying :class:`_DocstringMarkup`."""

    def extendMarkdown(self, md: Markdown) -> None:
        # Before the fenced-code preprocessors (priority 25), so the fences it adds are seen.
        md.preprocessors.register(_DocstringMarkup(md), "memo_redis_docstring_markup", 40)


@event_priority(100)  # before mkdocstrings reads the Markdown extensions
def on_config(config: Any) -> Any:
    config.markdown_extensions.append(DocstringMarkupExtension())
    return config
