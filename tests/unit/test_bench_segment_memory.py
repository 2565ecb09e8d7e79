"""``growth bench segments --memory`` at a tiny size: every user gets events and stored state, the cache holds what
its bound allows, and the peak resident memory is the process's own figure.

Not a timing test: the figures only have to be there and agree with what was stored.
"""

from __future__ import annotations

import resource
from pathlib import Path

from typer.testing import CliRunner

from growthengine.bench.segment_memory import MemorySize, every_user_calls, peak_rss_mb, run_memory_bench
from growthengine.cli.app import app


def _stage(name: str, total: int) -> object:
    return lambda n: None


def test_every_user_has_an_event_whatever_the_ratio_of_events_to_users() -> None:
    for users, events in ((50, 50), (50, 120), (37, 301)):
        calls = list(every_user_calls(MemorySize(users=users, events=events)))
        assert len(calls) == events
        assert {f"u{i:06d}" for i in range(users)} <= {c.get("userId") for c in calls}


def test_the_memory_bench_stores_every_users_state_and_reads_the_peak(tmp_path: Path) -> None:
    r = run_memory_bench(MemorySize(users=120, events=400, batch=50), tmp_path, _stage)
    assert r.events == 400
    assert r.users_with_state >= 120  # and the anonymous visitors of the stream
    assert r.held == min(r.users_with_state, r.capacity)
    assert 0 < r.rss_mb <= r.peak_rss_mb and 0 < r.anon_mb <= r.rss_mb and r.file_mb <= r.rss_mb
    # The kernel keeps the high-water mark lazily (the larger of the one it recorded and the resident set now), so
    # VmHWM read later may be a little lower than a figure read at a higher moment; ru_maxrss is the same mark.
    assert abs(peak_rss_mb() - r.peak_rss_mb) < 64
    assert abs(peak_rss_mb() - resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024) < 64


def test_the_command_prints_the_peak_against_the_target(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["bench", "segments", "--memory", "--users", "40", "--events", "90",
                                      "--db-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "segment state memory: peak RSS " in result.output and "target <= 4,096 MB" in result.output
    refused = CliRunner().invoke(app, ["bench", "segments", "--memory", "--users", "40", "--events", "10"])
    assert refused.exit_code != 0
