"""The SQL dialects: their names, how they fold table names, their built-in functions, and the
statement types refused in all of them."""

from __future__ import annotations

import string
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlglot import exp

__all__ = [
    "COMMON_FUNCTIONS",
    "DIALECT_FUNCTIONS",
    "REFUSED_FUNCTION_KEYS",
    "TOP_LEVEL_REFUSALS",
    "dialect_name",
    "fold",
]

_DIALECTS: dict[str, str] = {
    "sqlite": "sqlite",
    "postgres": "postgres",
    "postgresql": "postgres",
    "mysql": "mysql",
    "mariadb": "mysql",
}


def dialect_name(dialect: object) -> str | None:
    """sqlglot's name for ``dialect`` (None for generic SQL); ValueError when unknown."""
    if dialect is None:
        return None
    if isinstance(dialect, str) and dialect.lower() in _DIALECTS:
        return _DIALECTS[dialect.lower()]
    raise ValueError(
        f"unknown SQL dialect {dialect!r}: use one of {', '.join(sorted(_DIALECTS))} or None"
    )


_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def fold(ident: exp.Identifier, dialect: str | None) -> str:
    """A table (or CTE) name part as reported: see "Table names" in the
    :mod:`memo_redis.statements` docstring."""
    name: str = ident.this
    if dialect == "mysql":
        return name.lower()
    if dialect == "sqlite":
        return name.translate(_ASCII_LOWER)  # SQLite folds ASCII letters only
    return name if ident.quoted else name.translate(_ASCII_LOWER)  # PostgreSQL: ASCII only


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Built-in functions sqlglot may not model (it parses them as "anonymous" calls) whose result
# depends on their arguments (or the clock, or chance) and never on a table. Any other unknown
# function is refused: it may be user-defined and read or write any table. Deliberately absent:
# nextval/currval/setval/lastval, pg_*, txid_*, set_config, current_setting, query_to_xml,
# dblink, last_insert_id, found_rows, row_count, get_lock, sleep, benchmark, database, user,
# connection_id, changes, last_insert_rowid, total_changes, load_extension, sqlite_*.
COMMON_FUNCTIONS = _words(
    """
    abs avg ceil ceiling char_length character_length coalesce concat concat_ws count
    cume_dist date dense_rank exp first_value floor greatest lag last_value lead least left
    length ln log lower ltrim max md5 min mod nth_value ntile nullif octet_length percent_rank
    position power rank repeat replace reverse right round row_number rtrim sign sqrt stddev
    substr substring sum trim trunc upper variance random rand now current_date current_time
    current_timestamp localtime localtimestamp cast lpad rpad hex ifnull instr format
    """
)

DIALECT_FUNCTIONS: dict[str, frozenset[str]] = {
    "postgres": _words(
        """
        age array_agg array_append array_cat array_length array_lower array_position
        array_positions array_prepend array_remove array_replace array_to_json array_to_string
        array_upper ascii bit_length bool_and bool_or btrim cardinality chr clock_timestamp
        date_bin date_part date_trunc decode encode every extract gen_random_uuid initcap
        isfinite json_agg json_array_elements json_array_elements_text json_array_length
        json_build_array json_build_object json_each json_each_text json_extract_path
        json_extract_path_text json_object json_object_agg json_object_keys json_populate_record
        json_strip_nulls json_typeof jsonb_agg jsonb_array_elements jsonb_array_elements_text
        jsonb_array_length jsonb_build_array jsonb_build_object jsonb_each jsonb_each_text
        jsonb_extract_path jsonb_extract_path_text jsonb_insert jsonb_object jsonb_object_agg
        jsonb_object_keys jsonb_path_exists jsonb_path_query jsonb_path_query_array
        jsonb_path_query_first jsonb_pretty jsonb_set jsonb_strip_nulls jsonb_typeof
        justify_days justify_hours justify_interval make_date make_interval make_time
        make_timestamp make_timestamptz mode num_nonnulls num_nulls percentile_cont
        percentile_disc quote_ident quote_literal quote_nullable regexp_count regexp_instr
        regexp_like regexp_match regexp_matches regexp_replace regexp_split_to_array
        regexp_split_to_table regexp_substr row_to_json sha224 sha256 sha384 sha512 split_part
        starts_with statement_timestamp string_agg string_to_array strpos timeofday to_char
        to_date to_hex to_json to_jsonb to_number to_timestamp transaction_timestamp translate
        unnest uuid_generate_v4 width_bucket generate_series
        """
    ),
    "mysql": _words(
        """
        any_value bin bit_count char conv convert_tz crc32 curdate curtime date_add date_format
        date_sub datediff day dayname dayofmonth dayofweek dayofyear elt export_set field
        find_in_set from_days from_unixtime group_concat hour if inet6_aton inet6_ntoa inet_aton
        inet_ntoa insert json_array json_arrayagg json_contains json_contains_path json_depth
        json_extract json_keys json_length json_merge_patch json_merge_preserve json_object
        json_objectagg json_overlaps json_quote json_remove json_replace json_search json_set
        json_type json_unquote json_valid last_day lcase locate make_set makedate maketime
        microsecond minute month monthname oct ord period_add period_diff quarter regexp_instr
        regexp_like regexp_replace regexp_substr sec_to_time second sha1 sha2 soundex space
        str_to_date strcmp subdate substring_index sysdate time time_format time_to_sec
        timediff timestamp timestampadd timestampdiff to_days to_seconds truncate ucase unhex
        unix_timestamp utc_date utc_time utc_timestamp uuid values week weekday weekofyear year
        yearweek
        """
    ),
    "sqlite": _words(
        """
        char datetime glob group_concat iif json json_array json_array_length json_each
        json_extract json_group_array json_group_object json_insert json_object json_patch
        json_quote json_remove json_replace json_set json_tree json_type json_valid jsonb
        julianday like likelihood likely printf quote randomblob soundex strftime time timediff
        total typeof unhex unicode unixepoch unlikely zeroblob
        """
    ),
}
DIALECT_FUNCTIONS[""] = frozenset().union(*DIALECT_FUNCTIONS.values())

# Expression types (sqlglot "keys") that are calls with side effects on sequences.
REFUSED_FUNCTION_KEYS = frozenset({"nextvaluefor"})

# Statement types (sqlglot keys) and how they are refused.
TOP_LEVEL_REFUSALS: dict[str, str] = {
    "copy": "COPY moves rows between a table and a file or stream; it is not analysed",
    "pragma": "PRAGMA statements are not analysed",
    "show": "SHOW statements are not analysed",
    "describe": "DESCRIBE statements are not analysed",
}
