"""How a decorated function's calls become keys: scope, prefix templates, argument digests.

Everything that does not depend on a call's arguments is computed once, when the decorator is
applied (:class:`KeyPlan`).
"""

from __future__ import annotations

import importlib
import inspect
import string
from collections.abc import Callable, Collection
from typing import Any

from ..exceptions import ConfigError
from ..keys import (
    ArgumentBinder,
    KeyTemplate,
    canonical_bytes,
    canonical_encode,
    fingerprint_of,
    glob_escape,
    require_utf8,
)
from ..layout import INTERNAL_PREFIX

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
# Argument types whose equal values always give equal keys (floats are left out: 0.0 == -0.0
# but their keys differ), so a call's key can be memoized by its arguments.
_MEMO_TYPES = frozenset({str, int, bool, bytes, type(None)})
_MEMO_SIZE = 4096


def owner_name(raw: Callable[..., Any]) -> str:
    """``module.qualname`` of a function: the default scope of its keys."""
    return f"{raw.__module__}.{raw.__qualname__}"


def check_digest_length(digest_length: object) -> None:
    """Refuse a digest length outside 1..64."""
    if isinstance(digest_length, bool) or not isinstance(digest_length, int) or not (
        1 <= digest_length <= 64
    ):
        raise ConfigError(f"digest_length must be an integer in 1..64, got {digest_length!r}")


class KeyPlan:
    """Everything about one decorated function that does not depend on a call's arguments."""

    def __init__(self, raw: Callable[..., Any], *, prefix: str | None, namespace: str | None,
                 category: str, ignore: Collection[str], key: Callable[..., Any] | None,
                 digest_length: int | None) -> None:
        if not isinstance(category, str) or not category or ":" in category or "*" in category:
            raise ConfigError(
                f"category must be a non-empty string without ':' or '*', got {category!r}"
            )
        require_utf8(category, "category")
        if key is not None and not callable(key):
            raise ConfigError(f"key must be a callable returning a str, got {type(key).__name__}")
        if digest_length is not None:
            check_digest_length(digest_length)
        if namespace is not None and (
            not isinstance(namespace, str) or not namespace or "*" in namespace
        ):
            raise ConfigError(
                f"namespace must be a non-empty string without '*', got {namespace!r}"
            )
        if prefix is not None and (not isinstance(prefix, str) or not prefix):
            raise ConfigError(f"prefix must be a non-empty str or None, got {prefix!r}")
        for name, value in (("prefix", prefix), ("namespace", namespace)):
            if value is not None:
                require_utf8(value, name)
            if value is not None and (value + ":").startswith(INTERNAL_PREFIX):
                raise ConfigError(f"{name} {value!r} is in the {INTERNAL_PREFIX!r} namespace, "
                                  "reserved for memo_redis's bookkeeping keys")
        self.raw = raw
        self.owner = owner_name(raw)
        self.category = category
        self.key_fn = key
        self.digest_length = digest_length
        self.namespace = namespace
        self.plain = ArgumentBinder(raw, ignore=ignore)
        # A method's instance arrives apart from its arguments (wrapt's ``instance``). Without a
        # positional first parameter to drop (``def m(*args)``), bind the arguments alone.
        first = next(iter(inspect.signature(raw).parameters.values()), None)
        self.method = (
            ArgumentBinder(raw, ignore=ignore, skip_first=True)
            if first is not None and first.kind in _POSITIONAL
            else None
        )
        # "mod.Outer.Cls" for a function defined in a class body, else None.
        home, _, _ = raw.__qualname__.rpartition(".")
        self.home_module = raw.__module__
        self.home_qualname = home if home and not home.endswith(">") else None
        self.prefix = prefix
        self.template = (
            KeyTemplate(prefix, self.plain.parameters, owner=self.owner) if prefix else None
        )
        self._scopes: dict[str, str] = {}
        self._memo: dict[tuple[Any, ...], tuple[str, bytes]] = {}
        """Keys of recent positional calls with plain arguments (a hit's key costs one dict
        lookup instead of binding, encoding and hashing)."""

    def scope(self, namespace: str, bound: dict[str, Any] | None) -> str:
        """``{prefix}:{category}``, e.g. ``sql:users:data`` or ``memo:app.fetch:data``."""
        template = self.template
        if template is None:
            namespace = self.namespace or namespace
            scope = self._scopes.get(namespace)
            if scope is None:
                scope = self._scopes[namespace] = f"{namespace}:{self.owner}:{self.category}"
            return scope
        if template.is_static:
            return f"{template.render({}, escape=False)}:{self.category}"
        assert bound is not None
        return f"{template.render(bound, escape=False)}:{self.category}"

    def tracking_prefix(self, namespace: str) -> str:
        """The longest fixed start of this function's keys (what the L1 asks Redis to track)."""
        if self.prefix is None:
            return self.scope(namespace, None) + ":"
        literal: str = next(iter(string.Formatter().parse(self.prefix)))[0]
        return literal

    def clear_pattern(self, namespace: str) -> str:
        """A pattern matching every entry of this function (placeholders become ``*``)."""
        if self.prefix is None:
            return glob_escape(self.scope(namespace, None)) + ":*"
        pieces = []
        for literal, field, _, _ in string.Formatter().parse(self.prefix):
            pieces.append(glob_escape(literal))
            if field is not None:
                pieces.append("*")
        return "".join(pieces) + f":{glob_escape(self.category)}:*"

    def is_home(self, cls: type) -> bool:
        """Is ``cls`` the class whose body defined the function?"""
        return cls.__qualname__ == self.home_qualname and cls.__module__ == self.home_module

    def home_class(self) -> type | None:
        """The class whose body defined the function, found by its module and qualname (None
        for a function outside a class, or a class that cannot be reached by name)."""
        if self.home_qualname is None:
            return None
        try:
            found: Any = importlib.import_module(self.home_module)
            for part in self.home_qualname.split("."):
                found = getattr(found, part)
        except (ImportError, AttributeError):
            return None
        return found if isinstance(found, type) else None

    def split_instance(self, instance: Any, args: tuple[Any, ...]) -> tuple[Any, tuple[Any, ...]]:
        """(instance, args) of a call, recognising ``cls`` passed as a plain first argument."""
        if (
            instance is None and args and self.home_qualname is not None
            and isinstance(args[0], type) and any(self.is_home(c) for c in args[0].__mro__)
        ):
            # ``@classmethod`` above ``@cached`` on Python >= 3.13 (which no longer chains
            # classmethod.__get__) calls the wrapper with cls as a plain first argument. A class
            # is never a valid key argument, so this cannot misread a real call.
            return args[0], args[1:]
        return instance, args

    def derive(self, namespace: str, digest_length: int, instance: Any, args: tuple[Any, ...],
               kwargs: dict[str, Any]) -> tuple[str, bytes]:
        """The Redis key and the argument fingerprint of one call."""
        if instance is None and not kwargs and self.key_fn is None:
            types = tuple(map(type, args))
            if _MEMO_TYPES.issuperset(types):
                memo_key = (namespace, digest_length, args, types)
                derived = self._memo.get(memo_key)
                if derived is None:
                    derived = self._derive(namespace, digest_length, None, args, kwargs)
                    if len(self._memo) >= _MEMO_SIZE:
                        self._memo.clear()
                    self._memo[memo_key] = derived
                return derived
        return self._derive(namespace, digest_length, instance, args, kwargs)

    def _derive(self, namespace: str, digest_length: int, instance: Any, args: tuple[Any, ...],
                kwargs: dict[str, Any]) -> tuple[str, bytes]:
        instance, args = self.split_instance(instance, args)
        if instance is None or self.method is None:
            binder = self.plain
            bound = binder.bind(args, kwargs)
        else:
            binder = self.method
            bound = binder.bind((instance, *args), kwargs)
        if self.key_fn is not None:
            custom = self.key_fn(*args, **kwargs)
            if not isinstance(custom, str) or not custom:
                raise TypeError(
                    f"key= of {self.owner} must return a non-empty str, got {custom!r}"
                )
            scope = self.scope(namespace, bound)
            return f"{scope}:{custom}", fingerprint_of(f"{self.owner}\0{custom}".encode())[1]
        items = binder.key_items(bound)
        if self.template is not None:
            # A shared prefix ("sql:{table}") must not let two functions serve each other's
            # results: the function is part of the digest (the default scope already names it).
            items = [("<function>", self.owner), *items]
        if instance is not None:
            cls = instance if isinstance(instance, type) else type(instance)
            if cls is not instance and getattr(cls, "__cache_key__", None) is not None:
                items = [("self", canonical_encode(instance, "self")), *items]
            elif not self.is_home(cls):
                # Called through a subclass: its entries must not be served to the base class
                # (a classmethod reading ``cls.table``, a method calling overridden helpers).
                items = [("<class>", f"{cls.__module__}.{cls.__qualname__}"), *items]
        digest, fingerprint = fingerprint_of(canonical_bytes(items))
        scope = self.scope(namespace, bound)
        return f"{scope}:{digest[: self.digest_length or digest_length]}", fingerprint
