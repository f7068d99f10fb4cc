"""A series of bench runs: medians, goals met in how many runs, and a series cut short
(no load here: the runs are stand-ins)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from stockgate.bench import cli
from stockgate.bench.runner import Options
from stockgate.bench.scenarios import SCENARIOS
from stockgate.bench.series import summarize_runs
from stockgate.config import Settings


def run(rps: float, ratio: float | None, p99: float, *, ok: bool = True) -> dict[str, Any]:
    goals: dict[str, bool | None] = {
        "ratio_to_ceiling >= 0.3": None if ratio is None else ratio >= 0.3,
        "p99_ms <= 25": p99 <= 25,
    }
    return {
        "requests_per_second": rps,
        "ratio_to_ceiling": ratio,
        "p50_ms": p99 / 2,
        "p99_ms": p99,
        "goals": goals,
        "ok": ok,
        "oversold": 0,
        "leaked": 0,
    }


def test_medians_and_goal_tallies() -> None:
    summary = summarize_runs([run(4000, 0.41, 24.0), run(3000, 0.28, 36.0), run(3500, 0.35, 31.0)])
    assert summary["runs"] == 3
    assert summary["median_requests_per_second"] == 3500
    assert summary["median_ratio_to_ceiling"] == 0.35
    assert summary["median_p99_ms"] == 31.0
    assert summary["goals"] == {
        "ratio_to_ceiling >= 0.3": {"met": 2, "measured": 3},
        "p99_ms <= 25": {"met": 1, "measured": 3},
    }
    assert summary["runs_meeting_every_goal"] == 1
    assert summary["consistent_runs"] == 3


def test_a_goal_not_measured_is_never_counted_as_met() -> None:
    summary = summarize_runs([run(4000, None, 20.0), run(3000, 0.2, 20.0, ok=False)])
    assert summary["median_ratio_to_ceiling"] == 0.2
    assert summary["goals"]["ratio_to_ceiling >= 0.3"] == {"met": 0, "measured": 1}
    assert summary["goals"]["p99_ms <= 25"] == {"met": 2, "measured": 2}
    assert summary["runs_meeting_every_goal"] == 0  # the first never measured the ratio
    assert summary["consistent_runs"] == 1


def test_without_a_ceiling_the_ratio_goal_shows_as_never_measured() -> None:
    summary = summarize_runs([run(4000, None, 20.0), run(3500, None, 22.0)])
    assert summary["median_ratio_to_ceiling"] is None
    assert summary["goals"]["ratio_to_ceiling >= 0.3"] == {"met": 0, "measured": 0}
    assert summary["runs_meeting_every_goal"] == 0


def five_runs(results_dir: Path) -> int:
    """A series of five with --json, whatever `_run_once` stands in for."""
    options = Options(url=None, duration=1, connections=1)
    return cli._run_series(
        Settings(), SCENARIOS["reserve"], options, 5, as_json=True, results_dir=results_dir
    )


def test_a_series_stopped_early_sums_up_the_runs_it_finished(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outcomes: list[dict[str, Any] | int] = [run(4000, 0.4, 20.0), run(3000, 0.3, 30.0), 130]
    monkeypatch.setattr(cli, "_run_once", lambda *args: outcomes.pop(0))

    code = five_runs(tmp_path)

    captured = capsys.readouterr()
    assert code == 130  # the interruption, not a clean exit
    series = json.loads(captured.out)
    assert series["summary"]["runs"] == 2
    assert series["summary"]["runs_meeting_every_goal"] == 1
    assert "stopped after 2 of 5 runs" in captured.err
    assert len((tmp_path / "reserve.jsonl").read_text().splitlines()) == 2


def test_a_series_whose_first_run_fails_returns_that_failure(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "_run_once", lambda *args: 3)

    code = five_runs(tmp_path)

    assert code == 3
    assert capsys.readouterr().out == ""
