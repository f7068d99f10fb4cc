"""`stockgate bench SCENARIO`: run, show (rich table or one JSON object), keep the result.

Exit codes: 0 consistent; 1 oversold or leaked units, a failed scenario check, or more
errors than `runner.ERROR_SHARE_ALLOWED`; 2 bad input or wrk missing; 3 a store or the stack
could not be reached or started. Missed performance goals are shown, not failed.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

import stockgate.bench.live_stock  # noqa: F401  # registers the live-stock scenario
from stockgate.adapters.embedded.stores import embedded_stores
from stockgate.bench.facts import append_result, default_results_dir
from stockgate.bench.profile import summarize
from stockgate.bench.runner import AfterSetup, Options, exit_code, run
from stockgate.bench.scenarios import SCENARIOS, Scenario
from stockgate.bench.series import summarize_runs
from stockgate.bench.stack import StackFailed
from stockgate.bench.wrk import WrkFailed, WrkMissing, wrk_path
from stockgate.config import Settings
from stockgate.domain.errors import StoreUnavailable

err = Console(stderr=True)
out = Console()


class _TimeBar(ProgressColumn):
    """A bar that follows the wall clock for timed steps (the load), a spinner otherwise."""

    def __init__(self) -> None:
        super().__init__()
        self._bar = BarColumn(bar_width=30)
        self._spinner = SpinnerColumn()

    def render(self, task: Task) -> Text:
        if task.total is None:
            return self._spinner.render(task)  # type: ignore[return-value]  # a renderable
        task.completed = min(task.total, task.elapsed or 0.0)
        return self._bar.render(task)  # type: ignore[return-value]  # a renderable


class _Steps:
    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._current: object = None
        self.started = time.monotonic()

    def step(self, description: str, seconds: float | None = None) -> None:
        if self._current is not None:
            self._progress.update(self._current, completed=1, total=1)  # type: ignore[arg-type]
            self._progress.stop_task(self._current)  # type: ignore[arg-type]
        self._current = self._progress.add_task(description, total=seconds)


MAX_RUNS = 50


def run_bench(
    settings: Settings,
    scenario: str,
    *,
    url: str | None,
    duration: float,
    connections: int,
    as_json: bool,
    with_ceiling: bool = True,
    profile: Path | None = None,
    results_dir: Path | None = None,
    after_setup: AfterSetup | None = None,
    runs: int = 1,
    rate_limits: bool = False,
) -> int:
    chosen = SCENARIOS.get(scenario)
    if chosen is None:
        err.print(
            f"[bold red]error:[/] unknown scenario {scenario!r}; one of: {', '.join(SCENARIOS)}"
        )
        return 2
    if duration < 1 or connections < 1:
        err.print("[bold red]error:[/] --duration must be >= 1 and --connections >= 1")
        return 2
    if not 1 <= runs <= MAX_RUNS:
        err.print(f"[bold red]error:[/] --runs must be between 1 and {MAX_RUNS}")
        return 2
    if runs > 1 and profile is not None:
        err.print("[bold red]error:[/] --profile records one run; leave out --runs")
        return 2
    try:
        wrk_path()
    except WrkMissing as exc:
        err.print(f"[bold red]error:[/] {exc}")
        return 2
    options = Options(url, duration, connections, with_ceiling, profile, after_setup, rate_limits)
    if runs > 1:
        return _run_series(settings, chosen, options, runs, as_json, results_dir)
    result = _run_once(settings, chosen, options)
    if isinstance(result, int):
        return result
    path = append_result(results_dir or default_results_dir(), chosen.name, result)
    if as_json:
        print(json.dumps(result))
    else:
        show(result, path)
        if profile is not None and profile.exists():
            show_profile(profile)
    return exit_code(result)


def _run_series(
    settings: Settings,
    chosen: Scenario,
    options: Options,
    runs: int,
    as_json: bool,
    results_dir: Path | None,
) -> int:
    """The scenario `runs` times in a row, each on a stack of its own, then the summary."""
    results: list[dict[str, object]] = []
    directory = results_dir or default_results_dir()
    path: Path  # the results file, as append_result names it (set by the first run)
    stopped: int | None = None  # the exit code of a run that ended the series early
    for number in range(1, runs + 1):
        result = _run_once(settings, chosen, options)
        if isinstance(result, int):
            stopped = result
            break
        path = append_result(directory, chosen.name, result)
        results.append(result)
        err.print(f"run {number}/{runs}: {_one_line(result)}", highlight=False)
    if not results:
        return stopped if stopped is not None else 1
    if stopped is not None:
        err.print(f"stopped after {len(results)} of {runs} runs; the summary covers those")
    summary = summarize_runs(results)
    if as_json:
        print(json.dumps({"scenario": chosen.name, "summary": summary, "results": results}))
    else:
        show_series(chosen.name, results, summary, path)
    return max([exit_code(result) for result in results] + [stopped or 0])


def _run_once(settings: Settings, chosen: Scenario, options: Options) -> dict[str, object] | int:
    """One run's result, or the exit code of why there is none."""
    columns = (_TimeBar(), TextColumn("{task.description}"), TimeElapsedColumn())
    try:
        # Configured stores, else the embedded ones (started for this run when not running).
        with (
            embedded_stores(settings) as urls,
            Progress(*columns, console=err, transient=True) as progress,
        ):
            result = asyncio.run(run(settings, urls, chosen, options, _Steps(progress)))
            if options.url is None:  # a stack of our own: we know whether limits were on
                result["rate_limits"] = options.rate_limits
            return result
    except (StoreUnavailable, StackFailed, OSError) as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        return 3
    except (KeyboardInterrupt, asyncio.CancelledError):
        err.print("interrupted; the stack was stopped and its database and keys removed")
        return 130
    except WrkFailed as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        return 1


def _one_line(result: dict[str, object]) -> str:
    ratio = result.get("ratio_to_ceiling")
    return (
        f"{result['requests_per_second']} req/s"
        + (f", {ratio}x the ceiling" if ratio is not None else "")
        + f", p99 {result['p99_ms']} ms, oversold {result['oversold']}, leaked {result['leaked']}"
    )


def _cell(value: object) -> str:
    return "-" if value is None else str(value)


def show(result: dict[str, object], path: Path) -> None:
    table = Table(title=f"stockgate bench {result['scenario']}", show_header=True)
    table.add_column("figure")
    table.add_column(str(result["scenario"]), justify="right")
    table.add_column("ceiling", justify="right")
    has_ceiling = "ceiling_requests_per_second" in result
    table.add_row(
        "requests/s",
        _cell(result["requests_per_second"]),
        _cell(result.get("ceiling_requests_per_second")),
    )
    if has_ceiling:
        table.add_row("ratio to ceiling", _cell(result.get("ratio_to_ceiling")), "1.0")
    table.add_row(
        "p50 / p99 ms",
        f"{result['p50_ms']} / {result['p99_ms']}",
        f"{result.get('ceiling_p50_ms', '-')} / {result.get('ceiling_p99_ms', '-')}",
    )
    table.add_row(
        "CPU cores: API / stores / wrk",
        f"{result['server_cpu_cores']} / {result['store_cpu_cores']} / {result['wrk_cpu_cores']}",
        f"{result.get('ceiling_server_cpu_cores', '-')} / "
        f"{result.get('ceiling_store_cpu_cores', '-')} / "
        f"{result.get('ceiling_wrk_cpu_cores', '-')}",
    )
    table.add_row("requests", _cell(result["requests"]), "")
    table.add_row("statuses", json.dumps(result["statuses"]), "")
    table.add_row("errors (transport + 5xx)", _cell(result["errors"]), "")
    table.add_row("refused (409)", _cell(result["refused"]), "")
    for key in (
        "baseline_requests_per_second",
        "baseline_p50_ms",
        "baseline_p99_ms",
        "baseline_server_cpu_cores",
        "watchers",
        "watchers_cpu_cores",
        "stock_changes_per_second",
        "messages_per_client_per_second",
        "delivery_p50_ms",
        "delivery_p99_ms",
        "group_commit_batch_mean",
        "gate_pipeline_batch_mean",
        "stock_back_after_expiry_ms",
        "released",
        "all_stock_back",
        "units_held",
    ):
        if key in result:
            table.add_row(key.replace("_", " "), _cell(result[key]), "")
    table.add_row("oversold / leaked", f"{result['oversold']} / {result['leaked']}", "")
    goals = result.get("goals")
    if isinstance(goals, dict):
        for goal, met in goals.items():
            mark = {True: "[green]met[/]", False: "[red]missed[/]", None: "-"}[met]
            table.add_row(f"goal {goal}", mark, "")
    out.print(table)
    problems = result.get("problems")
    if isinstance(problems, list) and problems:
        for problem in problems:
            out.print(f"[bold red]problem:[/] {problem}", highlight=False)
    else:
        out.print("[green]consistent:[/] nothing oversold, nothing leaked")
    out.print(f"result appended to {path}", style="dim")


def show_series(
    scenario: str, results: list[dict[str, object]], summary: dict[str, Any], path: Path
) -> None:
    table = Table(title=f"stockgate bench {scenario}: {len(results)} runs")
    for column in (
        "run",
        "req/s",
        "ceiling req/s",
        "ratio",
        "p50 ms",
        "p99 ms",
        "oversold / leaked",
    ):
        table.add_column(column, justify="right")
    for number, result in enumerate(results, 1):
        table.add_row(
            str(number),
            _cell(result["requests_per_second"]),
            _cell(result.get("ceiling_requests_per_second")),
            _cell(result.get("ratio_to_ceiling")),
            _cell(result["p50_ms"]),
            _cell(result["p99_ms"]),
            f"{result['oversold']} / {result['leaked']}",
        )
    table.add_row(
        "median",
        _cell(summary["median_requests_per_second"]),
        "",
        _cell(summary["median_ratio_to_ceiling"]),
        _cell(summary["median_p50_ms"]),
        _cell(summary["median_p99_ms"]),
        "",
        style="bold",
    )
    out.print(table)
    for goal, tally in summary["goals"].items():
        out.print(f"goal {goal}: met in {tally['met']} of {tally['measured']} runs")
    if summary["goals"]:
        out.print(
            f"every goal in the same run: {summary['runs_meeting_every_goal']} of {len(results)}"
        )
    out.print(f"consistent: {summary['consistent_runs']} of {len(results)} runs")
    out.print(f"results appended to {path}", style="dim")


def show_profile(path: Path) -> None:
    own, inclusive = summarize(path, top=15)
    table = Table(title=f"profile of the API under load ({path})")
    table.add_column("self %", justify="right")
    table.add_column("function (self time)")
    for frame, share in own:
        table.add_row(f"{share:.1%}", frame)
    out.print(table)
    table = Table()
    table.add_column("incl. %", justify="right")
    table.add_column("function (inclusive)")
    for frame, share in inclusive:
        table.add_row(f"{share:.1%}", frame)
    out.print(table)
