"""Pure tests of memo_redis.config: environment parsing, precedence, validation, secrecy."""

from __future__ import annotations

import dataclasses

import pytest
import redis

from memo_redis import config
from memo_redis.config import RedisArgs, parse_bool, parse_host_ports
from memo_redis.exceptions import ConfigError, MemoRedisError

SOCKET = "/var/run/redis/redis.sock"
SECRET = "s3cret-Pa55"


def error_from_env(environ: dict[str, str]) -> str:
    """Return the ConfigError message from_env raises for ``environ``."""
    with pytest.raises(ConfigError) as info:
        RedisArgs.from_env(environ)
    return str(info.value)


# --- defaults and the seed example -------------------------------------------------------


def test_empty_environment_gives_defaults() -> None:
    """An empty environment yields the all-default settings: decode_responses only."""
    args = RedisArgs.from_env({})
    assert args == RedisArgs()
    assert args.to_redis_kwargs() == {"decode_responses": True}
    assert args.mode == "standalone"
    # Nothing sets the port: redis-py's own default is what describe() names.
    assert redis.connection.Connection().port == config.REDIS_DEFAULT_PORT  # never connects
    assert args.describe() == f"redis://localhost:{config.REDIS_DEFAULT_PORT}/0"


def test_seed_socket_example_gives_exact_kwargs() -> None:
    """The seed's socket + password environment maps to exactly three redis.Redis kwargs."""
    args = RedisArgs.from_env({"REDIS_SOCKET_PATH": SOCKET, "REDIS_PASSWORD": SECRET})
    assert args.socket_path == SOCKET
    assert args.password == SECRET
    assert args.to_redis_kwargs() == {
        "unix_socket_path": SOCKET,
        "password": SECRET,
        "decode_responses": True,
    }


def test_from_env_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an argument, from_env reads os.environ."""
    monkeypatch.setenv("REDIS_HOST", "cache.internal")
    monkeypatch.setenv("REDIS_PORT", "6380")
    for name in ("REDIS_URL", "REDIS_SOCKET_PATH"):
        monkeypatch.delenv(name, raising=False)
    args = RedisArgs.from_env()
    assert (args.host, args.port) == ("cache.internal", 6380)


def test_empty_strings_count_as_unset() -> None:
    """Empty variables behave as if absent, including for typed values."""
    environ = {name: "" for name in ("REDIS_URL", "REDIS_SOCKET_PATH", "REDIS_HOST", "REDIS_PORT",
                                     "REDIS_PASSWORD", "REDIS_DB", "REDIS_DECODE_RESPONSES",
                                     "REDIS_SOCKET_TIMEOUT", "REDIS_CLUSTER", "REDIS_SENTINELS")}
    assert RedisArgs.from_env(environ) == RedisArgs()


def test_tcp_variables_map_to_typed_kwargs() -> None:
    """Every TCP and pool variable is parsed to its type and passed under redis-py's name."""
    args = RedisArgs.from_env({
        "REDIS_HOST": "cache.internal",
        "REDIS_PORT": "6380",
        "REDIS_USERNAME": "app",
        "REDIS_PASSWORD": SECRET,
        "REDIS_DB": "3",
        "REDIS_DECODE_RESPONSES": "off",
        "REDIS_MAX_CONNECTIONS": "50",
        "REDIS_SOCKET_TIMEOUT": "30",
        "REDIS_SOCKET_CONNECT_TIMEOUT": "2.5",
    })
    assert args.to_redis_kwargs() == {
        "host": "cache.internal",
        "port": 6380,
        "username": "app",
        "password": SECRET,
        "db": 3,
        "decode_responses": False,
        "max_connections": 50,
        "socket_timeout": 30.0,
        "socket_connect_timeout": 2.5,
    }


@pytest.mark.parametrize(
    "args",
    [
        RedisArgs(socket_path=SOCKET, password=SECRET, db=2, max_connections=7),
        RedisArgs(host="cache.internal", port=6380, socket_timeout=1.5),
        RedisArgs.from_url("rediss://app:pw@cache.internal:6390/4"),
        RedisArgs.from_url(f"unix://{SOCKET}?db=5"),
    ],
    ids=["socket", "tcp", "rediss-url", "unix-url"],
)
def test_kwargs_are_accepted_by_redis_client(args: RedisArgs) -> None:
    """redis.Redis accepts the kwargs and its pool holds them (no connection is made)."""
    kwargs = args.to_redis_kwargs()
    pool = redis.Redis(**kwargs).connection_pool
    conn = pool.connection_kwargs
    if "unix_socket_path" in kwargs:
        assert conn["path"] == kwargs["unix_socket_path"]
    else:
        assert (conn["host"], conn["port"]) == (kwargs["host"], kwargs["port"])
    assert conn["db"] == kwargs.get("db", 0)
    assert conn["decode_responses"] is True
    assert pool.max_connections == kwargs.get("max_connections", pool.max_connections)
    if kwargs.get("ssl"):
        assert pool.connection_class is redis.SSLConnection


# --- URLs ------------------------------------------------------------------------------


def test_redis_url_is_parsed_by_redis_py() -> None:
    """A redis:// URL becomes host/port/username/password/db kwargs."""
    args = RedisArgs.from_env({"REDIS_URL": f"redis://app:{SECRET}@cache.internal:6380/2"})
    assert args.to_redis_kwargs() == {
        "host": "cache.internal",
        "port": 6380,
        "username": "app",
        "password": SECRET,
        "db": 2,
        "decode_responses": True,
    }


def test_rediss_url_sets_ssl_and_drops_connection_class() -> None:
    """rediss:// maps to ssl=True; redis-py's connection_class never leaks into the kwargs."""
    kwargs = RedisArgs.from_url("rediss://cache.internal").to_redis_kwargs()
    assert kwargs == {"host": "cache.internal", "ssl": True, "decode_responses": True}


def test_unix_url_maps_to_unix_socket_path() -> None:
    """unix:// maps its path to unix_socket_path and keeps the ?db= option."""
    kwargs = RedisArgs.from_url(f"unix://{SOCKET}?db=3").to_redis_kwargs()
    assert kwargs == {"unix_socket_path": SOCKET, "db": 3, "decode_responses": True}


def test_url_query_options_pass_through_but_fields_win() -> None:
    """URL query options reach redis-py; decode_responses is always the field's value."""
    args = RedisArgs.from_url(
        "redis://h/0?socket_timeout=3&decode_responses=true", decode_responses=False
    )
    kwargs = args.to_redis_kwargs()
    assert kwargs["socket_timeout"] == 3.0
    assert kwargs["decode_responses"] is False


def test_from_url_takes_overrides() -> None:
    """from_url(url, **overrides) equals the constructor with url= and the same overrides."""
    args = RedisArgs.from_url("redis://h:6380/1", password=SECRET, db=4)
    assert args == RedisArgs(url="redis://h:6380/1", password=SECRET, db=4)
    assert args.to_redis_kwargs()["db"] == 4


# --- precedence ------------------------------------------------------------------------


def test_url_beats_socket_path_and_host() -> None:
    """REDIS_URL wins: REDIS_SOCKET_PATH, REDIS_HOST and REDIS_PORT are ignored."""
    args = RedisArgs.from_env({
        "REDIS_URL": "redis://from-url:7000/0",
        "REDIS_SOCKET_PATH": SOCKET,
        "REDIS_HOST": "from-host",
        "REDIS_PORT": "7001",
    })
    assert (args.socket_path, args.host, args.port) == (None, None, None)
    kwargs = args.to_redis_kwargs()
    assert (kwargs["host"], kwargs["port"]) == ("from-url", 7000)
    assert "unix_socket_path" not in kwargs


def test_socket_path_beats_host_and_port() -> None:
    """REDIS_SOCKET_PATH wins over REDIS_HOST/REDIS_PORT."""
    args = RedisArgs.from_env(
        {"REDIS_SOCKET_PATH": SOCKET, "REDIS_HOST": "from-host", "REDIS_PORT": "7001"}
    )
    assert args.to_redis_kwargs() == {"unix_socket_path": SOCKET, "decode_responses": True}


def test_ignored_variables_are_not_parsed() -> None:
    """A lower-precedence variable is ignored entirely, even when its value is invalid."""
    args = RedisArgs.from_env({"REDIS_SOCKET_PATH": SOCKET, "REDIS_PORT": "abc"})
    assert args.port is None


def test_separate_credentials_and_db_override_the_url() -> None:
    """REDIS_USERNAME, REDIS_PASSWORD and REDIS_DB given beside REDIS_URL override its values."""
    args = RedisArgs.from_env({
        "REDIS_URL": "redis://url-user:url-pass@h:6380/1",
        "REDIS_USERNAME": "env-user",
        "REDIS_PASSWORD": SECRET,
        "REDIS_DB": "0",
    })
    kwargs = args.to_redis_kwargs()
    assert (kwargs["username"], kwargs["password"], kwargs["db"]) == ("env-user", SECRET, 0)


def test_direct_construction_rejects_two_targets() -> None:
    """Built in code, url with socket_path is an error rather than a silent precedence."""
    with pytest.raises(ConfigError, match="url and socket_path both name the server"):
        RedisArgs(url="redis://h", socket_path=SOCKET)


# --- bad values ------------------------------------------------------------------------


def test_bad_port_message_is_exact() -> None:
    """A non-numeric REDIS_PORT gives the documented message."""
    assert error_from_env({"REDIS_PORT": "abc"}) == (
        "REDIS_PORT must be an integer between 1 and 65535, got 'abc'"
    )


@pytest.mark.parametrize(
    ("variable", "raw"),
    [
        ("REDIS_PORT", "abc"),
        ("REDIS_PORT", "70000"),
        ("REDIS_PORT", "0"),
        ("REDIS_PORT", "63.5"),
        ("REDIS_DB", "x"),
        ("REDIS_DB", "-1"),
        ("REDIS_MAX_CONNECTIONS", "0"),
        ("REDIS_SOCKET_TIMEOUT", "0"),
        ("REDIS_SOCKET_TIMEOUT", "-1"),
        ("REDIS_SOCKET_TIMEOUT", "nan"),
        ("REDIS_SOCKET_CONNECT_TIMEOUT", "-2.5"),
        ("REDIS_SOCKET_CONNECT_TIMEOUT", "soon"),
        ("REDIS_DECODE_RESPONSES", "maybe"),
        ("REDIS_CLUSTER", "2"),
        ("REDIS_URL", "http://cache.internal:6390"),
        ("REDIS_URL", "redis://cache.internal/abc"),
        ("REDIS_URL", "redis://cache.internal:99999"),
        ("REDIS_URL", "redis://cache.internal/0?db=x"),
        ("REDIS_URL", "unix://"),
        ("REDIS_CLUSTER_NODES", "node-a"),
        ("REDIS_SENTINELS", "s1:26379,s2:99999"),
    ],
)
def test_bad_value_names_variable_and_value(variable: str, raw: str) -> None:
    """Each invalid value raises ConfigError naming the variable and quoting the value."""
    environ = {variable: raw}
    if variable == "REDIS_SENTINELS":
        environ["REDIS_SENTINEL_SERVICE"] = "mymaster"
    message = error_from_env(environ)
    assert message.startswith(f"{variable} ")
    assert repr(raw) in message


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"port": 0}, "port must be an integer between 1 and 65535, got 0"),
        ({"port": "6379"}, "port must be an integer between 1 and 65535, got '6379'"),
        ({"db": -1}, "db must be an integer >= 0, got -1"),
        ({"max_connections": 0}, "max_connections must be an integer >= 1, got 0"),
        ({"socket_timeout": 0.0},
         "socket_timeout must be a finite number of seconds > 0, got 0.0"),
        ({"socket_connect_timeout": -1},
         "socket_connect_timeout must be a finite number of seconds > 0"),
        ({"url": "http://h"}, "url must start with redis://, rediss:// or unix://, got 'http://h'"),
        ({"host": ""}, "host must be a non-empty string, got ''"),
        ({"cluster_nodes": (("h", 0),)}, "cluster_nodes must hold (host, port) pairs"),
    ],
)
def test_direct_construction_names_the_field(kwargs: dict[str, object], message: str) -> None:
    """Built in code, errors name the field (not the environment variable)."""
    with pytest.raises(ConfigError) as info:
        RedisArgs(**kwargs)  # type: ignore[arg-type]  # deliberately wrong values
    assert str(info.value).startswith(message)
    assert "REDIS_" not in str(info.value)


def test_config_error_is_a_value_error() -> None:
    """ConfigError can be caught as ValueError or as MemoRedisError."""
    with pytest.raises(ValueError):
        RedisArgs(db=-1)
    with pytest.raises(MemoRedisError):
        RedisArgs(db=-1)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("true", True), ("TRUE", True), ("1", True), ("yes", True), ("On", True),
     ("false", False), ("False", False), ("0", False), ("no", False), ("OFF", False)],
)
def test_parse_bool_accepts_documented_spellings(raw: str, expected: bool) -> None:
    """parse_bool accepts true/false, 1/0, yes/no, on/off in any case."""
    assert parse_bool("REDIS_CLUSTER", raw) is expected


def test_decode_responses_defaults_to_true_and_parses_false() -> None:
    """REDIS_DECODE_RESPONSES defaults to true and 'no' turns it off."""
    assert RedisArgs.from_env({}).decode_responses is True
    assert RedisArgs.from_env({"REDIS_DECODE_RESPONSES": "no"}).decode_responses is False


def test_parse_host_ports_accepts_spaces_ipv6_and_trailing_comma() -> None:
    """parse_host_ports tolerates spaces and a trailing comma and unbrackets IPv6 hosts."""
    assert parse_host_ports("REDIS_CLUSTER_NODES", " a:7000, [::1]:7001 ,") == (
        ("a", 7000),
        ("::1", 7001),
    )


@pytest.mark.parametrize("raw", ["a", "a:", ":7000", "a:port", "a:0", "a:²", ",", "a:7000,b"])
def test_parse_host_ports_rejects_malformed_entries(raw: str) -> None:
    """Any malformed entry makes parse_host_ports raise, quoting the whole value."""
    with pytest.raises(ConfigError) as info:
        parse_host_ports("REDIS_SENTINELS", raw)
    assert str(info.value).startswith("REDIS_SENTINELS must be comma-separated host:port pairs")
    assert repr(raw) in str(info.value)


# --- cluster / sentinel combinations ---------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "names"),
    [
        (
            {"REDIS_CLUSTER": "true", "REDIS_SENTINELS": "s:26379",
             "REDIS_SENTINEL_SERVICE": "mymaster"},
            ["REDIS_CLUSTER", "REDIS_SENTINELS"],
        ),
        ({"REDIS_CLUSTER": "true", "REDIS_SOCKET_PATH": SOCKET},
         ["REDIS_CLUSTER", "REDIS_SOCKET_PATH"]),
        ({"REDIS_CLUSTER": "true", "REDIS_URL": f"unix://{SOCKET}"},
         ["REDIS_CLUSTER", "REDIS_URL"]),
        (
            {"REDIS_SENTINELS": "s:26379", "REDIS_SENTINEL_SERVICE": "m",
             "REDIS_SOCKET_PATH": SOCKET},
            ["REDIS_SENTINELS", "REDIS_SOCKET_PATH"],
        ),
        (
            {"REDIS_SENTINELS": "s:26379", "REDIS_SENTINEL_SERVICE": "m",
             "REDIS_URL": f"unix://{SOCKET}"},
            ["REDIS_SENTINELS", "REDIS_URL"],
        ),
        ({"REDIS_SENTINELS": "s:26379"}, ["REDIS_SENTINELS", "REDIS_SENTINEL_SERVICE"]),
        ({"REDIS_SENTINEL_SERVICE": "mymaster"}, ["REDIS_SENTINEL_SERVICE", "REDIS_SENTINELS"]),
        ({"REDIS_CLUSTER": "true", "REDIS_DB": "3"}, ["REDIS_CLUSTER", "REDIS_DB=3"]),
        ({"REDIS_CLUSTER": "yes", "REDIS_URL": "redis://h:7000/2"},
         ["REDIS_CLUSTER", "database 2", "REDIS_URL"]),
        ({"REDIS_CLUSTER_NODES": "a:7000"}, ["REDIS_CLUSTER_NODES", "REDIS_CLUSTER"]),
    ],
    ids=["cluster+sentinels", "cluster+socket", "cluster+unix-url", "sentinels+socket",
         "sentinels+unix-url", "sentinels-no-service", "service-no-sentinels", "cluster+db",
         "cluster+url-db", "nodes-without-cluster"],
)
def test_bad_combination_names_the_variables(environ: dict[str, str], names: list[str]) -> None:
    """Contradictory cluster/sentinel settings raise ConfigError naming every variable involved."""
    message = error_from_env(environ)
    for name in names:
        assert name in message


def test_cluster_allows_database_zero() -> None:
    """REDIS_CLUSTER with REDIS_DB=0 and nodes is valid and reports cluster mode."""
    args = RedisArgs.from_env(
        {"REDIS_CLUSTER": "1", "REDIS_DB": "0", "REDIS_CLUSTER_NODES": "a:7000,b:7001"}
    )
    assert args.cluster_nodes == (("a", 7000), ("b", 7001))
    assert args.mode == "cluster"
    assert args.describe() == "cluster a:7000,b:7001"


def test_sentinel_settings_give_sentinel_mode() -> None:
    """REDIS_SENTINELS plus REDIS_SENTINEL_SERVICE give sentinel mode and a safe description."""
    args = RedisArgs.from_env({
        "REDIS_SENTINELS": "s1:26379,s2:26380",
        "REDIS_SENTINEL_SERVICE": "mymaster",
        "REDIS_PASSWORD": SECRET,
    })
    assert args.mode == "sentinel"
    assert args.sentinels == (("s1", 26379), ("s2", 26380))
    assert args.describe() == "sentinel mymaster via s1:26379,s2:26380 db=0"


def test_direct_combination_errors_name_fields() -> None:
    """Built in code, combination errors name the fields."""
    with pytest.raises(ConfigError, match=r"^cluster cannot be combined with db=1"):
        RedisArgs(cluster=True, db=1)


# --- describe, repr and secrecy --------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (RedisArgs(socket_path=SOCKET, password=SECRET), f"unix://{SOCKET} db=0"),
        (RedisArgs(host="h", port=6380, db=2, password=SECRET), "redis://h:6380/2"),
        (RedisArgs.from_url(f"rediss://app:{SECRET}@h:6390/1"), "rediss://app@h:6390/1"),
        (RedisArgs.from_url(f"unix://:{SECRET}@{SOCKET}?db=4"), f"unix://{SOCKET} db=4"),
        (RedisArgs(cluster=True, host="h", port=7000), "cluster redis://h:7000/0"),
    ],
    ids=["socket", "tcp", "rediss-url", "unix-url", "cluster-host"],
)
def test_describe_is_short_and_safe(args: RedisArgs, expected: str) -> None:
    """describe() names the target and database and never the password."""
    assert args.describe() == expected


def test_repr_masks_password_and_hides_defaults() -> None:
    """repr() shows password='***' and only the fields that differ from their defaults."""
    args = RedisArgs(socket_path=SOCKET, password=SECRET)
    assert repr(args) == f"RedisArgs(socket_path={SOCKET!r}, password='***')"
    assert str(args) == repr(args)
    assert repr(RedisArgs()) == "RedisArgs()"


@pytest.mark.parametrize(
    "url",
    [
        f"redis://app:{SECRET}@h:6380/0",
        f"rediss://:{SECRET}@h",
        f"redis://h/0?password={SECRET}",
        f"unix://:{SECRET}@{SOCKET}",
    ],
)
def test_password_in_url_never_shown(url: str) -> None:
    """A password inside REDIS_URL appears in neither repr, str nor describe."""
    args = RedisArgs.from_env({"REDIS_URL": url})
    assert args.to_redis_kwargs()["password"] == SECRET
    for text in (repr(args), str(args), args.describe()):
        assert SECRET not in text
    assert "***" in repr(args)


@pytest.mark.parametrize(
    ("environ", "masked"),
    [
        ({"REDIS_URL": f"http://app:{SECRET}@h"}, "'http://app:***@h'"),
        ({"REDIS_URL": f"redis://app:{SECRET}@h/abc"}, "'redis://app:***@h/abc'"),
        ({"REDIS_URL": f"redis://app:{SECRET}@h:99999"}, "'redis://app:***@h:99999'"),
        ({"REDIS_URL": f"redis://h/0?db=x&password={SECRET}"}, "'redis://h/0?db=x&password=***'"),
        ({"REDIS_URL": f"redis://:{SECRET}@h/3", "REDIS_CLUSTER": "1"}, "'redis://:***@h/3'"),
        ({"REDIS_PASSWORD": SECRET, "REDIS_PORT": "abc"}, "'abc'"),
    ],
    ids=["bad-scheme", "bad-db", "bad-port", "query-password", "cluster-db", "beside-password"],
)
def test_password_never_in_error_messages(environ: dict[str, str], masked: str) -> None:
    """Error messages quote URLs with the password masked and never contain it."""
    message = error_from_env(environ)
    assert SECRET not in message
    assert masked in message


def test_settings_are_frozen() -> None:
    """Fields cannot be reassigned after construction."""
    args = RedisArgs(host="h")
    with pytest.raises(dataclasses.FrozenInstanceError):
        args.host = "other"  # type: ignore[misc]  # assigning is the point of the test
    assert args.host == "h"


def test_settings_are_hashable_and_compare_by_value() -> None:
    """Equal settings are equal and hash alike, so they can key a client cache."""
    first = RedisArgs.from_env({"REDIS_HOST": "h", "REDIS_SENTINELS": "", "REDIS_DB": "1"})
    second = RedisArgs(host="h", db=1)
    assert first == second
    assert hash(first) == hash(second)
