"""What every ``memo-redis`` command shares: the connection, errors, patterns and output.

Output is an aligned table drawn by rich when it is installed (extra ``cli``), plain text
otherwise; ``--json`` output never depends on rich.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import decimal
import json
import math
import sys
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from redis.exceptions import ClusterError, RedisClusterException
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..backend.clients import build_client
from ..config import RedisArgs
from ..keys import is_glob, matches
from ..layout import ClusterLayout, KeyLayout, is_internal

SCAN_COUNT = 1000
DEFAULT_TIMEOUT = 1.5
"""Seconds per connect and per command: an unreachable server is reported fast."""


class CLIError(Exception):
    """A failure reported as one line on stderr with exit status ``code``."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


# -- connection -----------------------------------------------------------------------------


UNREACHABLE: tuple[type[BaseException], ...] = (
    RedisConnectionError, RedisTimeoutError, OSError, ClusterError, RedisClusterException,
)
"""The errors that mean the server cannot be reached (exit status 1)."""


@dataclasses.dataclass
class Target:
    """A server to inspect: its settings, a bytes-level client (connected on first use) and
    the key layout."""

    args: RedisArgs
    layout: KeyLayout
    _client: Any = None

    @property
    def client(self) -> Any:
        """The redis-py client (a cluster client connects to its seed nodes here)."""
        if self._client is None:
            self._client = build_client(self.args)
        return self._client

    @property
    def topology(self) -> str:
        """``single``, ``cluster`` or ``sentinel``."""
        mode = self.args.mode
        return "single" if mode == "standalone" else mode

    def describe(self) -> str:
        """Where the server is (never the password)."""
        return self.args.describe()

    def close(self) -> None:
        """Close the client's connections."""
        if self._client is not None:
            self._client.close()


def redis_args(url: str | None, timeout: float) -> RedisArgs:
    """The settings from ``--url`` or the ``REDIS_*`` environment, with bounded timeouts and
    bytes replies. Raises :class:`~memo_redis.exceptions.ConfigError`."""
    args = RedisArgs.from_url(url) if url else RedisArgs.from_env()
    return dataclasses.replace(args, decode_responses=False, socket_timeout=timeout,
                               socket_connect_timeout=timeout)


def connect(args: RedisArgs) -> Target:
    """A :class:`Target` for ``args`` (nothing is sent yet)."""
    return Target(args, ClusterLayout() if args.mode == "cluster" else KeyLayout())


def scan(target: Target, match: str) -> Iterator[bytes]:
    """SCAN (COUNT 1000) every key matching ``match``, as bytes, on every primary."""
    for key in target.client.scan_iter(match=match, count=SCAN_COUNT):
        yield key if isinstance(key, bytes) else str(key).encode("utf-8", "surrogateescape")


# -- patterns -------------------------------------------------------------------------------


def check_pattern(pattern: str) -> str:
    """``pattern`` when it is a well-formed Redis glob, else a :class:`CLIError` (exit 2)."""
    if not pattern:
        raise CLIError("the pattern is empty: give a glob such as 'sql:users:*'", 2)
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            if i + 1 >= n:
                raise CLIError(f"the pattern {pattern!r} ends with a lone backslash", 2)
            i += 2
            continue
        if c == "[":
            j = i + 1
            if j < n and pattern[j] == "^":
                j += 1
            while j < n and pattern[j] != "]":
                j += 2 if pattern[j] == "\\" else 1
            if j >= n:
                raise CLIError(
                    f"unbalanced '[' at position {i} in the pattern {pattern!r} "
                    "(write '\\[' for a literal '[')", 2,
                )
            i = j
        i += 1
    return pattern


def scan_match(target: Target, pattern: str) -> str:
    """The SCAN MATCH finding ``pattern``'s keys (on a cluster: their hash-tagged names, or a
    superset filtered by :func:`matching_keys`)."""
    if not target.layout.tagged:
        return pattern
    colons = [i for i, ch in enumerate(pattern) if ch == ":" and (i == 0 or pattern[i - 1] != "\\")]
    literal = pattern[: colons[1]] if len(colons) >= 2 else pattern
    if colons and not is_glob(literal):
        return "{" + literal + "}" + pattern[len(literal):]
    return "*"


def matching_keys(target: Target, pattern: str) -> Iterator[tuple[bytes, bytes]]:
    """``(physical, logical)`` names of the cached entries matching ``pattern`` (bookkeeping
    keys skipped), found with SCAN."""
    tagged = target.layout.tagged
    for key in scan(target, scan_match(target, pattern)):
        if is_internal(key):
            continue
        logical = target.layout.logical(key)
        if tagged and not matches(pattern, logical):
            continue
        yield key, logical


def text(key: bytes) -> str:
    """A key for display (bytes that are not UTF-8 appear as ``\\xNN``)."""
    return key.decode("utf-8", "backslashreplace")


# -- output ---------------------------------------------------------------------------------


def jsonable(value: Any) -> Any:
    """``value`` in a form ``json.dumps`` accepts (tuples and sets become lists, dates ISO
    text, bytes UTF-8 text or ``{"base64": ...}``, other objects their ``repr``)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, dict):
        return {k if isinstance(k, str) else repr(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((jsonable(v) for v in value), key=repr)
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return {"base64": base64.b64encode(raw).decode()}
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (decimal.Decimal, uuid.UUID)):
        return str(value)
    return repr(value)


def print_json(data: Any) -> None:
    """Print ``data`` as indented JSON."""
    print(json.dumps(jsonable(data), indent=2, ensure_ascii=False))


def _rich() -> Any:
    try:
        import rich.console
    except ImportError:
        return None
    return rich.console


def console(stderr: bool = False) -> Any:
    """A rich Console (``None`` without rich); off a terminal it never folds long lines."""
    module = _rich()
    if module is None:
        return None
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else 1000
    return module.Console(file=stream, width=width)


def build_table(columns: Sequence[str], rows: Sequence[Sequence[str]],
                title: str | None = None) -> Any:
    """A rich Table (numeric-looking columns right-aligned), or plain text without rich."""
    right = [bool(rows) and all(_numeric(r[i]) for r in rows) for i in range(len(columns))]
    if _rich() is None:
        return _plain_table(columns, rows, title, right)
    from rich import box
    from rich.table import Table
    from rich.text import Text

    # Text, not str: a key or a function name holding "[...]" must not be read as markup.
    table = Table(title=Text(title) if title else None, box=box.SIMPLE_HEAD,
                  title_justify="left")
    for name, align in zip(columns, right, strict=True):
        table.add_column(Text(name), justify="right" if align else "left", no_wrap=True)
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    return table


def print_table(columns: Sequence[str], rows: Sequence[Sequence[str]],
                title: str | None = None) -> None:
    """Print an aligned table."""
    table = build_table(columns, rows, title)
    out = console()
    if out is None:
        print(table)
    else:
        out.print(table)


def _numeric(cell: str) -> bool:
    cell = cell.strip().rstrip("%sBKMGTi µm")
    return bool(cell) and (cell.replace(".", "", 1).lstrip("-").isdigit() or cell == "-")


def _plain_table(columns: Sequence[str], rows: Sequence[Sequence[str]], title: str | None,
                 right: Sequence[bool]) -> str:
    widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(columns)]

    def line(cells: Sequence[str]) -> str:
        parts = [c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right,
                                                                     strict=True)]
        return "  ".join(parts).rstrip()

    out = ["", title] if title else []
    out += [line(columns), line(["-" * w for w in widths]), *(line(r) for r in rows)]
    return "\n".join(out)


def fmt_bytes(n: float | None) -> str:
    """``1.5 KiB``-style sizes (``-`` for unknown)."""
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def fmt_ttl(ms: int | None) -> str:
    """A TTL in milliseconds as ``2h03m``, ``45s``, ``none`` (persistent) or ``-``."""
    if ms is None:
        return "-"
    if ms < 0:
        return "none"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{seconds:.0f}s"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    return f"{hours // 24}d{hours % 24:02d}h"


def fmt_seconds(s: float | None) -> str:
    """A latency as ``180µs``, ``2.5ms`` or ``1.20s``."""
    if s is None:
        return "-"
    if s < 0.001:
        return f"{s * 1e6:.0f}µs"
    if s < 1:
        return f"{s * 1e3:.1f}ms"
    return f"{s:.2f}s"


def fmt_ratio(r: float | None) -> str:
    """A ratio as a percentage (``-`` when undefined)."""
    return "-" if r is None else f"{r * 100:.1f}%"
