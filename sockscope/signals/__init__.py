"""Operator signals computed from snapshots (pure: no I/O; the inputs that need reading,
/proc/net/netstat and /proc/PID/exe, come from sockscope.collectors.netstat/procinfo)."""

from .tracker import Observation, SignalReport, SignalTracker
from .types import RANK, SEVERITIES, Signal, worst

__all__ = ["Observation", "RANK", "SEVERITIES", "Signal", "SignalReport", "SignalTracker", "worst"]
