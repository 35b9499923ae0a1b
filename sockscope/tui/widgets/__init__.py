"""Widgets of the sockscope TUI."""

from .filter_bar import FilterBar
from .signals_pane import SignalsPane
from .socket_table import SocketTable
from .stats_header import StatsHeader

__all__ = ["FilterBar", "SignalsPane", "SocketTable", "StatsHeader"]
