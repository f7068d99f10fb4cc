"""summarize_runs(): medians and how many runs met each goal (pure, no load)."""

from __future__ import annotations

from typing import Any

from stockgate.bench.series import summarize_runs


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


def test_a_goal_not_measured_in_a_run_is_left_out_of_its_tally() -> None:
    summary = summarize_runs([run(4000, None, 20.0), run(3000, 0.2, 20.0, ok=False)])
    assert summary["median_ratio_to_ceiling"] == 0.2
    assert summary["goals"]["ratio_to_ceiling >= 0.3"] == {"met": 0, "measured": 1}
    assert summary["runs_meeting_every_goal"] == 1  # the first: every goal it measured was met
    assert summary["consistent_runs"] == 1
