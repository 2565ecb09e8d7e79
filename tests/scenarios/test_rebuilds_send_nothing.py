"""Rebuilds and back-fills record entries but send nothing; a flow enrols members who were already in its segment
only with ``enroll_existing: true``, once, when it is first published (CONTRACT.md 8)."""

from __future__ import annotations

from pathlib import Path

from growthengine.bootstrap import build_engine
from growthengine.clock import ManualClock
from growthengine.engine import Engine
from growthengine.settings import Settings
from tests.scenarios.story import Story, messages

SEGMENT = """
segments:
  camera_fans:
    name: Camera fans
    event: item_viewed
    where: {category: cameras}
    count: {gte: %d}
    within: 30d
"""
FLOWS = """
flows:
  camera_deals: null   # the default camera campaign also starts on camera views; these tests follow their own
"""
FAN_EMAIL = """
  fan_email:
    trigger: {segment_entered: camera_fans}%s
    steps:
      - name: welcome
        send: {channel: email, template: high_ltv_vip_email}
"""


def _engine(tmp_path: Path, clock: ManualClock, text: str) -> Engine:
    config = tmp_path / "growth.yaml"
    config.write_text(text, encoding="utf-8")
    return build_engine(Settings(db_url=f"sqlite:///{tmp_path / 'g.db'}", config_file=config), clock=clock)


def _fan(story: Story, user: str, views: int) -> None:
    story.identify(user, email=f"{user}@example.test", consent={"email": True})
    for i in range(views):
        story.track(user, "item_viewed", listing_id=f"L{i}", category="cameras", price=9000)


def _emails(engine: Engine, user: str) -> list[str]:
    return [m["step"] for m in messages(engine, user, channel="email")]


def _runs(engine: Engine, user: str) -> set[tuple[str, str]]:
    with engine.store.transaction() as tx:
        return tx.runs.ever_entered("fan_email", [user])


def test_a_segment_back_filled_after_an_edit_records_its_entries_and_sends_nothing(
        tmp_path: Path, clock: ManualClock) -> None:
    engine = _engine(tmp_path, clock, SEGMENT % 5 + FLOWS + FAN_EMAIL % "")
    _fan(Story(engine, clock), "u1", 3)
    assert engine.user_view("u1")["segments"] == []  # type: ignore[index]
    engine.close()
    engine = _engine(tmp_path, clock, SEGMENT % 3 + FLOWS + FAN_EMAIL % "")  # edited: back-filled at start
    try:
        assert "camera_fans" in engine.user_view("u1")["segments"]  # type: ignore[index]
        with engine.store.transaction() as tx:
            [entry] = tx.segments.transitions(user_id="u1", segment="camera_fans")
        assert (entry.kind, entry.origin) == ("enter", "rebuild") and entry.reason.startswith("rebuild: ")
        assert _emails(engine, "u1") == [] and _runs(engine, "u1") == set()
        # The same rule live: an entry now starts the flow.
        _fan(Story(engine, clock), "u2", 3)
        assert _emails(engine, "u2") == ["welcome"]
    finally:
        engine.close()


def test_growth_segments_rebuild_records_entries_and_sends_nothing(tmp_path: Path, clock: ManualClock) -> None:
    engine = _engine(tmp_path, clock, SEGMENT % 3 + FLOWS + FAN_EMAIL % "")
    try:
        story = Story(engine, clock)
        _fan(story, "u1", 3)
        _fan(story, "u2", 3)
        assert _emails(engine, "u1") == _emails(engine, "u2") == ["welcome"]
        with engine.store.transaction() as tx:  # u2's segment state is lost (a restore from an old backup)
            tx.segments.delete_state("u2")
            tx.segments.delete_user_members("u2")
        assert engine.user_view("u2")["segments"] == []  # type: ignore[index]
        result = engine.rebuild_segments()
        assert (result.entered, result.exited) == (1, 0)
        assert "camera_fans" in engine.user_view("u2")["segments"]  # type: ignore[index]
        with engine.store.transaction() as tx:
            kinds = [(t.kind, t.origin) for t in tx.segments.transitions(user_id="u2", segment="camera_fans")]
        assert kinds == [("enter", "live"), ("enter", "rebuild")]
        assert _emails(engine, "u2") == ["welcome"], "the rebuild's entry sent nothing more"
    finally:
        engine.close()


def test_enroll_existing_enrols_the_members_already_in_once_when_first_published(
        tmp_path: Path, clock: ManualClock) -> None:
    engine = _engine(tmp_path, clock, SEGMENT % 3 + FLOWS)
    story = Story(engine, clock)
    _fan(story, "u1", 3)
    _fan(story, "u2", 4)
    _fan(story, "u3", 1)  # not a member
    engine.close()
    plain = FAN_EMAIL.replace("fan_email", "fan_plain") % ""
    engine = _engine(tmp_path, clock, SEGMENT % 3 + FLOWS + FAN_EMAIL % "\n    enroll_existing: true" + plain)
    try:
        assert _emails(engine, "u1") == _emails(engine, "u2") == ["welcome"], "fan_email only: fan_plain waits"
        assert _emails(engine, "u3") == []
        assert _runs(engine, "u1") == {("u1", "")}
        _fan(Story(engine, clock), "u4", 3)  # a new member gets both flows
        assert sorted(m["flow"] for m in messages(engine, "u4", channel="email")) == ["fan_email", "fan_plain"]
    finally:
        engine.close()
    # A restart, then an edit of the flow: it was published already, so nobody is enrolled again.
    for extra in ("\n    enroll_existing: true", "\n    enroll_existing: true\n    reentry: never"):
        engine = _engine(tmp_path, clock, SEGMENT % 3 + FLOWS + FAN_EMAIL % extra + plain)
        try:
            assert _emails(engine, "u1") == ["welcome"]
            with engine.store.transaction() as tx:
                assert len(tx.runs.ever_entered("fan_email", ["u1", "u2", "u4"])) == 3
        finally:
            engine.close()
