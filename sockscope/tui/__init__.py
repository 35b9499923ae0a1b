"""The live terminal UI (Textual). `SockscopeApp` is the app; see app.py for the threads."""

from .app import SockscopeApp

__all__ = ["SockscopeApp"]
