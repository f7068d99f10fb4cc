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
    goals: dict[str, dict[str, int]] = {}
    every_goal = 0
    for result in results:
        verdicts = [met for met in (result.get("goals") or {}).values() if met is not None]
        every_goal += bool(verdicts) and all(verdicts)
        for goal, met in (result.get("goals") or {}).items():
            if met is not None:
                tally = goals.setdefault(goal, {"met": 0, "measured": 0})
                tally["measured"] += 1
                tally["met"] += bool(met)
    summary["goals"] = goals
    summary["runs_meeting_every_goal"] = every_goal
    summary["consistent_runs"] = sum(bool(r.get("ok")) for r in results)
    return summary
