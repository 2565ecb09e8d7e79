"""``growth bench import`` at a small size: every good line stored once, applied, the bad lines reported by their
numbers, a second import all duplicates. Not a timing test."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from typer.testing import CliRunner

from growthengine.bench.history_import import BAD_EVERY, run_import_bench
from growthengine.cli.app import app


def _stage(name: str, total: int) -> Callable[[int], None]:
    return lambda n: None


def test_import_bench_stores_applies_and_reimports_nothing(tmp_path: Path) -> None:
    report = run_import_bench(2 * BAD_EVERY + 10, 300, tmp_path, _stage)
    assert report.bad == [BAD_EVERY, 2 * BAD_EVERY]
    assert report.stored.events == 2 * BAD_EVERY + 8 and report.stored.seconds > 0 and report.applied.seconds > 0


def test_import_bench_on_the_command_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["bench", "import", "--events", "500", "--users", "50", "--db-dir",
                                      str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "stored:" in result.output and "a second import stored nothing" in result.output
