"""``round4`` is ``round(value, 4)``, float for float."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from growthengine.optimize.send_time_docs import round4


@settings(max_examples=2_000, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_any_float(value: float) -> None:
    assert round4(value) == round(value, 4)


@settings(max_examples=2_000, deadline=None)
@given(st.integers(0, 10**9), st.sampled_from([0.5, 0.49999999, 0.50000001, 0.0, 0.25, 0.75, 0.4999, 0.5001]))
def test_ties_and_near_ties(whole: int, part: float) -> None:
    value = (whole + part) / 10_000
    assert round4(value) == round(value, 4)


def test_weights_as_models_hold_them() -> None:
    value = 1e-9
    while value < 1e6:
        for nudge in (1.0, 1.0000001, 0.9999999, 1.5, 2.25):
            assert round4(value * nudge) == round(value * nudge, 4), value * nudge
        value *= 1.37
