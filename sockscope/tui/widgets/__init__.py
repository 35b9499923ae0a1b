"""Widgets of the sockscope TUI."""

from .filter_bar import FilterBar
from .socket_table import SocketTable
from .stats_header import StatsHeader

__all__ = ["FilterBar", "SocketTable", "StatsHeader"]
