"""The cyclic garbage collector's set-up for a long-running process (``growth serve``, ``growth worker``), and its
freeze policy for what groups of work leave alive (``scheduler/collector.py``)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from growthengine.scheduler import collector
from growthengine.scheduler.collector import (
    LONG_RUNNING_THRESHOLDS,
    collector_paused,
    policy,
    settle_long_running_process,
    unsettle,
)


@pytest.fixture
def restored_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    enabled = gc.isenabled()
    gc.enable()
    yield
    unsettle()
    gc.set_threshold(*thresholds)
    if not enabled:
        gc.disable()


class Node:
    """A cycle: reference counting never frees it."""

    def __init__(self) -> None:
        self.me = self


class Leaf:
    """An object reference counting frees (no cycle)."""


def _ids_walked() -> set[int]:
    """The objects the collector's generations hold (frozen ones are not among them)."""
    return {id(o) for o in gc.get_objects()}


@pytest.mark.usefixtures("restored_collector")
def test_start_up_objects_are_frozen_and_young_passes_are_rarer() -> None:
    kept = [{"built": i} for i in range(1_000)]  # what start-up built and keeps
    settle_long_running_process()
    assert gc.get_freeze_count() >= len(kept)
    assert gc.get_threshold() == LONG_RUNNING_THRESHOLDS
    assert LONG_RUNNING_THRESHOLDS[0] > 700  # Python's default young threshold


@pytest.mark.usefixtures("restored_collector")
def test_a_request_sized_burst_of_objects_meets_no_young_pass() -> None:
    settle_long_running_process()
    passes: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            passes.append(info["generation"])

    gc.callbacks.append(count)
    try:
        batch = [{"type": "track", "properties": {"price": i}, "context": {"library": {}}} for i in range(1_000)]
        del batch
    finally:
        gc.callbacks.remove(count)
    assert passes == []  # 4,000 containers: with Python's defaults, five young passes


@pytest.mark.usefixtures("restored_collector")
def test_cyclic_garbage_is_still_collected() -> None:
    settle_long_running_process()
    made = 2 * LONG_RUNNING_THRESHOLDS[0]
    for _ in range(made):
        Node()
    alive = sum(1 for o in gc.get_objects() if type(o) is Node)
    assert alive < made  # young passes ran by themselves, without a gc.collect()


@pytest.mark.usefixtures("restored_collector")
def test_what_a_group_leaves_alive_is_frozen_not_walked() -> None:
    settle_long_running_process()
    gc.set_threshold(100, 20, 20)  # a young pass is owed after 100 new objects
    full_passes = policy.full_passes
    with collector_paused():
        states = {f"u{i}": {"f": {"w": [[i, 1.0, None]]}, "m": {}, "x": Leaf()} for i in range(1_000)}  # cached
    assert gc.isenabled()
    assert gc.get_count()[0] < 100  # no young pass is owed for what the group made
    walked = _ids_walked()
    assert id(states) not in walked and id(states["u7"]["f"]["w"]) not in walked
    assert policy.full_passes == full_passes  # a freeze, not a pass over the heap
    ref = weakref.ref(states["u7"]["x"])
    del states  # no cycle: reference counting frees frozen objects as any other
    assert ref() is None


@pytest.mark.usefixtures("restored_collector")
def test_cyclic_garbage_a_group_made_is_collected_at_its_end() -> None:
    settle_long_running_process()
    gc.set_threshold(100, 20, 20)
    full_passes = policy.full_passes
    with collector_paused():
        made = [{"n": i} for i in range(200)]  # enough new objects that a young pass is owed
        node = Node()
        probe = weakref.ref(node)
        del node  # garbage inside the group
        assert probe() is not None  # the collector is off meanwhile
    assert probe() is None  # the young pass at the group's end freed it, before the freeze
    assert policy.full_passes == full_passes
    assert id(made) not in _ids_walked()  # and the survivors were frozen


@pytest.mark.usefixtures("restored_collector")
def test_a_small_group_owes_no_young_pass_and_freezes_nothing() -> None:
    settle_long_running_process()
    freezes = policy.freezes
    with collector_paused():
        made = [{"n": i} for i in range(100)]
    assert policy.freezes == freezes
    assert id(made) in _ids_walked()  # still young: walked by the next young pass when one is owed


@pytest.mark.usefixtures("restored_collector")
def test_cycles_frozen_alive_are_collected_once_groups_added_the_heap_again(monkeypatch: pytest.MonkeyPatch) -> None:
    settle_long_running_process()
    gc.set_threshold(100, 20, 20)
    monkeypatch.setattr(collector, "FULL_PASS_MIN_OBJECTS", 5_000)
    policy.frozen_at_full = 20_000  # as if the last full pass had left a heap this size
    with collector_paused():
        first = [Node() for _ in range(200)]  # alive at the group's end: frozen
    probe = weakref.ref(first[0])
    del first
    gc.collect()  # an ordinary collection does not walk frozen objects
    assert probe() is not None
    added = 0
    while probe() is not None and added <= 40_000:
        with collector_paused():
            keep = [Node() for _ in range(1_000)]  # alive at the group's end, garbage after it
        del keep
        added += 1_000
    assert probe() is None  # a full pass ran once the groups had added the heap's size again
    assert added >= 10_000  # and not before
    assert not any(type(o) is Node for o in gc.get_objects())


@pytest.mark.usefixtures("restored_collector")
def test_a_cycle_frozen_alive_is_collected_by_the_timed_full_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    settle_long_running_process()
    gc.set_threshold(100, 20, 20)
    now = [1_000_000.0]
    monkeypatch.setattr(collector, "system_seconds", lambda: now[0])
    policy.full_at_s = now[0]
    with collector_paused():
        nodes = [Node() for _ in range(200)]  # alive when the group ends: frozen
    probe = weakref.ref(nodes[0])
    del nodes  # garbage now, among the frozen objects
    gc.collect()  # an ordinary full collection does not walk frozen objects
    assert probe() is not None
    with collector_paused():
        made = [{"n": i} for i in range(200)]
    assert probe() is not None  # not yet: nothing due
    now[0] += collector.FULL_PASS_EVERY_S
    with collector_paused():
        more = [{"n": i} for i in range(200)]  # a young pass owed again: the full pass is due by now
    del made, more
    assert probe() is None


@pytest.mark.usefixtures("restored_collector")
def test_a_cycle_made_after_the_freeze_outside_groups_is_collected() -> None:
    settle_long_running_process()
    with collector_paused():
        pass
    node = Node()
    probe = weakref.ref(node)
    del node
    gc.collect()
    assert probe() is None


def test_without_the_long_running_set_up_groups_freeze_nothing(restored_collector: None) -> None:
    before = gc.get_freeze_count()
    with collector_paused():
        made = [Node() for _ in range(100)]
    assert gc.get_freeze_count() == before
    assert id(made[0]) in _ids_walked()


@pytest.mark.usefixtures("restored_collector")
def test_a_finalizer_that_holds_a_group_during_a_full_pass_does_not_deadlock(monkeypatch: pytest.MonkeyPatch) -> None:
    settle_long_running_process()
    monkeypatch.setattr(collector, "FULL_PASS_EVERY_S", 0.0)  # the next group's end runs a full pass
    gc.set_threshold(100, 20, 20)
    ran: list[bool] = []

    class Holder:
        def __init__(self) -> None:
            self.me = self

        def __del__(self) -> None:
            with collector_paused():
                ran.append(True)

    passes = policy.full_passes
    with collector_paused():
        made = [{"n": i} for i in range(200)]  # a young pass owed
        Holder()  # cyclic garbage with a finalizer, collected by the full pass at the group's end
    del made
    assert policy.full_passes == passes + 1
    assert ran == [True]
    assert gc.isenabled()
