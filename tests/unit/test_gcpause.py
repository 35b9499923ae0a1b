"""The garbage-collector policy of long-running processes (collectors/gcpause.py): objects
alive after a refresh are frozen out of the collector's walks, garbage cycles from before
a pause are not frozen, and a thaw every THAW_EVERY seconds collects the cycles that died
while frozen. Weak references tell whether a cycle was collected."""

from __future__ import annotations

import gc
import weakref

import pytest

from sockscope.collectors import gcpause


class Node:
    def __init__(self) -> None:
        self.other: object = self


@pytest.fixture(autouse=True)
def collector_on():
    """The policy is about a process whose collector runs (an earlier test may have
    turned it off in this process)."""
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


@pytest.fixture
def freezing():
    gcpause.freeze_between_refreshes()
    yield
    gcpause.stop_freezing()
    assert gc.get_freeze_count() == 0 and gc.isenabled()


def test_objects_alive_after_a_pause_are_frozen(freezing) -> None:
    before = gc.get_freeze_count()
    with gcpause.gc_paused():
        kept = [Node() for _ in range(1000)]
    assert gc.get_freeze_count() >= before + 1000
    assert gc.isenabled()
    del kept


def test_a_cycle_dead_before_the_pause_is_collected_not_frozen(freezing) -> None:
    dead = Node()
    ref = weakref.ref(dead)
    del dead  # garbage: only the cyclic collector can free it
    with gcpause.gc_paused():
        pass
    assert ref() is None


def test_a_cycle_that_dies_while_frozen_waits_for_the_thaw(freezing, monkeypatch) -> None:
    node = Node()
    ref = weakref.ref(node)
    with gcpause.gc_paused():
        pass  # `node` is frozen here
    del node
    gc.collect()
    assert ref() is not None  # frozen: no collection sees it
    monkeypatch.setattr(gcpause, "THAW_EVERY", 0.0)
    thaws = gcpause.full_collections
    with gcpause.gc_paused():
        pass
    assert ref() is None and gcpause.full_collections == thaws + 1


def test_nested_pauses_settle_once_and_without_freezing_nothing_is_frozen() -> None:
    gcpause.stop_freezing()
    with gcpause.gc_paused():
        with gcpause.gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_a_one_shot_command_called_in_process_leaves_the_collector_on(capsys):
    from sockscope.cli import main

    was = gc.isenabled()
    gc.enable()
    try:
        main(["list", "--collector", "procfs", "-p", "1"])
        assert gc.isenabled()
        gc.disable()
        main(["list", "--collector", "procfs", "-p", "1"])
        assert not gc.isenabled()  # a caller's own choice is left alone
    finally:
        if was:
            gc.enable()
        else:
            gc.disable()
    capsys.readouterr()
