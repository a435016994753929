"""SQL caching: the seed's read-through and write-through API (:mod:`.seed`), statements cached
under every table they read (:mod:`.queries`), transaction blocks whose invalidations survive the
commit (:mod:`.transactions`), and the SQL methods of ``RedisCaching`` (:mod:`.methods`)."""

from .queries import aread_tables, read_tables, table_pattern_of
from .seed import (
    SQLCacheOrchestrator,
    get_data_from_table,
    sql_cache_key,
    table_pattern,
    update_data_in_table,
)
from .transactions import Transaction, transaction

__all__ = [
    "SQLCacheOrchestrator",
    "Transaction",
    "aread_tables",
    "get_data_from_table",
    "read_tables",
    "sql_cache_key",
    "table_pattern",
    "table_pattern_of",
    "transaction",
    "update_data_in_table",
]
