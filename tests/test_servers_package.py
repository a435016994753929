"""The memo_redis.servers subpackage: its table of contents, the old import paths, its imports."""

from __future__ import annotations

import ast
from pathlib import Path

import memo_redis.embedded
import memo_redis.servers
import memo_redis.topology

_PACKAGE = Path(memo_redis.servers.__file__).parent
_LIBRARY_LIMIT = 500


def test_old_import_paths_re_export_the_same_objects() -> None:
    """memo_redis.embedded and memo_redis.topology re-export the subpackage's own objects."""
    for old in (memo_redis.embedded, memo_redis.topology):
        assert old.__all__
        for name in old.__all__:
            assert getattr(old, name) is getattr(memo_redis.servers, name), name


def test_every_name_in_all_exists() -> None:
    """Every name in memo_redis.servers.__all__ (and its modules' __all__) is defined."""
    modules = [memo_redis.servers]
    for path in sorted(_PACKAGE.glob("[!_]*.py")):
        modules.append(__import__(f"memo_redis.servers.{path.stem}", fromlist=["_"]))
    for module in modules:
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"


def test_no_private_name_crosses_a_module() -> None:
    """No module of the subpackage, and not the pytest plugin, imports another's private name."""
    files = [*sorted(_PACKAGE.glob("*.py")), _PACKAGE.parent / "testing.py"]
    crossings = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("memo_redis"):
                crossings += [
                    f"{path.name}: {node.module}.{alias.name}"
                    for alias in node.names
                    if alias.name.startswith("_")
                ]
    assert crossings == []


def test_modules_stay_small() -> None:
    """Each module of the subpackage has at most about 500 lines."""
    sizes = {path.name: len(path.read_text().splitlines()) for path in _PACKAGE.glob("*.py")}
    assert {name: size for name, size in sizes.items() if size > _LIBRARY_LIMIT} == {}
