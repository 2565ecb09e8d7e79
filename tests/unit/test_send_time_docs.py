"""The document-level send-time update stores exactly what the model's own update and encoding store."""

from __future__ import annotations

import datetime as dt
import random

import orjson
import pytest

from growthengine.optimize.send_time import SendTimeModel
from growthengine.optimize.send_time_docs import update_document

T0 = dt.datetime(2026, 3, 2, 1, 30, tzinfo=dt.UTC)


def _points(rng: random.Random, n: int, around: dt.datetime) -> list[tuple[dt.datetime, float]]:
    return [(around + dt.timedelta(minutes=rng.randint(-20_000, 20_000)), rng.choice([0.25, 0.5, 1.0, 0.0, -1.0]))
            for _ in range(n)]


@pytest.mark.parametrize("seed", range(6))
def test_a_sequence_of_updates_stores_the_same_document_as_the_model(seed: int) -> None:
    rng = random.Random(seed)
    tz = rng.choice(["Asia/Bangkok", "Europe/London", "America/New_York", "Not/AZone"])
    doc = None
    model_doc = None
    now = T0
    for _ in range(8):
        now += dt.timedelta(hours=rng.randint(-30, 200))  # a late batch too: now before the model's as_of
        points = _points(rng, rng.randint(1, 6), now)
        doc = update_document(doc, points, now=now, tz=tz)
        model = SendTimeModel.from_json(model_doc) if model_doc is not None else SendTimeModel(tz)
        model.update(points, now=now)
        model_doc = model.to_json()
        assert orjson.dumps(doc) == orjson.dumps(model_doc)
    assert doc is not None and doc["events"] > 0 and doc["w"]


def test_a_stored_hour_out_of_range_is_refused_as_the_model_refuses_it() -> None:
    with pytest.raises(ValueError, match="out of range"):
        update_document({"v": 1, "tz": "Asia/Bangkok", "events": 1, "as_of": T0.isoformat(), "w": {"168": 1.0}},
                        [(T0, 1.0)], now=T0)
