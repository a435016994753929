"""``@invalidates``: invalidate cache entries after the decorated function runs."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from ..context import get_default_cache
from ..exceptions import CacheUnavailable, ConfigError
from ..keys import ArgumentBinder, KeyTemplate
from .cached import check_cache, reject_generators, unwrap_descriptor
from .plan import owner_name
from .signatures import InvalidatesDecorator
from .wrappers import Wrapper

if TYPE_CHECKING:
    from ..facade import RedisCaching


def invalidates(
    *patterns: str,
    cache: RedisCaching | None = None,
    strict: bool | None = None,
) -> InvalidatesDecorator:
    """Invalidate cache entries after the decorated function runs (also when it raises).

    Patterns are Redis globs, literal (``"sql:users:*"``) or templates filled from the call's
    arguments (``"sql:{table}:*"``); substituted values are glob-escaped, so a table named
    ``users*`` never widens the match. The function's result or exception passes through
    unchanged. A failed invalidation is logged at error level (possible stale data), or raises
    ``CacheUnavailable`` with ``strict=True``.
    """
    if not patterns:
        raise ConfigError("@invalidates needs at least one pattern")
    if len(patterns) == 1 and callable(patterns[0]):
        raise TypeError(
            "@invalidates needs its patterns: write @invalidates(\"sql:{table}:*\"), not a bare "
            "@invalidates"
        )
    for pattern in patterns:
        if not isinstance(pattern, str) or not pattern:
            raise ConfigError(f"@invalidates patterns must be non-empty strings, got {pattern!r}")
    check_cache(cache)

    def decorate(target: Any) -> Any:
        raw = unwrap_descriptor(target)
        reject_generators(raw, "invalidates")
        binder = ArgumentBinder(raw)
        owner = owner_name(raw)
        templates = [KeyTemplate(p, binder.parameters, owner=owner) for p in patterns]

        def render(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[str]:
            if all(t.is_static for t in templates):
                return [t.render({}, escape=True) for t in templates]
            full = args if instance is None else (instance, *args)
            bound = binder.bind(full, kwargs)
            return [t.render(bound, escape=True) for t in templates]

        if inspect.iscoroutinefunction(raw):
            async def async_wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...],
                                    kwargs: dict[str, Any]) -> Any:
                rendered = render(instance, args, kwargs)
                try:
                    result = await wrapped(*args, **kwargs)
                except BaseException as exc:
                    await arun_invalidations(cache, rendered, strict, exc)
                    raise
                await arun_invalidations(cache, rendered, strict, None)
                return result

            return Wrapper(target, async_wrapper)

        def sync_wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...],
                         kwargs: dict[str, Any]) -> Any:
            rendered = render(instance, args, kwargs)
            try:
                result = wrapped(*args, **kwargs)
            except BaseException as exc:
                run_invalidations(cache, rendered, strict, exc)
                raise
            run_invalidations(cache, rendered, strict, None)
            return result

        return Wrapper(target, sync_wrapper)

    return cast(InvalidatesDecorator, decorate)


def run_invalidations(cache: RedisCaching | None, patterns: Sequence[str],
                      strict: bool | None, pending: BaseException | None) -> None:
    """Invalidate ``patterns`` after a write; a failure raises only in strict mode and only when
    the write itself succeeded (``pending`` is its exception, if any)."""
    target = cache if cache is not None else get_default_cache()
    strict_mode = target.strict if strict is None else strict
    for pattern in patterns:
        try:
            target.invalidate(pattern, strict=True)
        except CacheUnavailable:
            if strict_mode and pending is None:
                raise
            # fail open: invalidate() already logged the failure at error level


async def arun_invalidations(cache: RedisCaching | None, patterns: Sequence[str],
                             strict: bool | None, pending: BaseException | None) -> None:
    """Async :func:`run_invalidations`."""
    target = cache if cache is not None else get_default_cache()
    strict_mode = target.strict if strict is None else strict
    for pattern in patterns:
        try:
            await target.ainvalidate(pattern, strict=True)
        except CacheUnavailable:
            if strict_mode and pending is None:
                raise
