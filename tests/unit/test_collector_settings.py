"""The cyclic garbage collector's set-up for a long-running process (``growth serve``, ``growth worker``)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from growthengine.scheduler.collector import LONG_RUNNING_THRESHOLDS, settle_long_running_process


@pytest.fixture
def restored_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


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

    class Node:
        def __init__(self) -> None:
            self.me = self

    made = 2 * LONG_RUNNING_THRESHOLDS[0]
    for _ in range(made):
        Node()  # a cycle: reference counting never frees it
    alive = sum(1 for o in gc.get_objects() if type(o) is Node)
    assert alive < made  # young passes ran by themselves, without a gc.collect()
