"""SQL caching: the seed's read-through and write-through API (:mod:`.seed`) and transaction
blocks whose invalidations survive the commit (:mod:`.transactions`)."""

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
    "get_data_from_table",
    "sql_cache_key",
    "table_pattern",
    "transaction",
    "update_data_in_table",
]
