"""Several runs of one scenario, summed up: on a shared or virtual machine one run's figures
swing widely (docs/performance.md), so a goal is judged by how many runs met it."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

MEDIANS = ("requests_per_second", "ratio_to_ceiling", "p50_ms", "p99_ms")


def summarize_runs(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Medians of the headline figures, and per goal in how many runs it was met."""
    summary: dict[str, Any] = {"runs": len(results)}
    for key in MEDIANS:
        values = [r[key] for r in results if isinstance(r.get(key), int | float)]
        summary[f"median_{key}"] = round(statistics.median(values), 3) if values else None
    names = {goal for result in results for goal in (result.get("goals") or {})}
    goals = {goal: {"met": 0, "measured": 0} for goal in sorted(names)}
    every_goal = 0
    for result in results:
        verdicts = result.get("goals") or {}
        # Every goal measured and met: a goal this run did not measure (--no-ceiling) does
        # not count as met.
        every_goal += all(verdicts.get(goal) is True for goal in names) and bool(names)
        for goal, met in verdicts.items():
            if met is not None:
                goals[goal]["measured"] += 1
                goals[goal]["met"] += bool(met)
    summary["goals"] = goals
    summary["runs_meeting_every_goal"] = every_goal
    summary["consistent_runs"] = sum(bool(r.get("ok")) for r in results)
    return summary
