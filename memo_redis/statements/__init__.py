"""What one SQL statement reads and writes (being split into modules; see analysis.py for now)."""

from __future__ import annotations

from .analysis import Statement, StatementKind, UnsupportedStatement, analyze

__all__ = ["Statement", "StatementKind", "UnsupportedStatement", "analyze"]
