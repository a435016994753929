"""Connection settings: :class:`RedisArgs`, read once from the environment or built in code.

This is the only memo_redis module that reads ``os.environ``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal
from urllib.parse import urlsplit

from redis.connection import parse_url as _untyped_parse_url

from memo_redis.exceptions import ConfigError

__all__ = [
    "CERT_REQS",
    "ENVIRONMENT_VARIABLES",
    "CertReqs",
    "RedisArgs",
    "disabled_by_environment",
    "parse_bool",
    "parse_host_ports",
]

# redis-py leaves parse_url unannotated; state the types it returns once, here.
_parse_url: Callable[[str], dict[str, Any]] = _untyped_parse_url

REDIS_DEFAULT_PORT = 6379
"""redis-py's port when none is set: memo_redis leaves it unset and names it only to describe a
target and to seed a cluster's discovery."""
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
_SCHEMES = ("redis://", "rediss://", "unix://")
_EXCLUSIVE_TARGETS = (
    ("url", "socket_path"),
    ("url", "host"),
    ("url", "port"),
    ("socket_path", "host"),
    ("socket_path", "port"),
)

CertReqs = Literal["required", "optional", "none"]
"""How the server's certificate is checked (``ssl_cert_reqs``): ``required`` (the default),
``optional`` (the same for a client, in Python's ``ssl``) or ``none`` (no check at all)."""
CERT_REQS: tuple[CertReqs, ...] = ("required", "optional", "none")
_TLS_FILES = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile")
_TLS_SETTINGS = (*_TLS_FILES, "ssl_cert_reqs")

# field -> (type, requirement shown in errors, range check)
_NUMBERS: dict[str, tuple[type[int] | type[float], str, Callable[[float], bool]]] = {
    "port": (int, "an integer between 1 and 65535", lambda n: 1 <= n <= 65535),
    "db": (int, "an integer >= 0", lambda n: n >= 0),
    "max_connections": (int, "an integer >= 1", lambda n: n >= 1),
    "socket_timeout": (float, "a finite number of seconds > 0", lambda n: 0 < n < math.inf),
    "socket_connect_timeout": (
        float, "a finite number of seconds > 0", lambda n: 0 < n < math.inf
    ),
}


def parse_bool(name: str, raw: str) -> bool:
    """Parse a boolean setting: true/false, 1/0, yes/no, on/off, in any case.

    >>> parse_bool("REDIS_CLUSTER", "Yes")
    True
    """
    text = raw.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"{name} must be one of true/false, 1/0, yes/no, on/off, got {raw!r}")


def parse_host_ports(name: str, raw: str) -> tuple[tuple[str, int], ...]:
    """Parse ``"host:port,host:port"`` (IPv6 hosts in brackets) into ``((host, port), ...)``.

    >>> parse_host_ports("REDIS_SENTINELS", "s1:26379, [::1]:26380")
    (('s1', 26379), ('::1', 26380))
    """
    message = f"{name} must be comma-separated host:port pairs with ports 1..65535, got {raw!r}"
    pairs = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        host, _, port = item.rpartition(":")
        host = host.strip("[]")
        if not (host and port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
            raise ConfigError(message)
        pairs.append((host, int(port)))
    if not pairs:
        raise ConfigError(message)
    return tuple(pairs)


@dataclass(frozen=True, slots=True)
class RedisArgs:
    """How to reach Redis; every field is optional and keyword-usable.

    Build it in code, from a URL (:meth:`from_url`) or from ``REDIS_*`` environment
    variables (:meth:`from_env`); each field ``x`` is read from ``REDIS_X``. Where to
    connect follows one precedence: ``REDIS_URL`` > ``REDIS_SOCKET_PATH`` >
    ``REDIS_HOST``/``REDIS_PORT``. Lower-ranked variables are ignored (not even parsed)
    when a higher one is set. ``REDIS_USERNAME``, ``REDIS_PASSWORD`` and ``REDIS_DB``
    given beside a URL override the URL's own values. Built in code, naming two
    targets at once (``url`` with ``socket_path``, ``socket_path`` with ``host``) is
    an error instead.

    TLS (:attr:`tls`) is on with a ``rediss://`` URL, ``ssl=True`` or any ``ssl_*``
    field (a ``rediss://`` URL's query may set them too; fields win), for every
    connection: server, cluster nodes, sentinels and primary. ``ssl_*`` beside a
    ``redis://`` URL, a unix socket or ``ssl=False`` is an error.

    Invalid values raise :class:`~memo_redis.exceptions.ConfigError` naming the
    variable (from :meth:`from_env`) or the field (otherwise) and the bad value;
    passwords never appear in errors, ``repr()`` or :meth:`describe`.

    >>> args = RedisArgs.from_env({"REDIS_SOCKET_PATH": "/var/run/redis/redis.sock"})
    >>> args.to_redis_kwargs()
    {'unix_socket_path': '/var/run/redis/redis.sock', 'decode_responses': True}
    """

    url: str | None = None
    socket_path: str | None = None
    host: str | None = None
    port: int | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    db: int | None = None
    decode_responses: bool = True
    max_connections: int | None = None
    socket_timeout: float | None = None
    socket_connect_timeout: float | None = None
    cluster: bool = False
    cluster_nodes: tuple[tuple[str, int], ...] = ()
    sentinels: tuple[tuple[str, int], ...] = ()
    sentinel_service: str | None = None
    ssl: bool | None = None
    ssl_ca_certs: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_cert_reqs: CertReqs | None = None

    def __post_init__(self) -> None:
        _validate({f.name: getattr(self, f.name) for f in fields(self)}, str)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RedisArgs:
        """Read the ``REDIS_*`` variables from ``environ`` (default ``os.environ``).

        Empty values count as unset. Booleans accept true/false, 1/0, yes/no, on/off;
        ``REDIS_CLUSTER_NODES`` and ``REDIS_SENTINELS`` take ``host:port,host:port``;
        ``REDIS_SSL_CERT_REQS`` takes required/optional/none in any case.
        """
        env = os.environ if environ is None else environ
        raw = {f.name: env.get(_env_name(f.name)) or None for f in fields(cls)}
        if raw["url"]:
            raw["socket_path"] = None
        if raw["url"] or raw["socket_path"]:
            raw["host"] = raw["port"] = None
        values = {
            name: _parse_env(name, text) for name, text in raw.items() if text is not None
        }
        # Validate under the variables' names first, so errors name what the user set.
        defaults = {f.name: f.default for f in fields(cls)}
        _validate({**defaults, **values}, _env_name)
        return cls(**values)

    @classmethod
    def from_url(cls, url: str, **overrides: Any) -> RedisArgs:
        """Build from a ``redis://``, ``rediss://`` or ``unix://`` URL plus field overrides.

        >>> RedisArgs.from_url("redis://cache:6380/2", socket_timeout=1.5).describe()
        'redis://cache:6380/2'
        """
        return cls(url=url, **overrides)

    @property
    def mode(self) -> Literal["standalone", "cluster", "sentinel"]:
        """The deployment kind these settings describe."""
        if self.cluster:
            return "cluster"
        return "sentinel" if self.sentinels else "standalone"

    @property
    def tls(self) -> bool:
        """Whether connections use TLS (``rediss://``, ``ssl=True`` or any ``ssl_*`` field)."""
        if self.ssl is not None:
            return self.ssl
        settings = [getattr(self, name) for name in _TLS_SETTINGS]
        return (self.url or "").startswith("rediss://") or any(v is not None for v in settings)

    def to_redis_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``redis.Redis(**kwargs)``, holding only what is set.

        A URL is parsed by redis-py (``ssl=True`` for ``rediss://``, ``unix_socket_path``
        for ``unix://``); its query options pass through, and explicit fields override it.

        >>> RedisArgs(host="cache", port=6380, password="s3cret").to_redis_kwargs()
        {'host': 'cache', 'port': 6380, 'password': 's3cret', 'decode_responses': True}
        """
        kwargs: dict[str, Any] = {}
        if self.url is not None:
            options = _parse_url(self.url)
            options.pop("connection_class", None)  # expressed as ssl / unix_socket_path
            if "path" in options:
                kwargs["unix_socket_path"] = options.pop("path")
            kwargs.update(options)
        if self.tls:
            kwargs["ssl"] = True
        explicit = {
            "unix_socket_path": self.socket_path,
            "host": self.host,
            "port": self.port,
            "username": self.username,
            "password": self.password,
            "db": self.db,
            "max_connections": self.max_connections,
            "socket_timeout": self.socket_timeout,
            "socket_connect_timeout": self.socket_connect_timeout,
            **{name: getattr(self, name) for name in _TLS_SETTINGS},
        }
        kwargs.update({key: value for key, value in explicit.items() if value is not None})
        kwargs["decode_responses"] = self.decode_responses
        return kwargs

    def describe(self) -> str:
        """A short description safe to log (never the password, never a file's contents).

        TLS shows as ``rediss://`` or ``tls``, then ``client-cert`` and ``verify=none``.

        >>> RedisArgs(socket_path="/var/run/redis/redis.sock").describe()
        'unix:///var/run/redis/redis.sock db=0'
        """
        kw = self.to_redis_kwargs()
        reqs = kw.get("ssl_cert_reqs")
        extras = " client-cert" if kw.get("ssl_certfile") else ""
        extras += f" verify={reqs}" if reqs in ("optional", "none") else ""
        tls = f" tls{extras}" if self.tls else ""
        if self.mode == "sentinel":
            via = _join(self.sentinels)
            return f"sentinel {self.sentinel_service} via {via} db={self.db or 0}{tls}"
        if self.cluster_nodes:
            return f"cluster {_join(self.cluster_nodes)}{tls}"
        db = kw.get("db", 0)
        if "unix_socket_path" in kw:
            target = f"unix://{kw['unix_socket_path']} db={db}"
        else:
            scheme = "rediss" if kw.get("ssl") else "redis"
            user = f"{kw['username']}@" if "username" in kw else ""
            host = f"{kw.get('host', 'localhost')}:{kw.get('port', REDIS_DEFAULT_PORT)}"
            target = f"{scheme}://{user}{host}/{db}{extras}"
        return f"cluster {target}" if self.cluster else target

    def __repr__(self) -> str:
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value == f.default:
                continue
            if not f.repr:  # secret fields
                shown.append(f"{f.name}='***'")
            else:
                shown.append(f"{f.name}={_mask_url(value) if f.name == 'url' else value!r}")
        return f"RedisArgs({', '.join(shown)})"


def _env_name(field_name: str) -> str:
    return f"REDIS_{field_name.upper()}"


def _parse_env(field_name: str, raw: str) -> Any:
    name = _env_name(field_name)
    if field_name in ("decode_responses", "cluster", "ssl"):
        return parse_bool(name, raw)
    if field_name == "ssl_cert_reqs":
        if raw.strip().lower() not in CERT_REQS:
            raise ConfigError(f"{name} must be one of required, optional, none, got {raw!r}")
        return raw.strip().lower()
    if field_name in ("cluster_nodes", "sentinels"):
        return parse_host_ports(name, raw)
    if field_name in _NUMBERS:
        kind, requirement, _ = _NUMBERS[field_name]
        try:
            number = kind(raw)
        except ValueError:
            number = None
        if number is None or not _number_ok(field_name, number):
            raise ConfigError(f"{name} must be {requirement}, got {raw!r}")
        return number
    return raw


def _number_ok(field_name: str, value: object) -> bool:
    kind, _, in_range = _NUMBERS[field_name]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return (kind is float or isinstance(value, int)) and in_range(value)


def _mask_url(url: str) -> str:
    """``url`` with the password in its userinfo or ``?password=`` replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    masked = url
    if parts.password:
        userinfo, _, hostport = parts.netloc.rpartition("@")
        masked = masked.replace(parts.netloc, f"{userinfo.partition(':')[0]}:***@{hostport}", 1)
    if parts.query:
        query = "&".join(
            "password=***" if item.partition("=")[0] == "password" else item
            for item in parts.query.split("&")
        )
        masked = masked.replace(f"?{parts.query}", f"?{query}", 1)
    return masked


def _check_url(name: str, url: str) -> dict[str, Any]:
    """Validate ``url`` as redis-py will parse it; return redis-py's options."""
    shown = _mask_url(url)
    if not url.startswith(_SCHEMES):
        raise ConfigError(f"{name} must start with redis://, rediss:// or unix://, got {shown!r}")
    try:
        options = _parse_url(url)
    except ValueError as exc:
        raise ConfigError(f"{name} is not a valid Redis URL ({exc}), got {shown!r}") from exc
    if url.startswith("unix://") and not options.get("path"):
        raise ConfigError(f"{name} must name a socket, like unix:///path/redis.sock, got {shown!r}")
    # redis-py silently ignores a path that is not a number; that would connect to db 0.
    if "db" not in options and urlsplit(url).path.strip("/") and not url.startswith("unix://"):
        raise ConfigError(f"{name} must end with a database number such as /0, got {shown!r}")
    db: int | None = options.get("db")
    if db is not None and not _number_ok("db", db):
        raise ConfigError(f"{name} must name a database >= 0, got {shown!r}")
    return options


def _check_file(name: str, path: object) -> None:
    if not isinstance(path, str) or not path.strip() or "\n" in path or "-----BEGIN" in path:
        shown = "PEM text" if "-----BEGIN" in str(path) else repr(path)  # never echo a key
        raise ConfigError(f"{name} must be the path of a PEM file, got {shown}")
    problem = ("names no existing file" if not os.path.exists(path) else
               "names a directory, not a file" if not os.path.isfile(path) else
               "names a file this process cannot read" if not os.access(path, os.R_OK) else "")
    if problem:
        raise ConfigError(f"{name} {problem}: {path!r}")


def _check_tls(
    values: Mapping[str, Any], label: Callable[[str], str], url_options: Mapping[str, Any]
) -> None:
    """Files that exist, a known verification mode, TLS only where it can run."""
    from_url = {name: url_options[name] for name in _TLS_SETTINGS if name in url_options}
    given = {name: values[name] for name in _TLS_SETTINGS if values[name] is not None}

    def in_url(name: str) -> str:
        return f"{label('url')} option {name}"

    source = {**{name: in_url(name) for name in from_url}, **{name: label(name) for name in given}}
    for settings, where in ((from_url, in_url), (given, label)):
        for name, value in settings.items():
            if name != "ssl_cert_reqs":
                _check_file(where(name), value)
            elif value not in CERT_REQS:
                raise ConfigError(
                    f"{where(name)} must be one of required, optional, none, got {value!r}")
    if "ssl_keyfile" in source and "ssl_certfile" not in source:
        raise ConfigError(f"{source['ssl_keyfile']} requires {label('ssl_certfile')}: "
                          "a private key is only used with its client certificate")
    url, ssl = values["url"] or "", values["ssl"]
    turned_on = list(source.values()) + ([label("ssl")] if ssl else [])
    if ssl is False and (source or url.startswith("rediss://")):
        cause = ", ".join(source.values()) or f"the rediss:// {label('url')}"
        raise ConfigError(f"{label('ssl')} is false but {cause} turns TLS on")
    if turned_on and url.startswith("redis://"):
        raise ConfigError(f"{turned_on[0]} turns TLS on but {label('url')} is a plain "
                          "redis:// URL: use rediss://")
    if turned_on and (values["socket_path"] is not None or url.startswith("unix://")):
        socket = label("socket_path") if values["socket_path"] is not None else label("url")
        raise ConfigError(f"{turned_on[0]} cannot be combined with the unix socket of "
                          f"{socket}: TLS needs a TCP connection")


def _validate(values: Mapping[str, Any], label: Callable[[str], str]) -> None:
    """Check field ``values``; errors call each field ``label(field_name)``."""
    for name in _NUMBERS:
        value = values[name]
        if value is not None and not _number_ok(name, value):
            raise ConfigError(f"{label(name)} must be {_NUMBERS[name][1]}, got {value!r}")
    for name in ("socket_path", "host", "sentinel_service"):
        if values[name] is not None and not str(values[name]).strip():
            raise ConfigError(f"{label(name)} must be a non-empty string, got {values[name]!r}")
    for name in ("cluster_nodes", "sentinels"):
        pairs = values[name]
        if not all(
            isinstance(pair, tuple) and len(pair) == 2 and pair[0] and _number_ok("port", pair[1])
            for pair in pairs
        ):
            raise ConfigError(f"{label(name)} must hold (host, port) pairs, got {pairs!r}")

    url, socket_path = values["url"], values["socket_path"]
    url_options = {} if url is None else _check_url(label("url"), url)
    url_db = url_options.get("db")
    for first, second in _EXCLUSIVE_TARGETS:
        if values[first] is not None and values[second] is not None:
            raise ConfigError(
                f"{label(first)} and {label(second)} both name the server; set only one"
            )

    _check_tls(values, label, url_options)

    cluster, sentinels = values["cluster"], values["sentinels"]
    if cluster and sentinels:
        raise ConfigError(f"{label('cluster')} and {label('sentinels')} cannot be combined")
    if values["cluster_nodes"] and not cluster:
        raise ConfigError(f"{label('cluster_nodes')} requires {label('cluster')} to be true")
    if sentinels and not values["sentinel_service"]:
        raise ConfigError(f"{label('sentinels')} requires {label('sentinel_service')}")
    if values["sentinel_service"] and not sentinels:
        raise ConfigError(f"{label('sentinel_service')} requires {label('sentinels')}")
    if cluster or sentinels:
        mode = label("cluster" if cluster else "sentinels")
        if socket_path is not None:
            raise ConfigError(
                f"{mode} cannot be combined with {label('socket_path')}: it needs TCP addresses"
            )
        if url is not None and url.startswith("unix://"):
            raise ConfigError(
                f"{mode} cannot be combined with a unix:// {label('url')}: it needs TCP addresses"
            )
    if cluster:
        if values["db"]:
            raise ConfigError(
                f"{label('cluster')} cannot be combined with {label('db')}={values['db']}: "
                "Redis Cluster only has database 0"
            )
        if url_db and values["db"] is None:
            raise ConfigError(
                f"{label('cluster')} cannot be combined with database {url_db} from "
                f"{label('url')} {_mask_url(url)!r}: Redis Cluster only has database 0"
            )


def _join(pairs: tuple[tuple[str, int], ...]) -> str:
    return ",".join(f"{host}:{port}" for host, port in pairs)


ENVIRONMENT_VARIABLES: tuple[str, ...] = tuple(_env_name(f.name) for f in fields(RedisArgs))
"""Every variable :meth:`RedisArgs.from_env` reads (``REDIS_URL``, ``REDIS_HOST``, ...)."""


def disabled_by_environment(environ: Mapping[str, str] | None = None) -> bool:
    """``MEMO_REDIS_DISABLED`` (true/false/1/0/yes/no/on/off; unset or empty: false).

    Raises :class:`ConfigError` naming the variable for any other value.
    """
    env = os.environ if environ is None else environ
    raw = env.get("MEMO_REDIS_DISABLED", "").strip()
    return parse_bool("MEMO_REDIS_DISABLED", raw) if raw else False


SIGNING_KEY_VARIABLE = "MEMO_REDIS_SIGNING_KEY"
ENCRYPTION_KEY_VARIABLE = "MEMO_REDIS_ENCRYPTION_KEY"


def sealing_keys_from_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``MEMO_REDIS_SIGNING_KEY`` and ``MEMO_REDIS_ENCRYPTION_KEY``, by name, when set.

    Empty values count as unset. Each holds comma-separated keys, the first one sealing (see
    :mod:`memo_redis.key_rings`); :class:`~memo_redis.RedisCaching` parses them with the
    variable's name as the source, so a bad value is a :class:`ConfigError` naming the variable,
    never showing the value. They are secrets: never log them.
    """
    env = os.environ if environ is None else environ
    return {name: env[name] for name in (SIGNING_KEY_VARIABLE, ENCRYPTION_KEY_VARIABLE)
            if env.get(name)}


ENVIRONMENT_VARIABLES = (*ENVIRONMENT_VARIABLES, SIGNING_KEY_VARIABLE, ENCRYPTION_KEY_VARIABLE)
"""Every variable memo_redis reads to configure a cache: :meth:`RedisArgs.from_env`'s
(``REDIS_URL``, ``REDIS_HOST``, ...) and the sealing keys (``MEMO_REDIS_SIGNING_KEY``,
``MEMO_REDIS_ENCRYPTION_KEY``)."""
