"""ARCHITECTURE.md matches the code: it names every module of the package, and only those."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "memo_redis"
DOC = ROOT / "ARCHITECTURE.md"


def _modules() -> set[str]:
    return {path.relative_to(PACKAGE).as_posix() for path in PACKAGE.rglob("*.py")}


def _named_in_doc() -> set[str]:
    """Module paths named in the doc, expanding ``pkg/`` rows' bare names (``binding.py``)."""
    named: set[str] = set()
    for line in DOC.read_text().splitlines():
        if not line.startswith("| `"):
            continue
        first, _, rest = line[2:].partition(" | ")
        names = re.findall(r"`([\w/]+\.py|[\w]+/)`", first)
        package = next((n for n in names if n.endswith("/")), None)
        named.update(n for n in names if n.endswith(".py"))
        if package is not None:
            named.update(package + n for n in re.findall(r"`(\w+\.py)`", rest))
    # A package is described by its modules; its __init__ is its table of contents.
    named.update(n.split("/")[0] + "/__init__.py" for n in list(named) if "/" in n)
    return named


def test_every_module_is_in_architecture_md() -> None:
    """Each module under memo_redis/ has a line in ARCHITECTURE.md."""
    missing = sorted(_modules() - _named_in_doc())
    assert not missing, f"modules not described in ARCHITECTURE.md: {missing}"


def test_architecture_md_names_no_missing_module() -> None:
    """Every module ARCHITECTURE.md names exists."""
    extra = sorted(_named_in_doc() - _modules())
    assert not extra, f"ARCHITECTURE.md names modules that do not exist: {extra}"
