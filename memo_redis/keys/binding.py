"""Argument binding: which of a call's arguments make up its cache key, by parameter name."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from memo_redis.exceptions import ConfigError

__all__ = ["ArgumentBinder"]

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def _owner_name(func: Callable[..., Any]) -> str:
    module = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", None) or type(func).__qualname__
    return f"{module}.{qualname}" if module else qualname


class ArgumentBinder:
    """Bind a function's call arguments and select those that make up its cache key.

    Built once per decorated function; ``bind`` + ``key_items`` is the per-call work::

        >>> def fetch(table, columns, where=()): ...
        >>> binder = ArgumentBinder(fetch)
        >>> binder.key_items(binder.bind(("users", ["id"]), {}))
        [('table', 'users'), ('columns', ['id']), ('where', ())]

    ``skip_first`` drops the first parameter (``self`` or ``cls``) from the key; ``ignore``
    names parameters to drop (a name the function lacks is a ``ConfigError``).
    """

    __slots__ = (
        "_arity",
        "_default_of",
        "_defaults",
        "_key_names",
        "_keywords_ok",
        "_min_args",
        "_signature",
        "owner",
        "parameters",
    )

    parameters: tuple[str, ...]
    owner: str

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        ignore: Iterable[str] = (),
        skip_first: bool = False,
    ) -> None:
        self.owner = _owner_name(func)
        self._signature = inspect.signature(func)
        params = list(self._signature.parameters.values())
        self.parameters = tuple(p.name for p in params)
        if isinstance(ignore, str):
            raise ConfigError(
                f"ignore must be a collection of parameter names, not the str {ignore!r}; "
                f"write ignore=({ignore!r},)"
            )
        ignored = set(ignore)
        for name in sorted(ignored):
            if name not in self.parameters:
                raise ConfigError(
                    f"ignore names {name!r}, which is not a parameter of {self.owner}"
                )
        if skip_first:
            if not params or params[0].kind not in _POSITIONAL:
                raise ConfigError(
                    f"skip_first=True needs a first positional parameter (self or cls), "
                    f"but {self.owner} has none"
                )
            ignored.add(params[0].name)
        self._key_names = tuple(name for name in self.parameters if name not in ignored)
        # The fast path (no Signature.bind) serves purely positional calls of signatures
        # without *args, **kwargs or keyword-only parameters; -1 disables it.
        self._arity = len(params) if all(p.kind in _POSITIONAL for p in params) else -1
        defaults: list[object] = []
        for p in reversed(params):
            if p.default is inspect.Parameter.empty:
                break
            defaults.append(p.default)
        defaults.reverse()
        self._defaults = tuple(defaults)
        self._min_args = len(params) - len(defaults)
        # Keyword calls skip Signature.bind too when every parameter is positional-or-keyword.
        self._keywords_ok = all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in params)
        self._default_of = {
            p.name: p.default for p in params if p.default is not inspect.Parameter.empty
        }

    def __repr__(self) -> str:
        return f"<ArgumentBinder for {self.owner} key={list(self._key_names)}>"

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, object]:
        """Return every argument by parameter name, defaults applied, nothing ignored.

        ``*args`` arrive as a tuple and ``**kwargs`` as a dict; bad arguments raise the
        ``TypeError`` a call would.
        """
        n = len(args)
        if not kwargs:
            if n == self._arity:
                return dict(zip(self.parameters, args, strict=True))
            if self._min_args <= n < self._arity:
                values = args + self._defaults[n - self._min_args :]
                return dict(zip(self.parameters, values, strict=True))
        elif self._keywords_ok and n < self._arity:
            result = dict(zip(self.parameters[:n], args, strict=True))
            used = 0
            for name in self.parameters[n:]:
                if name in kwargs:
                    result[name] = kwargs[name]
                    used += 1
                elif name in self._default_of:
                    result[name] = self._default_of[name]
                else:
                    break
            else:
                if used == len(kwargs):
                    return result
            # A missing, duplicate or unknown argument: let Signature.bind raise the error.
        bound = self._signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return dict(bound.arguments)

    def key_items(self, bound: Mapping[str, object]) -> list[tuple[str, object]]:
        """Return the ``(name, value)`` pairs of the key, in signature order.

        Ignored and skipped parameters are left out, so ``f(1, 2)``, ``f(1, b=2)``,
        ``f(a=1, b=2)`` and (when 2 is ``b``'s default) ``f(1)`` give identical items.
        """
        return [(name, bound[name]) for name in self._key_names]
