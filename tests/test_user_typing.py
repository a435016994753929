"""Type-check user modules against the installed memo_redis, as a user's mypy sees it.

After the README's install (``pip install -e ".[test]"``) a user's code lives outside the
repository, so mypy must find memo_redis through the installed distribution and its
``py.typed`` marker, not through the current folder. Each user module is written into a fresh
temporary folder and checked by ``python -m mypy --strict <file>`` run from that folder, once per
module (the runs are shared by the tests through module-scoped fixtures).

The good module pins what ``reveal_type`` shows at each marked line (``# reveal: <tag>``) and
that marked lines (``# clean: <tag>``) have no error; the bad module pins an argument-type error
on each ``# error: <tag>`` line. Revealed types are compared after dropping mypy's ``builtins.``
qualifiers, so mypy versions that spell ``str`` as ``builtins.str`` agree.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

GOOD_MODULE = '''\
"""A user's module: decorated call sites keep the wrapped function's types."""

import redis

import memo_redis
import memo_redis.redis_args
import memo_redis.redis_instance
from memo_redis import *
from memo_redis import RedisCaching, cached, invalidates


@cached(prefix="sql:{table}", ttl=300)
def fetch(table: str, columns: list[str]) -> list[dict[str, int]]:
    return [{"id": len(table) + len(columns)}]


@cached
def bare(table: str, columns: list[str]) -> list[dict[str, int]]:
    return [{"id": len(table) + len(columns)}]


@cached(prefix="sql:{table}", ttl=300)
async def afetch(table: str) -> int:
    return len(table)


cache = RedisCaching("redis://127.0.0.1:1/0")


@cache.cached(prefix="p")
def g(x: int) -> str:
    return str(x)


@invalidates("sql:{table}:*")
def update(table: str) -> None:
    return None


reveal_type(fetch("users", ["id"]))  # reveal: fetch()
reveal_type(fetch.cache_key("users", ["id"]))  # reveal: fetch.cache_key()
reveal_type(fetch.invalidate("users", ["id"]))  # reveal: fetch.invalidate()
reveal_type(fetch.refresh("users", ["id"]))  # reveal: fetch.refresh()
reveal_type(fetch.many([("users", ["id"])]))  # reveal: fetch.many()
reveal_type(fetch.cache_info())  # reveal: fetch.cache_info()

reveal_type(bare("users", ["id"]))  # reveal: bare()
reveal_type(bare.cache_key("users", ["id"]))  # reveal: bare.cache_key()
reveal_type(bare.invalidate("users", ["id"]))  # reveal: bare.invalidate()
reveal_type(bare.refresh("users", ["id"]))  # reveal: bare.refresh()
reveal_type(bare.many([("users", ["id"])]))  # reveal: bare.many()
reveal_type(bare.cache_info())  # reveal: bare.cache_info()


async def use_async() -> None:
    reveal_type(await afetch("t"))  # reveal: await afetch()
    pending = reveal_type(afetch.invalidate("t"))  # reveal: afetch.invalidate()
    await pending
    reveal_type(await afetch.refresh("t"))  # reveal: await afetch.refresh()


reveal_type(g(1))  # reveal: g()
reveal_type(g.invalidate(1))  # reveal: g.invalidate()

reveal_type(update)  # reveal: update

client_cache = RedisCaching(redis.Redis())  # clean: RedisCaching(redis.Redis())

reveal_type(memo_redis.Args)  # reveal: memo_redis.Args
reveal_type(memo_redis.redis_args.RedisArgs)  # reveal: memo_redis.redis_args.RedisArgs
reveal_type(memo_redis.redis_instance.RedisCaching)  # reveal: redis_instance.RedisCaching
reveal_type(Args)  # reveal: Args (from memo_redis import *)
'''

BAD_MODULE = '''\
"""A user's module with wrong argument types at decorated call sites."""

from memo_redis import RedisCaching, cached, invalidates


@cached(prefix="sql:{table}", ttl=300)
def fetch(table: str, columns: list[str]) -> list[dict[str, int]]:
    return [{"id": len(table) + len(columns)}]


@cached
def bare(table: str, columns: list[str]) -> list[dict[str, int]]:
    return [{"id": len(table) + len(columns)}]


cache = RedisCaching("redis://127.0.0.1:1/0")


@cache.cached(prefix="p")
def g(x: int) -> str:
    return str(x)


@invalidates("sql:{table}:*")
def update(table: str) -> None:
    return None


fetch(1, ["id"])  # error: fetch(1, ...)
bare(1, ["id"])  # error: bare(1, ...)
g("a")  # error: g("a")
update(1)  # error: update(1)
'''

_MARKER = re.compile(r"#\s*(reveal|error|clean):\s*(?P<tag>.+?)\s*$")
_OUTPUT = re.compile(r"^(?P<file>[^:\n]+):(?P<line>\d+): (?P<kind>error|note): (?P<message>.*)$")
_REVEALED = re.compile(r'^Revealed type is "(?P<type>.*)"$')


@dataclass(frozen=True)
class MypyRun:
    """One ``mypy --strict`` run over one user module, parsed."""

    filename: str
    source: str
    returncode: int
    output: str
    lines: dict[str, int]  # marker tag -> line number
    reveals: dict[int, str]  # line -> revealed type
    errors: dict[int, list[str]]  # line -> error messages on that line of the user module
    other_errors: list[str]  # error lines elsewhere (another file, or unparsed)

    def line_of(self, tag: str) -> int:
        return self.lines[tag]

    def revealed(self, tag: str) -> str | None:
        return self.reveals.get(self.lines[tag])

    @property
    def import_failures(self) -> list[str]:
        """mypy's errors saying it could not use memo_redis (not found, or found untyped)."""
        return [f"line {line}: {message}" for line, messages in sorted(self.errors.items())
                for message in messages
                if "import-not-found" in message or "import-untyped" in message]

    def context(self, tag: str) -> str:
        """The marked source line and mypy's messages on it, for a failure message."""
        line = self.lines[tag]
        code = self.source.splitlines()[line - 1].split("#")[0].strip()
        said = [text for text in self.output.splitlines()
                if (match := _OUTPUT.match(text)) and int(match["line"]) == line
                and Path(match["file"]).name == self.filename]
        text = f"\n  line {line}: {code}\n  mypy says: " + ("\n    ".join(said) or "nothing")
        if self.import_failures:
            text += ("\n  (mypy did not find the installed memo_redis:"
                     " see test_mypy_finds_the_installed_package)")
        return text


def _run_mypy(folder: Path, filename: str, source: str) -> MypyRun:
    pytest.importorskip("mypy", reason="mypy is not installed (pip install -e '.[test]' has it)")
    path = folder / filename
    path.write_text(source, encoding="utf-8")
    env = {key: value for key, value in os.environ.items()
           if key not in ("MYPYPATH", "PYTHONPATH")}
    completed = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-color-output", "--show-error-codes",
         filename],
        cwd=folder, env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    output = completed.stdout + completed.stderr
    lines: dict[str, int] = {}
    for number, text in enumerate(source.splitlines(), start=1):
        marker = _MARKER.search(text)
        if marker:
            assert marker["tag"] not in lines, f"marker {marker['tag']!r} used twice"
            lines[marker["tag"]] = number
    reveals: dict[int, str] = {}
    errors: dict[int, list[str]] = {}
    other_errors: list[str] = []
    for text in output.splitlines():
        match = _OUTPUT.match(text)
        if match is None or Path(match["file"]).name != filename:
            if match is not None and match["kind"] == "error":
                other_errors.append(text)
            continue
        number = int(match["line"])
        if match["kind"] == "error":
            errors.setdefault(number, []).append(match["message"])
            continue
        revealed = _REVEALED.match(match["message"])
        if revealed:
            reveals[number] = revealed["type"]
    return MypyRun(filename, source, completed.returncode, output, lines, reveals, errors,
                   other_errors)


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> MypyRun:
    """mypy --strict over the good user module (run once for the tests of this file)."""
    return _run_mypy(tmp_path_factory.mktemp("user_good"), "user_good.py", GOOD_MODULE)


@pytest.fixture(scope="module")
def bad(tmp_path_factory: pytest.TempPathFactory) -> MypyRun:
    """mypy --strict over the bad user module (run once for the tests of this file)."""
    return _run_mypy(tmp_path_factory.mktemp("user_bad"), "user_bad.py", BAD_MODULE)


def _normal(revealed: str) -> str:
    return re.sub(r"\bbuiltins\.", "", revealed).strip()


def _is(expected: str) -> Callable[[str], bool]:
    def check(revealed: str) -> bool:
        return _normal(revealed) == expected

    check.__doc__ = expected
    return check


def _awaitable_int(revealed: str) -> bool:
    """an awaitable (Coroutine or Awaitable) of int"""
    normal = _normal(revealed)
    return ("Coroutine" in normal or "Awaitable" in normal) and bool(
        re.search(r"\bint\]$", normal)
    )


def _class(name: str) -> Callable[[str], bool]:
    def check(revealed: str) -> bool:
        normal = _normal(revealed)
        return normal != "Any" and re.search(rf"\b{name}\b", normal) is not None

    check.__doc__ = f"the class {name} (not Any)"
    return check


def _cache_info(revealed: str) -> bool:
    """the CacheInfo named tuple"""
    return "CacheInfo" in revealed


def _update_signature(revealed: str) -> bool:
    """the signature def (table: str) (mypy leaves out ``-> None``)"""
    normal = _normal(revealed)
    return (normal.startswith("def (") and "table: str" in normal
            and ("->" not in normal or normal.endswith("-> None")))


ROWS = "list[dict[str, int]]"
FETCH_REVEALS = [
    ("fetch()", _is(ROWS)),
    ("fetch.cache_key()", _is("str")),
    ("fetch.invalidate()", _is("int")),
    ("fetch.refresh()", _is(ROWS)),
    ("fetch.many()", _is(f"list[{ROWS}]")),
    ("fetch.cache_info()", _cache_info),
]


def _check_reveal(run: MypyRun, tag: str, check: Callable[[str], bool]) -> None:
    revealed = run.revealed(tag)
    if revealed is None:
        pytest.fail(f"mypy revealed no type for {tag}:{run.context(tag)}")
    if not check(revealed):
        pytest.fail(f"{tag} reveals {revealed!r}, expected {check.__doc__}:{run.context(tag)}")


def test_mypy_finds_the_installed_package(good: MypyRun) -> None:
    """mypy, run outside the repository, finds memo_redis through the installed distribution."""
    if good.import_failures:
        pytest.fail(
            "mypy, run from a folder outside the repository, cannot use the installed memo_redis"
            " (mypy follows path entries in site-packages and .pth files, not the import hooks"
            " an editable install may use; the package also needs its py.typed):\n  "
            + "\n  ".join(good.import_failures)
        )


def test_good_module_is_clean_under_strict(good: MypyRun) -> None:
    """A user module using the documented API type-checks under --strict without errors."""
    listing = [f"line {line}: {message}" for line, messages in sorted(good.errors.items())
               for message in messages] + good.other_errors
    if good.returncode != 0 or listing:
        pytest.fail(f"mypy --strict exits {good.returncode} on the user module:\n  "
                    + "\n  ".join(listing or [good.output]))


@pytest.mark.parametrize(("tag", "check"), FETCH_REVEALS, ids=[tag for tag, _ in FETCH_REVEALS])
def test_cached_with_arguments_keeps_types(good: MypyRun, tag: str,
                                           check: Callable[[str], bool]) -> None:
    """@cached(prefix=..., ttl=...) keeps the call's types and types every handle."""
    _check_reveal(good, tag, check)


BARE_REVEALS = [(tag.replace("fetch", "bare"), check) for tag, check in FETCH_REVEALS]


@pytest.mark.parametrize(("tag", "check"), BARE_REVEALS, ids=[tag for tag, _ in BARE_REVEALS])
def test_bare_cached_keeps_types(good: MypyRun, tag: str, check: Callable[[str], bool]) -> None:
    """Bare @cached types the call and handles exactly like @cached(...)."""
    _check_reveal(good, tag, check)


ASYNC_REVEALS = [
    ("await afetch()", _is("int")),
    ("afetch.invalidate()", _awaitable_int),
    ("await afetch.refresh()", _is("int")),
]


@pytest.mark.parametrize(("tag", "check"), ASYNC_REVEALS, ids=[tag for tag, _ in ASYNC_REVEALS])
def test_async_cached_keeps_types(good: MypyRun, tag: str, check: Callable[[str], bool]) -> None:
    """@cached on an async def: awaiting the call and refresh gives int, invalidate an awaitable."""
    _check_reveal(good, tag, check)


INSTANCE_REVEALS = [("g()", _is("str")), ("g.invalidate()", _is("int"))]


@pytest.mark.parametrize(("tag", "check"), INSTANCE_REVEALS,
                         ids=[tag for tag, _ in INSTANCE_REVEALS])
def test_instance_cached_keeps_types(good: MypyRun, tag: str,
                                     check: Callable[[str], bool]) -> None:
    """RedisCaching(...).cached(prefix=...) types the call and handles like @cached."""
    _check_reveal(good, tag, check)


def test_invalidates_keeps_the_signature(good: MypyRun) -> None:
    """@invalidates(...) leaves the decorated function's signature as it was."""
    _check_reveal(good, "update", _update_signature)


def test_client_passed_positionally(good: MypyRun) -> None:
    """RedisCaching(redis.Redis()) — a client as the first positional argument — type-checks."""
    tag = "RedisCaching(redis.Redis())"
    if good.errors.get(good.line_of(tag)) or good.import_failures:
        pytest.fail(f"mypy refuses {tag}, or does not see memo_redis:{good.context(tag)}")


NAMES = [
    ("memo_redis.Args", _class("Args")),
    ("memo_redis.redis_args.RedisArgs", _class("RedisArgs")),
    ("redis_instance.RedisCaching", _class("RedisCaching")),
    ("Args (from memo_redis import *)", _class("Args")),
]


@pytest.mark.parametrize(("tag", "check"), NAMES, ids=[tag for tag, _ in NAMES])
def test_public_names_resolve(good: MypyRun, tag: str, check: Callable[[str], bool]) -> None:
    """The package's public names, and the compatibility modules' names, resolve to classes."""
    _check_reveal(good, tag, check)


WRONG_ARGUMENTS = [
    ("fetch(1, ...)", "int"),
    ("bare(1, ...)", "int"),
    ('g("a")', "str"),
    ("update(1)", "int"),
]


@pytest.mark.parametrize(("tag", "given"), WRONG_ARGUMENTS,
                         ids=[tag for tag, _ in WRONG_ARGUMENTS])
def test_wrong_argument_type_is_an_error(bad: MypyRun, tag: str, given: str) -> None:
    """Passing a wrong argument type to a decorated function is a mypy error on that line."""
    errors = bad.errors.get(bad.line_of(tag), [])
    about_argument = [message for message in errors
                      if f'"{given}"' in message
                      and ("incompatible type" in message or "[arg-type]" in message)]
    if bad.returncode == 0 or not about_argument:
        pytest.fail(f"mypy (exit {bad.returncode}) reports no error about the {given} argument"
                    f" of {tag}:{bad.context(tag)}")
