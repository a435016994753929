"""``memo-redis keys``, ``get`` and ``invalidate``: look at entries, decode one, remove some.

An entry written by memo_redis is an envelope (:mod:`memo_redis.envelope`): ``0xC1``, flags,
then the 16-character *stamp* the store script computed from the generation tokens of the
entry's scopes (:mod:`memo_redis.layout`). A reader serves it only while the stamp equals
``sha1hex("|".join(current tokens))[:16]``: after an invalidation the tokens change, and the
entry stays in Redis, *invalidated*, until it is unlinked or expires.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from typing import Any

from .. import envelope
from ..facade import RedisCaching
from ..keys import glob_unescape, is_glob
from ..serialization import FLAG_CODEC_MASK, FLAG_ZLIB, DecodeError, Serializer
from ._common import (
    CLIError,
    Target,
    check_pattern,
    console,
    fmt_bytes,
    fmt_ttl,
    matching_keys,
    print_json,
    print_table,
    text,
)

_CODECS = {0: "msgpack", 1: "json", 2: "pickle"}
_SEALED = 0xF5
_HEAD = 2 + envelope.STAMP_SIZE


def _status(head: bytes | None, generations: list[bytes | None]) -> str:
    """``valid`` / ``invalidated`` for an envelope, else the value's kind."""
    if head is None or isinstance(head, Exception):
        return "other type"
    if not head:
        return "empty"
    if head[0] == _SEALED:
        return "sealed"
    if head[0] != envelope.MAGIC or len(head) < _HEAD:
        return "plain"
    if None in generations:
        return "invalidated"
    current = envelope.compute_stamp(generations)  # type: ignore[arg-type]
    return "valid" if head[2:_HEAD] == current else "invalidated"


def _describe_entries(target: Target, found: list[tuple[bytes, bytes]]) -> list[dict[str, Any]]:
    """TTL, size and status of each ``(physical, logical)`` entry, in one pipeline."""
    pipe = target.client.pipeline(transaction=False)
    for physical, logical in found:
        gens = target.layout.generation_keys(logical.decode("utf-8", "surrogateescape"))
        pipe.pttl(physical)
        pipe.strlen(physical)
        pipe.getrange(physical, 0, _HEAD - 1)
        pipe.execute_command("MGET", *gens)
    replies = pipe.execute(raise_on_error=False)
    out = []
    for i, (_, logical) in enumerate(found):
        ttl, size, head, gens = replies[4 * i: 4 * i + 4]
        if isinstance(head, Exception):
            head, size = None, None
        generations = list(gens) if isinstance(gens, list) else [None]
        out.append({
            "key": text(logical),
            "ttl_ms": ttl if isinstance(ttl, int) and ttl != -2 else None,
            "size": size if isinstance(size, int) else None,
            "status": _status(head, generations),
        })
    return out


def cmd_keys(target: Target, opts: argparse.Namespace) -> int:
    """List the entries matching a pattern, with TTL, size and stamp status."""
    pattern = check_pattern(opts.pattern)
    if opts.limit < 1:
        raise CLIError("--limit must be at least 1", 2)
    found: list[tuple[bytes, bytes]] = []
    truncated = False
    for pair in matching_keys(target, pattern):
        if len(found) >= opts.limit:
            truncated = True
            break
        found.append(pair)
    found.sort(key=lambda p: p[1])
    entries = _describe_entries(target, found) if found else []
    if opts.json:
        print_json({"pattern": pattern, "count": len(entries), "truncated": truncated,
                    "keys": entries})
        return 0
    rows = [[e["key"], fmt_ttl(e["ttl_ms"]), fmt_bytes(e["size"]), e["status"]] for e in entries]
    print_table(["KEY", "TTL", "SIZE", "STATUS"], rows)
    more = f" (stopped at --limit {opts.limit})" if truncated else ""
    print(f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'} matching {pattern!r}{more}")
    return 0


def _decode(raw: bytes, generations: list[bytes | None]) -> dict[str, Any]:
    """What a stored value is: its format, metadata and decoded value."""
    if raw and raw[0] == _SEALED:
        return {"format": "sealed", "value": None,
                "note": "sealed (signed or encrypted) value: not decoded here"}
    env = envelope.unpack(raw)
    if env is not None and env.flags & envelope.FLAG_SEALED:
        return {"format": "sealed", "stamp": env.stamp.decode("ascii", "replace"),
                "stamp_valid": _status(raw[:_HEAD], generations) == "valid", "value": None,
                "note": "sealed (signed or encrypted) value: not decoded here"}
    if env is None:
        try:
            return {"format": "plain-json", "codec": "json", "compressed": False,
                    "value": json.loads(raw)}
        except (ValueError, UnicodeDecodeError):
            return {"format": "unknown", "value": raw,
                    "note": "neither a memo_redis envelope nor JSON text"}
    codec = _CODECS.get(env.flags & FLAG_CODEC_MASK, "unknown")
    info: dict[str, Any] = {
        "format": "envelope",
        "codec": codec,
        "compressed": bool(env.flags & FLAG_ZLIB),
        "fingerprint": env.fingerprint.hex() if env.fingerprint else None,
        "stamp": env.stamp.decode("ascii", "replace"),
        "stamp_valid": _status(raw[:_HEAD], generations) == "valid",
        "body_size": len(env.body),
    }
    stored_ms = getattr(env, "stored_ms", 0)
    info["stored_at"] = _iso(stored_ms) if stored_ms else None
    info["expires_at"] = _iso(env.expires_ms) if env.expires_ms else None
    info["compute_ms"] = env.delta_ms if env.flags & envelope.FLAG_EARLY else None
    if codec == "pickle":
        info["value"] = None
        info["note"] = "pickle body: never unpickled by this command"
        return info
    try:
        info["value"] = Serializer().decode(env.flags, env.body)
    except DecodeError as exc:
        info["value"] = None
        info["note"] = f"cannot decode the body: {exc}"
    return info


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).isoformat(timespec="milliseconds")


def cmd_get(target: Target, opts: argparse.Namespace) -> int:
    """Show one entry's decoded value and metadata."""
    key: str = opts.key
    if target.layout.tagged and key.startswith("{"):  # a hash-tagged name, as cache_key() gives
        key = text(target.layout.logical(key.encode("utf-8", "surrogateescape")))
    physical = target.layout.physical(key)
    pipe = target.client.pipeline(transaction=False)
    pipe.get(physical)
    pipe.pttl(physical)
    pipe.type(physical)
    pipe.execute_command("MGET", *target.layout.generation_keys(key))
    raw, ttl, kind, gens = pipe.execute(raise_on_error=False)
    if raw is None:
        raise CLIError(f"no such key: {key!r}", 1)
    if isinstance(raw, Exception):
        kind_text = kind.decode() if isinstance(kind, bytes) else str(kind)
        raise CLIError(f"{key!r} holds a {kind_text}, not a cached value", 1)
    generations = list(gens) if isinstance(gens, list) else [None]
    info: dict[str, Any] = {"key": key, "size": len(raw),
                            "ttl_ms": ttl if isinstance(ttl, int) and ttl >= 0 else None}
    info.update(_decode(raw, generations))
    if opts.json:
        print_json(info)
        return 0
    value = info.pop("value")
    rows = [["ttl", fmt_ttl(-1 if v is None else v)] if name == "ttl_ms" else [name, _cell(v)]
            for name, v in info.items()]
    print_table(["FIELD", "VALUE"], rows)
    out = console()
    if out is None:
        import pprint

        print(pprint.pformat(value, width=100, sort_dicts=False))
    else:
        from rich.pretty import Pretty

        out.print(Pretty(value))
    return 0


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def cmd_invalidate(target: Target, opts: argparse.Namespace) -> int:
    """Invalidate like ``RedisCaching.invalidate(pattern)``, or count matches (``--dry-run``)."""
    pattern = check_pattern(opts.pattern)
    if opts.dry_run:
        if is_glob(pattern):
            count, sample = 0, list[str]()
            for count, (_, logical) in enumerate(matching_keys(target, pattern), 1):
                if count <= 10:
                    sample.append(text(logical))
        else:
            key = glob_unescape(pattern)
            count = int(target.client.exists(target.layout.physical(key)))
            sample = [key] if count else []
        if opts.json:
            print_json({"pattern": pattern, "dry_run": True, "matches": count,
                        "sample": sample})
            return 0
        print(f"{count} entr{'y' if count == 1 else 'ies'} match {pattern!r} (dry run: "
              "nothing changed)")
        for key in sample:
            print(f"  {key}")
        if count > len(sample):
            print(f"  ... and {count - len(sample)} more")
        return 0
    cache = RedisCaching(target.args, strict=True, failure_threshold=1_000_000)
    try:
        deleted = cache.invalidate(pattern)
    finally:
        cache.close()
    if opts.json:
        print_json({"pattern": pattern, "dry_run": False, "deleted": deleted})
        return 0
    print(f"invalidated {pattern!r}: {deleted} entr{'y' if deleted == 1 else 'ies'} deleted")
    return 0
