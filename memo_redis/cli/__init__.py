"""``memo-redis``: look inside a memo_redis cache from a terminal or a script.

::

    memo-redis health                      # exit 0/1, latency, engine, version, topology
    memo-redis stats [--sample N]          # memory, hit rate, entries per group and category
    memo-redis keys 'sql:users:*'          # TTL, size, valid or invalidated, per entry
    memo-redis get 'sql:users:data:ab12'   # the decoded value and its metadata
    memo-redis invalidate 'sql:users:*' [--dry-run]
    memo-redis top [--interval S] [--once] # busiest functions of every process
    memo-redis server [--port N]           # a private server in the foreground

The server is the library's: ``REDIS_URL`` and the other ``REDIS_*`` variables, or ``--url``.
Every command takes ``--json``. Exit status: 0 success, 1 an unreachable server or a missing
key (one line on stderr), 2 bad configuration or arguments (a malformed pattern, a bad
``REDIS_PORT``). Keys are found with SCAN only, so a command never blocks the server.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Callable, Sequence

from redis.exceptions import RedisError

from ..exceptions import CacheUnavailable, ConfigError
from ._common import DEFAULT_TIMEOUT, UNREACHABLE, CLIError, Target, connect, redis_args

__all__ = ["build_parser", "main"]

_PROG = "memo-redis"
_DOWN: tuple[type[BaseException], ...] = (CacheUnavailable, *UNREACHABLE)


def _command(parent: argparse._SubParsersAction[argparse.ArgumentParser], name: str,
             help_text: str) -> argparse.ArgumentParser:
    sub = parent.add_parser(name, help=help_text, description=help_text)
    sub.add_argument("--json", action="store_true", help="print JSON for scripts")
    return sub


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``memo-redis``."""
    parser = argparse.ArgumentParser(
        prog=_PROG, description="Inspect and operate a memo_redis cache.",
        epilog="Connection: --url, else the REDIS_* environment (REDIS_URL, REDIS_HOST, ...).",
    )
    parser.add_argument("--url", help="Redis URL (redis://, rediss://, unix://); default: the "
                        "REDIS_* environment")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="also print the library's log messages")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help=f"seconds per connect and per command (default {DEFAULT_TIMEOUT})")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    _command(commands, "health", "check that the server answers; exit 0 or 1")

    stats = _command(commands, "stats", "memory, hit rate and entries per group and category")
    stats.add_argument("--sample", type=int, metavar="N",
                       help="stop the scan after N entries (figures are then sampled)")

    keys = _command(commands, "keys", "entries matching a pattern, with TTL, size and status")
    keys.add_argument("pattern", help="a Redis glob, e.g. 'sql:users:*'")
    keys.add_argument("--limit", type=int, default=100, help="at most N entries (default 100)")

    get = _command(commands, "get", "one entry's decoded value and metadata")
    get.add_argument("key")

    inv = _command(commands, "invalidate", "invalidate the entries matching a pattern")
    inv.add_argument("pattern", help="a Redis glob, e.g. 'sql:users:*'")
    inv.add_argument("--dry-run", action="store_true",
                     help="only count the matches and show a sample")

    top = _command(commands, "top", "live view of the busiest functions (published metrics)")
    top.add_argument("--interval", type=float, default=2.0, help="refresh period in seconds")
    top.add_argument("--once", action="store_true", help="print one table and exit")
    top.add_argument("--limit", type=int, default=20, help="at most N functions (default 20)")

    server = _command(commands, "server", "run a private server in the foreground")
    server.add_argument("--port", type=int, help="TCP port (default: a free one)")
    return parser


def _handlers() -> dict[str, Callable[[Target, argparse.Namespace], int]]:
    from .inspect import cmd_get, cmd_invalidate, cmd_keys
    from .live import cmd_top
    from .stats import cmd_health, cmd_stats

    return {"health": cmd_health, "stats": cmd_stats, "keys": cmd_keys, "get": cmd_get,
            "invalidate": cmd_invalidate, "top": cmd_top}


def _fail(message: str, code: int) -> int:
    print(f"{_PROG}: {message}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``memo-redis`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    opts = build_parser().parse_args(argv)
    library_log = logging.getLogger("memo_redis")
    if opts.verbose:
        logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    else:  # failures are reported once, as the command's own one-line error
        library_log.addHandler(logging.NullHandler())
        library_log.propagate = False
    target: Target | None = None
    try:
        if opts.command == "server":
            from .live import cmd_server

            return cmd_server(opts)
        if not 0 < opts.timeout <= 60:
            raise CLIError("--timeout must be a number of seconds in (0, 60]", 2)
        target = connect(redis_args(opts.url, opts.timeout))
        return _handlers()[opts.command](target, opts)
    except CLIError as exc:
        return _fail(str(exc), exc.code)
    except ConfigError as exc:
        return _fail(f"configuration error: {exc}", 2)
    except _DOWN as exc:
        where = target.describe() if target is not None else "the server"
        cause = exc.__cause__ if isinstance(exc, CacheUnavailable) and exc.__cause__ else exc
        return _fail(f"cannot reach {where}: {cause}", 1)
    except RedisError as exc:
        return _fail(f"redis error: {exc}", 1)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. piped into head
        sys.stderr.close()
        return 0
    finally:
        if target is not None:
            with contextlib.suppress(Exception):  # closing must not hide the real outcome
                target.close()
