"""Fuzzing the key space: no call reads, writes or invalidates a key outside its own scope.

Hypothesis generates namespaces, categories, prefix templates and template values (text with
``:``, glob characters, backslashes, braces, ``%``, control characters, lone surrogates, the
reserved ``__memo__`` name, very long text; ints; enum members; values of unsupported types),
against a private server. For each case three functions are decorated: ``fn`` (a templated
prefix), ``other`` (the namespace, no prefix) and ``custom`` (``key=``), each called with two
values (the second often a near miss of the first: a glob matching it, a prefix of it, the
same text as another type). Then each invalidation in turn, from a fresh keyspace:
``fn.invalidate``, ``@invalidates`` with ``fn``'s template or one of its segment prefixes,
``cache_clear`` of each function, ``cache.invalidate`` of a table pattern.

The expectations come from a model written here, not from memo_redis: a template value is
rendered by percent-encoding ``%``, ``:``, ``{``, ``}``, control characters and lone surrogates,
and an invalidation of ``scope:*`` removes exactly the keys starting with ``scope:``. The test
then checks that every key in Redis is one of the calls' keys and starts with the modelled scope,
that exactly the modelled keys are gone after the invalidation, and that every other entry is
still a hit. Bad input must fail with a clear error instead (``ConfigError``, ``TypeError`` or
``ValueError`` naming what is wrong) and write nothing.
"""

from __future__ import annotations

import enum
import re
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from memo_redis import ConfigError, RedisCaching, cached, invalidates
from memo_redis.layout import INTERNAL_PREFIX
from memo_redis.servers import EmbeddedServer
from memo_redis.sql import table_pattern, table_pattern_of

RESERVED = "__memo__"


class Shade(enum.Enum):
    """Enum members fill placeholders with their value."""

    DARK = "dark:er"
    LIGHT = 7


# -- the model ------------------------------------------------------------------------------


def model_segment(value: object) -> str:
    """How a template value appears in a key: ints as digits, enum members by value, text with
    ``% : { }``, control characters and lone surrogates percent-encoded (surrogates as the
    bytes ``surrogatepass`` gives them)."""
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(int(value))
    assert isinstance(value, str)
    out = []
    for ch in value:
        code = ord(ch)
        if ch in "%:{}" or code < 0x20 or code == 0x7F or 0xD800 <= code <= 0xDFFF:
            out.append("".join(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass")))
        else:
            out.append(ch)
    return "".join(out)


def model_render(template: str, values: dict[str, object]) -> str:
    """``template`` with its placeholders filled as :func:`model_segment` says."""
    return template.format(**{name: model_segment(v) for name, v in values.items()})


def redis_glob(pattern: str) -> re.Pattern[str]:
    """A regex for a Redis glob made only of literal text and ``*`` (what cache_clear sends)."""
    return re.compile("".join(".*" if part == "*" else re.escape(part)
                              for part in re.split(r"(\*)", pattern)), re.S)


def clear_model(template: str | None, scope: str, category: str) -> Callable[[str], bool]:
    """Which keys ``cache_clear()`` removes: a templated prefix's placeholders match anything
    (as documented: other functions under its literal head too), otherwise ``scope:*``."""
    if template is None:
        return lambda key: key.startswith(scope + ":")
    pieces = []
    for literal, field, _, _ in string.Formatter().parse(template):
        pieces.append(literal)
        if field is not None:
            pieces.append("*")
    regex = redis_glob("".join(pieces) + ":" + category + ":*")
    return lambda key: regex.fullmatch(key) is not None


# -- the generated cases --------------------------------------------------------------------


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


_ATOMS = st.sampled_from([
    ":", "*", "?", "[", "]", "[a-z]", "\\", "\\*", "{", "}", "{x}", "%", "%3A", "%25", "%5F",
    "\x00", "\n", "\r", "\t", "\x1f", "\x7f", "\ud800", "\udcff", "é", "\u2028", "😀",
    RESERVED, RESERVED + ":", "__memo", "gen", "idx", "users", "a", " ", "",
])
_TEXT = st.lists(st.one_of(_ATOMS, st.text(max_size=4)), max_size=6).map("".join)
# key= strings (a developer's code, sent as they are): anything but lone surrogates.
_CUSTOM = st.lists(st.one_of(_ATOMS.filter(_encodable), st.text(max_size=4)),
                   min_size=1, max_size=6).map("".join).filter(bool)
_LONG = st.builds(lambda unit, n: unit * n, st.sampled_from([":", "*", "a", "%", "{", "\\", "é"]),
                  st.integers(300, 3000))
# Values that complete the templates' literal text into the reserved name, or nearly.
_RESERVED_BITS = st.sampled_from([RESERVED, "__", "_memo__", "__memo", "__memo__x", "__MEMO__"])
VALUES = st.one_of(_TEXT, _TEXT, _LONG, _RESERVED_BITS, st.integers(-(10**30), 10**30),
                   st.sampled_from(Shade))
BAD_VALUES = st.one_of(st.floats(allow_nan=False), st.booleans(), st.none(),
                       st.binary(max_size=3), st.lists(st.integers(), max_size=2))

TEMPLATES = st.sampled_from([
    "{v}", "{v}:x", "sql:{v}", "t:{v}", "t:{v}:{w}", "t:{w}:{v}", "t:a{v}b", "t:{v}{w}",
    "t:{v}-{w}:z", "{v}:{w}", "_{v}:x", "__memo{v}:x", "{{lit}}:{v}", "%:{v}", "t:{v}:{v}",
])
BAD_TEMPLATES = st.sampled_from([
    "t:{", "t:}", "t:{0}", "t:{v.x}", "t:{v!r}", "t:{v:>3}", "t:{missing}", "", "__memo__:{v}",
    RESERVED,
])
# Namespaces and categories are configuration: printable text with separators and glob
# characters, or a bad one (refused).
_CONFIG_TEXT = st.text(st.sampled_from("ab_-.:?[]\\{}%é \t"), min_size=1, max_size=8)
NAMESPACES = st.one_of(_CONFIG_TEXT.map(lambda t: "n" + t), _CONFIG_TEXT)
BAD_NAMESPACES = st.sampled_from(["", "*", "a*", RESERVED, RESERVED + ":x"])
CATEGORIES = st.text(st.sampled_from("ab_-.?[]\\{}%é "), min_size=1, max_size=6)
BAD_CATEGORIES = st.sampled_from(["", ":", "a:b", "*", "a*"])
OPERATIONS = ("fn.invalidate", "invalidates-template", "invalidates-segment", "fn.cache_clear",
              "other.cache_clear", "custom.invalidate", "custom.cache_clear", "table_pattern")
"""Each case is run once per invalidation, from a fresh keyspace."""


@dataclass(frozen=True)
class Case:
    """One generated case."""

    template: str
    category: str
    namespace: str
    other_category: str
    values: tuple[dict[str, object], dict[str, object]]
    customs: tuple[str, str]
    segments: int
    """How many ``:`` segments of the template the row-level ``@invalidates`` keeps."""


@st.composite
def cases(draw: st.DrawFn) -> Case:
    template = draw(TEMPLATES)
    names = sorted({f for _, f, _, _ in string.Formatter().parse(template) if f})
    first = {name: draw(VALUES) for name in names}
    if draw(st.booleans()):  # a near miss of the first value
        second = {name: draw(st.sampled_from(_near(first[name]))) for name in names}
    else:
        second = {name: draw(VALUES) for name in names}
    return Case(
        template=template, category=draw(CATEGORIES), namespace=draw(NAMESPACES),
        other_category=draw(CATEGORIES), values=(first, second),
        customs=draw(st.lists(_CUSTOM, min_size=2, max_size=2, unique=True)
                     .map(lambda pair: (pair[0], pair[1]))),
        segments=draw(st.integers(1, 3)),
    )


def _near(value: object) -> list[object]:
    """Values that render close to ``value``: a glob that would match it, a prefix of it, a
    value one segment deeper, the same text as another type."""
    if isinstance(value, str):
        return [value + "*", value + "?", "[" + value[:1] + "]" + value[1:], value[:-1],
                value + ":x", "\\" + value, value + "%"]
    if isinstance(value, int) and not isinstance(value, bool):
        return [value + 1, str(value), -value]
    return [value, str(getattr(value, "value", value))]


# -- the test -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_server(memo_redis_binary: str) -> Iterator[EmbeddedServer]:
    """A private server for this module."""
    with EmbeddedServer(memo_redis_binary) as started:
        yield started


@pytest.fixture(scope="module")
def admin(fuzz_server: EmbeddedServer) -> Iterator[redis.Redis]:
    client = fuzz_server.client()
    try:
        yield client
    finally:
        client.close()


def stored(admin: redis.Redis) -> set[str]:
    """The cache entries in Redis (memo_redis's bookkeeping left out), as text."""
    keys = {k.decode("utf-8", "surrogatepass") for k in admin.scan_iter(count=1000)}
    return {k for k in keys if not k.startswith(INTERNAL_PREFIX)}


def body_key(name: str, values: dict[str, object]) -> str:
    return f"{name}:{sorted((k, repr(v)) for k, v in values.items())!r}"


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=cases())
@example(case=Case("{v}:x", "data", "memo", "data", ({"v": RESERVED}, {"v": "users"}),
                   ("a", "b"), 1))
@example(case=Case("__memo{v}:x", "data", "memo", "data", ({"v": "__"}, {"v": "___"}),
                   ("a", "b"), 2))
@example(case=Case("{v}:{w}", "data", "memo", "data", ({"v": RESERVED, "w": "idx"},
                                                       {"v": "users", "w": "idx"}), ("a", "b"), 1))
@example(case=Case("t:{v}", "data", "memo", "data", ({"v": "\ud800"}, {"v": "a\udcffb"}),
                   ("a", "b"), 2))
@example(case=Case("sql:{v}", "data", "memo", "data", ({"v": "users"}, {"v": "users*"}),
                   ("x:y", "x"), 2))
def test_no_call_reaches_outside_its_scope(case: Case, fuzz_server: EmbeddedServer,
                                           admin: redis.Redis) -> None:
    """Pins key-space isolation, for every invalidation in turn: every key a call writes is its
    modelled scope plus one digest (or its ``key=`` string); the invalidation removes exactly
    the keys its modelled scope covers; every other entry is still a hit afterwards, with its
    own value. A value that would put a key in the reserved ``__memo__:`` namespace is refused
    with a ValueError before anything is sent."""
    runs: dict[str, int] = {}

    def ran(name: str, values: dict[str, object]) -> tuple[str, str]:
        label = body_key(name, values)
        runs[label] = runs.get(label, 0) + 1
        return (name, label)

    with RedisCaching(fuzz_server.args(), namespace=case.namespace) as cache:
        @cached(cache=cache, prefix=case.template, category=case.category)
        def fn(v: object = None, w: object = None) -> tuple[str, str]:
            return ran("fn", {"v": v, "w": w})

        @cached(cache=cache, category=case.other_category)
        def other(v: object = None, w: object = None) -> tuple[str, str]:
            return ran("other", {"v": v, "w": w})

        @cached(cache=cache, key=lambda v=None, w=None: _custom_key(case, v, w))
        def custom(v: object = None, w: object = None) -> tuple[str, str]:
            return ran("custom", {"v": v, "w": w})

        functions: dict[str, Any] = {"fn": fn, "other": other, "custom": custom}
        calls = [(name, {"v": None, "w": None, **vals}) for name in functions
                 for vals in case.values]
        for vals in case.values:
            if reserved(_model_scope(case, "fn", {"v": None, "w": None, **vals})):
                event("a value reaching the reserved namespace is refused")
                with pytest.raises(ValueError, match="reserved for memo_redis"):
                    fn(**vals)
                calls.remove(("fn", {"v": None, "w": None, **vals}))
        for operation in OPERATIONS:
            admin.flushall()
            runs.clear()
            expected: dict[str, str] = {}  # key -> body label
            for name, kwargs in calls:
                f = functions[name]
                key = f.cache_key(**kwargs)
                assert f(**kwargs) == f(**kwargs) == (name, body_key(name, kwargs))
                expected[key] = body_key(name, kwargs)
                scope = _model_scope(case, name, kwargs)
                tail = key[len(scope) + 1:]
                assert key.startswith(scope + ":"), (key, scope)
                if name == "custom":
                    assert tail == _custom_key(case, **kwargs), (key, scope)
                else:
                    assert re.fullmatch(r"[0-9a-f]{16}", tail), (key, scope)
            assert stored(admin) == set(expected), "a key outside the calls' scopes was written"
            assert all(n == 1 for n in runs.values()), runs

            gone = _invalidate(operation, case, cache, functions, set(expected))
            assert stored(admin) == set(expected) - gone, operation

            before = dict(runs)
            for name, kwargs in calls:
                assert functions[name](**kwargs) == (name, body_key(name, kwargs))
            for key, label in expected.items():
                recomputed = runs[label] - before[label]
                if not any(k in gone for k, lab in expected.items() if lab == label):
                    assert recomputed == 0, f"{operation}: {key} was left but recomputed"
                else:
                    assert recomputed == 1, f"{operation}: {key} was removed but still a hit"


def reserved(scope: str) -> bool:
    """Is ``scope`` in memo_redis's bookkeeping namespace (its first segment ``__memo__``)?"""
    return scope.split(":", 1)[0] == RESERVED


def _custom_key(case: Case, v: object = None, w: object = None) -> str:
    """``custom``'s ``key=``: a generated string per value set (an adversarial digest)."""
    return case.customs[0] if {"v": v, "w": w} == {"v": None, "w": None, **case.values[0]} \
        else case.customs[1]


def _model_scope(case: Case, name: str, kwargs: dict[str, object]) -> str:
    """The scope the model expects for a call of ``name``."""
    if name == "fn":
        fields = {f for _, f, _, _ in string.Formatter().parse(case.template) if f}
        return model_render(case.template, {k: kwargs[k] for k in fields}) + ":" + case.category
    owner = f"{__name__}.test_no_call_reaches_outside_its_scope.<locals>.{name}"
    category = case.other_category if name == "other" else "data"
    return f"{case.namespace}:{owner}:{category}"


def _invalidate(op: str, case: Case, cache: RedisCaching, functions: dict[str, Any],
                written: set[str]) -> set[str]:
    """Apply the invalidation ``op``; return the keys the model says it removes."""
    fn, custom = functions["fn"], functions["custom"]
    first = {"v": None, "w": None, **case.values[0]}
    fields = [f for _, f, _, _ in string.Formatter().parse(case.template) if f]
    if op == "fn.invalidate":
        if reserved(_model_scope(case, "fn", first)):
            with pytest.raises(ValueError, match="reserved for memo_redis"):
                fn.invalidate(**first)
            return set()
        key = fn.cache_key(**first)
        assert fn.invalidate(**first) == 1
        return {key}
    if op == "custom.invalidate":
        key = custom.cache_key(**first)
        assert custom.invalidate(**first) == 1
        return {key}
    if op in ("invalidates-template", "invalidates-segment"):
        template = case.template
        if op == "invalidates-segment":
            template = ":".join(template.split(":")[: case.segments])
        pattern = template + ":*"

        @invalidates(pattern, cache=cache)
        def write(v: object = None, w: object = None) -> str:
            return "written"

        used = {f for _, f, _, _ in string.Formatter().parse(template) if f}
        scope = model_render(template, {k: first[k] for k in used})
        if reserved(scope):  # refused before the write runs
            with pytest.raises(ValueError, match="reserved for memo_redis"):
                write(**first)
            return set()
        assert write(**first) == "written"
        return {k for k in written if k.startswith(scope + ":")}
    if op in ("fn.cache_clear", "other.cache_clear", "custom.cache_clear"):
        name = op.partition(".")[0]
        functions[name].cache_clear()
        if name == "fn":
            covered = clear_model(case.template, "", case.category)
        else:
            covered = clear_model(None, _model_scope(case, name, first), "")
        return {k for k in written if covered(k)}
    assert op == "table_pattern"
    value = first[fields[0]]
    if not isinstance(value, str) or not value:
        with pytest.raises(TypeError, match="table"):
            table_pattern(value)  # type: ignore[arg-type]
        return set()
    if model_segment(value) != value:
        with pytest.raises(ValueError, match="table"):
            table_pattern(value)
    else:
        assert table_pattern(value) == table_pattern_of(value)
    cache.invalidate(table_pattern_of(value))
    scope = "sql:" + model_segment(value)
    return {k for k in written if k.startswith(scope + ":")}


# -- bad input: a clear error, nothing written ----------------------------------------------


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(template=BAD_TEMPLATES, namespace=BAD_NAMESPACES, category=BAD_CATEGORIES,
       value=BAD_VALUES)
def test_bad_scopes_are_refused_with_a_clear_error(template: str, namespace: str,
                                                   category: str, value: object,
                                                   fuzz_server: EmbeddedServer,
                                                   admin: redis.Redis) -> None:
    """Pins the refusals: a malformed or reserved prefix template, a bad namespace or category
    raise ConfigError naming the setting when decorated (or when the cache is built); a value
    of an unsupported type raises TypeError naming the placeholder; nothing reaches Redis."""
    admin.flushall()
    with pytest.raises(ConfigError, match="namespace"):
        RedisCaching(fuzz_server.args(), namespace=namespace)
    with RedisCaching(fuzz_server.args()) as cache:
        with pytest.raises(ConfigError, match="namespace"):
            cached(cache=cache, namespace=namespace)(lambda: None)
        with pytest.raises(ConfigError, match="category"):
            cached(cache=cache, category=category)(lambda: None)
        with pytest.raises(ConfigError, match=r"prefix|template"):
            cached(cache=cache, prefix=template)(lambda v: v)

        @cached(cache=cache, prefix="t:{v}")
        def fn(v: object) -> object:
            return v

        @invalidates("t:{v}:*", cache=cache)
        def write(v: object) -> None:
            return None

        with pytest.raises(TypeError, match=r"\{v\}"):
            fn(value)
        with pytest.raises(TypeError, match=r"\{v\}"):
            write(value)
    assert admin.dbsize() == 0


def test_the_reserved_name_is_the_layouts() -> None:
    """Pins the name templates refuse to the bookkeeping namespace memo_redis.layout uses (the
    keys floor cannot import it): a value making the first segment ``__memo__`` is refused, a
    value merely starting with it is not."""
    from memo_redis.keys import KeyTemplate

    template = KeyTemplate("{v}:x", ["v"], owner="app.f")
    with pytest.raises(ValueError, match=re.escape(repr(INTERNAL_PREFIX))):
        template.render({"v": INTERNAL_PREFIX[:-1]}, escape=False)
    with pytest.raises(ValueError, match=r"\{v\}='__memo__'"):
        template.render({"v": INTERNAL_PREFIX[:-1]}, escape=True)
    assert template.render({"v": INTERNAL_PREFIX[:-1] + "x"}, escape=False) == "__memo__x:x"
    assert template.render({"v": INTERNAL_PREFIX}, escape=False) == "__memo__%3A:x"
