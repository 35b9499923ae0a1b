"""Screens of the sockscope TUI (all modal, over the main screen)."""

from .bind_check import BindCheckScreen
from .details import DetailsScreen
from .free_port import FreePortScreen
from .help import HelpScreen
from .namespaces import NamespacesScreen
from .why import WhyScreen

__all__ = ["BindCheckScreen", "DetailsScreen", "FreePortScreen", "HelpScreen", "NamespacesScreen", "WhyScreen"]
