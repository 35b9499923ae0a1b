"""Test kit: private network namespaces and socket-holder processes (real kernel, no mocks)."""

from .holder import Holder, HolderError
from .netns import Netns

__all__ = ["Holder", "HolderError", "Netns"]
