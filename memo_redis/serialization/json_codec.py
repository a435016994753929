"""The JSON codecs: compact UTF-8 (codec ``json``) and the seed deployment's ``json.dumps`` text."""

from __future__ import annotations

import json
from typing import NoReturn

from .errors import UnsupportedType

__all__ = ["JSON_ENCODER", "PLAIN_JSON_ENCODER", "json_encode"]


def _json_default(value: object) -> NoReturn:
    raise UnsupportedType(type(value))


_JSON_CONTAINERS = (dict, list, tuple)


def _check_json_keys(value: object) -> None:
    """Refuse non-str dict keys, which ``json`` would otherwise silently turn into strings."""
    stack = [value]
    seen: set[int] = set()  # a cycle must not loop forever
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    raise UnsupportedType(
                        type(key), " as a dict key (JSON object keys must be str)"
                    )
                if isinstance(child, _JSON_CONTAINERS):
                    stack.append(child)
        elif isinstance(item, (list, tuple)):
            stack.extend(child for child in item if isinstance(child, _JSON_CONTAINERS))


JSON_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=_json_default)
# Same output as the seed's json.dumps(value), but with a hook that names unsupported types.
PLAIN_JSON_ENCODER = json.JSONEncoder(default=_json_default)


def json_encode(encoder: json.JSONEncoder, value: object) -> bytes:
    """Encode ``value`` with ``encoder`` to UTF-8, refusing non-str dict keys."""
    try:
        body = encoder.encode(value).encode("utf-8")
    except TypeError:
        # json refuses keys such as tuples with a message that does not name the dict; report
        # the key's type the same way as for keys json would have coerced.
        _check_json_keys(value)
        raise
    # No "{" in the text means no dict anywhere, so the key walk can be skipped.
    if b"{" in body:
        _check_json_keys(value)
    return body
