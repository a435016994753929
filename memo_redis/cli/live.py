"""``memo-redis top`` (the busiest functions of every process, refreshing) and
``memo-redis server`` (a private server in the foreground).

``top`` reads what :class:`memo_redis.metrics.RedisMetricsPublisher` instances publish: the
processes to watch must run one. Calls per second are measured between two refreshes; the
first view (and ``--once``) shows the average since the figures were first published.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from types import FrameType
from typing import Any

from ..exceptions import ConfigError
from ..exporters.published import read_published
from ._common import (
    CLIError,
    Target,
    build_table,
    console,
    fmt_ratio,
    fmt_seconds,
    jsonable,
    print_json,
    print_table,
)

_COLUMNS = ["FUNCTION", "CATEGORY", "CALLS/S", "CALLS", "HIT %", "L1 %", "ERRORS",
            "P50 LOOKUP", "P99 LOOKUP"]


def _rows(current: dict[str, dict[str, Any]], previous: dict[str, dict[str, Any]] | None,
          elapsed: float, limit: int) -> list[dict[str, Any]]:
    """One row per function, busiest first."""
    rows = []
    for ident, entry in current.items():
        calls = int(entry["calls"])
        before = previous.get(ident) if previous is not None else None
        rate: float | None
        if previous is not None and elapsed > 0:
            rate = max(0, calls - (int(before["calls"]) if before else 0)) / elapsed
        else:
            span = ((entry.get("updated_ms") or 0) - (entry.get("first_ms") or 0)) / 1000
            rate = calls / span if span > 0 else None
        looked = int(entry["hits"]) + int(entry["l1_hits"]) + int(entry["misses"])
        rows.append({
            "function": entry["function"], "category": entry["category"],
            "calls_per_second": rate, "calls": calls, "hit_ratio": entry["hit_ratio"],
            "l1_ratio": int(entry["l1_hits"]) / looked if looked else None,
            "errors": int(entry["errors"]),
            "lookup_p50": entry["lookup_seconds"]["p50"],
            "lookup_p99": entry["lookup_seconds"]["p99"],
        })
    rows.sort(key=lambda r: (-(r["calls_per_second"] or 0.0), -r["calls"], r["function"]))
    return rows[:limit]


def _cells(row: dict[str, Any]) -> list[str]:
    rate = row["calls_per_second"]
    return [row["function"], row["category"], "-" if rate is None else f"{rate:.1f}",
            str(row["calls"]), fmt_ratio(row["hit_ratio"]), fmt_ratio(row["l1_ratio"]),
            str(row["errors"]), fmt_seconds(row["lookup_p50"]), fmt_seconds(row["lookup_p99"])]


def _title(target: Target, rows: list[dict[str, Any]]) -> str:
    stamp = time.strftime("%H:%M:%S")
    empty = "" if rows else " (nothing published: run a RedisMetricsPublisher in the processes)"
    return f"memo-redis top: {target.describe()} at {stamp}{empty}"


def cmd_top(target: Target, opts: argparse.Namespace) -> int:
    """Show the busiest functions, refreshing every ``--interval`` seconds (``--once``: once)."""
    if not opts.interval > 0:
        raise CLIError("--interval must be a positive number of seconds", 2)
    if opts.limit < 1:
        raise CLIError("--limit must be at least 1", 2)
    previous: dict[str, dict[str, Any]] | None = None
    last = time.monotonic()
    current = read_published(target.client)
    rows = _rows(current, None, 0.0, opts.limit)
    if opts.once:
        if opts.json:
            print_json({"target": target.describe(), "functions": rows})
        else:
            print_table(_COLUMNS, [_cells(r) for r in rows], title=_title(target, rows))
        return 0
    out = None if opts.json else console()
    live = None
    if out is not None and out.is_terminal:
        from rich.live import Live

        live = Live(build_table(_COLUMNS, [_cells(r) for r in rows], _title(target, rows)),
                    console=out, refresh_per_second=4, transient=False)
        live.start()
    try:
        while True:
            if live is None:
                _print_frame(target, rows, opts.json)
            time.sleep(opts.interval)
            previous, current = current, read_published(target.client)
            now = time.monotonic()
            rows = _rows(current, previous, now - last, opts.limit)
            last = now
            if live is not None:
                live.update(build_table(_COLUMNS, [_cells(r) for r in rows],
                                        _title(target, rows)))
    except KeyboardInterrupt:
        return 0
    finally:
        if live is not None:
            live.stop()


def _print_frame(target: Target, rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:  # one JSON document per line and refresh
        print(json.dumps(jsonable({"time": time.time(), "functions": rows})), flush=True)
    else:
        print_table(_COLUMNS, [_cells(r) for r in rows], title=_title(target, rows))
        sys.stdout.flush()


class _Stop(Exception):
    """Raised by the SIGTERM handler to leave the server's wait loop."""


def _on_term(signum: int, frame: FrameType | None) -> None:
    raise _Stop


def cmd_server(opts: argparse.Namespace) -> int:
    """Run a private server in the foreground until Ctrl-C or SIGTERM."""
    from ..embedded import EmbeddedServer

    if opts.port is not None and not 0 < opts.port < 65536:
        raise CLIError(f"--port must be between 1 and 65535, got {opts.port}", 2)
    try:
        server = EmbeddedServer(tcp=True, port=opts.port)
    except ConfigError as exc:
        raise CLIError(f"cannot start a server: {exc}", 2) from exc
    previous = signal.signal(signal.SIGTERM, _on_term)
    try:
        try:
            server.start()
        except RuntimeError as exc:
            raise CLIError(f"the server did not start: {exc}", 1) from exc
        url = server.tcp_url
        if opts.json:
            print(json.dumps({"url": url, "socket_url": server.url, "pid": server.pid,
                              "engine": server.engine, "version": server.version}), flush=True)
        else:
            print(f"REDIS_URL={url}", flush=True)
            print(f"{server.engine} {server.version} running (pid {server.pid}, socket "
                  f"{server.url}); Ctrl-C stops it and deletes its data", file=sys.stderr,
                  flush=True)
        while server.running:
            time.sleep(0.2)
        raise CLIError("the server exited unexpectedly", 1)
    except (KeyboardInterrupt, _Stop):
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.stop()
