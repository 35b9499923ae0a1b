"""Shared fixtures. Tests that need root are marked `root`; outside CI they skip without
root, but under CI (CI=true, which .ci/run sets and runs as root) any skip fails the run:
a root test that did not run proves nothing."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from kit import Holder, Netns  # noqa: E402

IS_ROOT = os.geteuid() == 0
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
_skipped: list[str] = []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if IS_ROOT:
        return
    skip = pytest.mark.skip(reason="needs root (network namespaces, other uids, pidfd_getfd)")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if IN_CI and _skipped:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        tr = session.config.pluginmanager.get_plugin("terminalreporter")
        if tr is not None:
            tr.write_line(f"CI: {len(_skipped)} test(s) skipped; skips are failures in CI:", red=True)
            for nodeid in _skipped:
                tr.write_line(f"  {nodeid}", red=True)


@pytest.fixture
def netns() -> Iterator[Netns]:
    if not IS_ROOT:
        pytest.skip("needs root")
    with Netns() as ns:
        yield ns


@pytest.fixture
def holders(netns: Netns) -> Iterator[callable]:
    """Factory: holders(uid=0) -> a Holder in the test namespace; all stopped at teardown."""
    made: list[Holder] = []

    def make(uid: int = 0) -> Holder:
        h = Holder(netns, uid=uid)
        made.append(h)
        return h

    yield make
    for h in made:
        h.stop()
