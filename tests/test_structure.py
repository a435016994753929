"""Static checks of memo_redis's architecture, read from its sources with ``ast``.

Nothing here imports memo_redis: every ``memo_redis/**/*.py`` is parsed, so the checks need no
server and see deferred imports (inside functions) that importing the package would not reveal.
The second half of the file tests the checker itself on small synthetic package trees.

How imports are read (``package_imports``):

* every ``import`` / ``from ... import`` statement anywhere in a module counts, at module level
  and inside functions, classes and branches, except the body of ``if TYPE_CHECKING:`` (or
  ``if typing.TYPE_CHECKING:``), which never runs; its ``else:`` branch does run and counts;
* relative imports resolve against the importer's package (``from .x import y`` in
  ``memo_redis/cli/stats.py`` is ``memo_redis.cli.x``; ``from ..x import y`` is ``memo_redis.x``);
* ``from pkg import name`` loads the submodule ``pkg.name`` when ``pkg/name.py`` or
  ``pkg/name/__init__.py`` exists, otherwise it reads the attribute ``name`` of ``pkg``;
* importing a package (``import memo_redis.keys``, ``from memo_redis.keys import f``) loads its
  ``__init__.py``: that is the module the edge points to. The parent packages Python initialises
  on the way are not edges (they are already initialising when a submodule of theirs runs);
* only imports of modules that exist in the checked package are kept: third-party imports are
  ignored, and so is an import of a memo_redis module that does not exist (it fails on its own,
  at import time or in the tests that run it).
"""

from __future__ import annotations

import ast
import itertools
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "memo_redis"
MAX_MODULE_LINES = 500
INIT_ASSIGNMENTS = frozenset({"__all__", "__version__"})


# --------------------------------------------------------------------------------------------
# The checker
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Module:
    """One parsed source file of the checked package."""

    name: str  # dotted name: "memo_redis.cli._common", "memo_redis.keys" for keys/__init__.py
    path: Path
    relative: str  # the path from the package's parent folder: "memo_redis/keys/__init__.py"
    is_package: bool  # an __init__.py
    source: str
    tree: ast.Module

    @property
    def package(self) -> str:
        """The package relative imports start from: the module itself for an ``__init__``."""
        return self.name if self.is_package else self.name.rpartition(".")[0]


@dataclass(frozen=True)
class Import:
    """One name an import statement brings in, resolved inside the checked package."""

    importer: str  # the module holding the statement
    line: int
    source: str  # the module named by the statement: ``A`` in ``from A import n`` / ``import A``
    name: str | None  # ``n`` in ``from A import n``; None for ``import A``
    target: str  # the module of the package that the statement loads (A.n when a submodule)
    runs: bool  # False under ``if TYPE_CHECKING:``

    @property
    def is_attribute(self) -> bool:
        """Whether ``name`` is an attribute of ``source`` rather than one of its submodules."""
        return self.name is not None and self.target == self.source


def load_package(package_dir: Path) -> dict[str, Module]:
    """Every ``*.py`` below ``package_dir``, parsed, by dotted module name."""
    modules: dict[str, Module] = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = path.relative_to(package_dir.parent).with_suffix("").parts
        is_package = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_package else parts)
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source, filename=str(path))
        relative = path.relative_to(package_dir.parent).as_posix()
        modules[name] = Module(name, path, relative, is_package, source, tree)
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _import_statements(
    node: ast.AST, runs: bool = True
) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement below ``node``, with whether it runs (False under TYPE_CHECKING)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for statement in child.body:
                yield from _import_statements_in(statement, runs=False)
            for statement in child.orelse:
                yield from _import_statements_in(statement, runs=runs)
        else:
            yield from _import_statements_in(child, runs=runs)


def _import_statements_in(
    node: ast.AST, runs: bool
) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        yield node, runs
    else:
        yield from _import_statements(node, runs)


def _absolute(module: Module, node: ast.ImportFrom) -> str | None:
    """The absolute module named by a ``from`` statement; None when it climbs above the top."""
    if node.level == 0:
        return node.module
    parts = module.package.split(".")
    if node.level - 1 >= len(parts):
        return None
    base = parts[: len(parts) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _inside(name: str, package: str) -> bool:
    """Whether module ``name`` is ``package`` itself or below it."""
    return name == package or name.startswith(package + ".")


def package_imports(modules: dict[str, Module]) -> list[Import]:
    """Every import of a module of the package by a module of the package, in source order."""
    found: list[Import] = []
    for module in modules.values():
        for node, runs in _import_statements(module.tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in modules:
                        found.append(
                            Import(module.name, node.lineno, alias.name, None, alias.name, runs)
                        )
                continue
            source = _absolute(module, node)
            if source not in modules:
                continue
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                target = submodule if submodule in modules else source
                found.append(Import(module.name, node.lineno, source, alias.name, target, runs))
    return sorted(found, key=lambda item: (item.importer, item.line))


Graph = dict[str, dict[str, list[int]]]


def import_graph(modules: dict[str, Module]) -> Graph:
    """importer -> imported module -> lines of the imports that run (self-imports dropped)."""
    graph: Graph = {name: {} for name in modules}
    for item in package_imports(modules):
        if item.runs and item.target != item.importer:
            lines = graph[item.importer].setdefault(item.target, [])
            if item.line not in lines:
                lines.append(item.line)
    return graph


def _components(graph: Graph) -> dict[str, int]:
    """Tarjan's strongly connected components: module -> component number."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    component: dict[str, int] = {}

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            number = len(set(component.values()))
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component[member] = number
                if member == node:
                    break

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return component


def find_cycles(graph: Graph) -> list[list[str]]:
    """Every elementary cycle, each once: starting at its smallest module, closed on it."""
    component = _components(graph)
    cycles: list[list[str]] = []

    def walk(start: str, node: str, path: list[str]) -> None:
        for nxt in sorted(graph[node]):
            if nxt == start:
                cycles.append([*path, start])
            elif nxt > start and nxt not in path and component[nxt] == component[start]:
                path.append(nxt)
                walk(start, nxt, path)
                path.pop()

    for start in sorted(graph):
        walk(start, start, [start])
    return cycles


def describe_cycle(cycle: list[str], graph: Graph) -> str:
    """``a:12,40 -> b:3 -> a``: ``module:lines`` are the import statements loading the next one."""
    steps = [f"{module}:{','.join(map(str, graph[module][nxt]))}"
             for module, nxt in itertools.pairwise(cycle)]
    return " -> ".join([*steps, cycle[-1]])


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_imports(modules: dict[str, Module]) -> list[str]:
    """Imports reaching into another module's privates (the rule: ``test_no_private_imports``)."""
    problems: list[str] = []
    for item in package_imports(modules):
        where = f"{item.importer}:{item.line}"
        if item.is_attribute and item.name is not None and _is_private(item.name):
            problems.append(f"{where} imports private name {item.name} from {item.source}")
        parts = item.target.split(".")
        for depth in range(1, len(parts)):
            owner = ".".join(parts[:depth])
            if _is_private(parts[depth]) and not _inside(item.importer, owner):
                problems.append(
                    f"{where} imports {item.target}, whose module {'.'.join(parts[: depth + 1])}"
                    f" is private to package {owner}"
                )
                break
    return problems


def physical_lines(source: str) -> int:
    """Lines as an editor numbers them (a last line without a newline still counts)."""
    return source.count("\n") + (1 if source and not source.endswith("\n") else 0)


def oversized_modules(modules: dict[str, Module], limit: int) -> list[tuple[str, int]]:
    """(path, lines) of each module longer than ``limit`` physical lines, largest first."""
    sizes = [(module.relative, physical_lines(module.source)) for module in modules.values()]
    return sorted(((path, lines) for path, lines in sizes if lines > limit),
                  key=lambda item: (-item[1], item[0]))


def init_logic(source: str) -> list[str]:
    """Top-level statements of a package ``__init__`` that are more than imports and metadata.

    Allowed: the docstring (first statement), ``import`` / ``from ... import``, and an assignment
    (plain or annotated) of a literal to ``__all__`` or ``__version__``.
    """
    problems: list[str] = []
    for position, statement in enumerate(ast.parse(source).body):
        if position == 0 and isinstance(statement, ast.Expr) and isinstance(
            statement.value, ast.Constant
        ) and isinstance(statement.value.value, str):
            continue
        if isinstance(statement, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(statement, (ast.Assign, ast.AnnAssign)):
            targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
            names = [target.id for target in targets if isinstance(target, ast.Name)]
            if names and len(names) == len(targets) and set(names) <= INIT_ASSIGNMENTS:
                try:
                    if statement.value is not None:
                        ast.literal_eval(statement.value)
                        continue
                except (ValueError, TypeError, SyntaxError):
                    pass
        text = ast.get_source_segment(source, statement) or ast.unparse(statement)
        first_line = text.splitlines()[0]
        problems.append(f"line {statement.lineno}: {type(statement).__name__}: {first_line}")
    return problems


# --------------------------------------------------------------------------------------------
# The rules, on memo_redis
# --------------------------------------------------------------------------------------------


def _memo_redis() -> dict[str, Module]:
    modules = load_package(PACKAGE_DIR)
    assert "memo_redis" in modules, f"no memo_redis/__init__.py under {PACKAGE_DIR.parent}"
    return modules


def test_no_import_cycles() -> None:
    """No cycle of imports that run (deferred ones included) between memo_redis modules."""
    graph = import_graph(_memo_redis())
    cycles = find_cycles(graph)
    chains = "\n".join(f"  {describe_cycle(cycle, graph)}" for cycle in cycles)
    if cycles:
        pytest.fail(
            f"{len(cycles)} import cycle(s) between memo_redis modules; each"
            f" `module:lines ->` lists the import statements (module level or deferred) that"
            f" load the next module:\n{chains}"
        )


def test_no_private_imports() -> None:
    """No module imports another module's private name, nor a private module of another package.

    The rule, precisely (``_x`` is private when it starts with one underscore; ``__x__`` is not):

    * a name ``_x`` that is not a module belongs to the module defining it: ``from M import _x``
      (``from .M import _x``, ``from ..M import _x``) fails in every other module, whatever
      alias it is bound to (``from M import x as _x`` is fine: ``x`` is public);
    * a module ``pkg._m`` belongs to its package ``pkg``: modules inside ``pkg`` (its ``__init__``
      and every module below it) may import it or names from it (``from . import _m``,
      ``from ._m import name``, ``import pkg._m``); a module outside ``pkg`` may not;
    * imports under ``if TYPE_CHECKING:`` count too (they still couple to the private name);
      imports of third-party modules are not checked.
    """
    problems = private_imports(_memo_redis())
    listing = "\n".join(f"  {problem}" for problem in problems)
    if problems:
        pytest.fail(f"{len(problems)} private import(s) across memo_redis modules:\n{listing}")


def test_no_module_over_500_lines() -> None:
    """No memo_redis module is longer than 500 physical lines."""
    big = oversized_modules(_memo_redis(), MAX_MODULE_LINES)
    listing = "\n".join(f"  {path}: {lines} lines" for path, lines in big)
    if big:
        pytest.fail(f"{len(big)} module(s) over {MAX_MODULE_LINES} lines:\n{listing}")


def test_package_init_holds_no_logic() -> None:
    """memo_redis/__init__.py holds only a docstring, imports, __all__ and __version__."""
    problems = init_logic(_memo_redis()["memo_redis"].source)
    listing = "\n".join(f"  {problem}" for problem in problems)
    if problems:
        pytest.fail(f"memo_redis/__init__.py holds more than imports and metadata:\n{listing}")


# --------------------------------------------------------------------------------------------
# The checker's own rules, on synthetic trees
# --------------------------------------------------------------------------------------------


def _tree(root: Path, files: dict[str, str]) -> dict[str, Module]:
    """Write ``files`` (paths relative to ``root``, under a package ``pkg``) and load ``pkg``."""
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return load_package(root / "pkg")


def test_checker_finds_a_cycle_through_a_deferred_import(tmp_path: Path) -> None:
    """A cycle closed by an import inside a function is found and shown with its lines."""
    modules = _tree(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from .b import thing\n",
        "pkg/b.py": """\
            thing = 1


            def later():
                from pkg.c import other
                return other


            def again():
                import pkg.c
                return pkg.c
            """,
        "pkg/c.py": "import pkg.a\nother = 2\n",
    })
    graph = import_graph(modules)
    cycles = find_cycles(graph)
    assert cycles == [["pkg.a", "pkg.b", "pkg.c", "pkg.a"]]
    assert describe_cycle(cycles[0], graph) == "pkg.a:1 -> pkg.b:5,10 -> pkg.c:1 -> pkg.a"


def test_checker_lists_every_cycle_once(tmp_path: Path) -> None:
    """Two cycles sharing a module are both reported, each once; acyclic imports are not."""
    modules = _tree(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from . import b, c\n",
        "pkg/b.py": "from . import a\n",
        "pkg/c.py": "from . import a, d\n",
        "pkg/d.py": "x = 1\n",
    })
    assert find_cycles(import_graph(modules)) == [
        ["pkg.a", "pkg.b", "pkg.a"],
        ["pkg.a", "pkg.c", "pkg.a"],
    ]


def test_checker_ignores_type_checking_imports(tmp_path: Path) -> None:
    """Imports under ``if TYPE_CHECKING:`` make no edge; its ``else:`` branch does."""
    modules = _tree(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from .b import B\n",
        "pkg/b.py": """\
            import typing
            from typing import TYPE_CHECKING

            if TYPE_CHECKING:
                from .a import A
            if typing.TYPE_CHECKING:
                from pkg.a import A2
            else:
                from .c import C

            class B:
                pass
            """,
        "pkg/c.py": "C = 1\n",
    })
    graph = import_graph(modules)
    assert graph["pkg.b"] == {"pkg.c": [9]}
    assert find_cycles(graph) == []


def test_checker_resolves_relative_imports(tmp_path: Path) -> None:
    """``.x``, ``..x``, ``from . import sub`` and an ``__init__``'s ``.x`` resolve correctly."""
    modules = _tree(tmp_path, {
        "pkg/__init__.py": "from .sub import helper\n",
        "pkg/envelope.py": "",
        "pkg/top.py": "X = 1\n",
        "pkg/sub/__init__.py": "from .inner import helper\n",
        "pkg/sub/inner.py": """\
            from . import sibling
            from .. import envelope
            from ..top import X
            from ...outside import nothing
            import json

            def helper():
                from .sibling import Y
                return Y
            """,
        "pkg/sub/sibling.py": "Y = 1\n",
    })
    graph = import_graph(modules)
    assert graph["pkg"] == {"pkg.sub": [1]}
    assert graph["pkg.sub"] == {"pkg.sub.inner": [1]}
    assert graph["pkg.sub.inner"] == {
        "pkg.sub.sibling": [1, 8], "pkg.envelope": [2], "pkg.top": [3]
    }


def test_checker_points_package_imports_at_init(tmp_path: Path) -> None:
    """Importing a package, or a name from it, is an edge to its ``__init__``."""
    modules = _tree(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/keys/__init__.py": "from .digest import make_digest\n",
        "pkg/keys/digest.py": "def make_digest():\n    pass\n",
        "pkg/servers/__init__.py": "from .process import Process\n",
        "pkg/servers/process.py": "class Process:\n    pass\n",
        "pkg/servers/cluster.py": "from pkg.servers import Process\n",
        "pkg/user.py": (
            "import pkg.keys\nfrom pkg.keys import make_digest\nfrom pkg import servers\n"
        ),
    })
    graph = import_graph(modules)
    assert graph["pkg.user"] == {"pkg.keys": [1, 2], "pkg.servers": [3]}
    assert graph["pkg.servers.cluster"] == {"pkg.servers": [1]}
    assert find_cycles(graph) == []
    # The cluster -> servers edge is a normal one: servers importing cluster back closes a cycle.
    (tmp_path / "pkg/servers/__init__.py").write_text(
        "from .process import Process\nfrom . import cluster\n", encoding="utf-8"
    )
    assert find_cycles(import_graph(load_package(tmp_path / "pkg"))) == [
        ["pkg.servers", "pkg.servers.cluster", "pkg.servers"]
    ]


def test_checker_private_import_rule(tmp_path: Path) -> None:
    """Private names fail across modules; dunders, aliases and a package's own ``_module`` pass."""
    modules = _tree(tmp_path, {
        "pkg/__init__.py": "from .core import __version__\n",
        "pkg/core.py": "__version__ = '1'\n_hidden = 1\nshown = 2\n",
        "pkg/sql.py": """\
            from typing import TYPE_CHECKING
            from .core import shown as _shown
            from .core import _hidden

            if TYPE_CHECKING:
                from pkg.core import _hidden as _h
            """,
        "pkg/cli/__init__.py": "from ._common import connect\nfrom . import _common\n",
        "pkg/cli/_common.py": "def connect():\n    pass\n\n\ndef _helper():\n    pass\n",
        "pkg/cli/stats.py": "from ._common import connect\nimport pkg.cli._common\n",
        "pkg/cli/deep/__init__.py": "",
        "pkg/cli/deep/view.py": "from .._common import connect\nfrom .._common import _helper\n",
        "pkg/outside.py": "from pkg.cli._common import connect\nfrom pkg.cli import _common\n",
    })
    assert private_imports(modules) == [
        "pkg.cli.deep.view:2 imports private name _helper from pkg.cli._common",
        "pkg.outside:1 imports pkg.cli._common, whose module pkg.cli._common is private to"
        " package pkg.cli",
        "pkg.outside:2 imports pkg.cli._common, whose module pkg.cli._common is private to"
        " package pkg.cli",
        "pkg.sql:3 imports private name _hidden from pkg.core",
        "pkg.sql:6 imports private name _hidden from pkg.core",
    ]


def test_checker_counts_physical_lines(tmp_path: Path) -> None:
    """Module size is the number of physical lines, listed largest first, over the limit only."""
    modules = _tree(tmp_path, {
        "pkg/__init__.py": "x = 1\n" * 3,
        "pkg/small.py": "x = 1\n" * 4,
        "pkg/big.py": "x = 1\n" * 5 + "y = 2",  # last line without a newline
        "pkg/sub/__init__.py": "\n" * 5,
    })
    assert physical_lines("") == 0
    assert physical_lines("a\nb") == 2
    assert oversized_modules(modules, 4) == [("pkg/big.py", 6), ("pkg/sub/__init__.py", 5)]


def test_checker_init_logic_rule() -> None:
    """An ``__init__`` of imports, ``__all__``, ``__version__`` passes; anything else is listed."""
    clean = ('"""Doc."""\nfrom .a import b\nimport os\n__all__ = ["b"]\n'
             '__version__: str = "1.0"\n')
    assert init_logic(clean) == []
    dirty = (
        '"""Doc."""\nfrom .a import b\n__all__ = sorted(["b"])\nTIMEOUT = 3\n'
        "def setup():\n    pass\nif b:\n    setup()\n"
    )
    assert init_logic(dirty) == [
        'line 3: Assign: __all__ = sorted(["b"])',
        "line 4: Assign: TIMEOUT = 3",
        "line 5: FunctionDef: def setup():",
        "line 7: If: if b:",
    ]
