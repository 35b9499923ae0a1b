"""sockscope: a host's TCP and UDP sockets, their reuse options and owners, and whether a bind() would fail."""

__version__ = "0.1.0"
