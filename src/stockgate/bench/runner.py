"""One bench invocation: the stack, the scenario's set-up, the ceiling and the scenario under
load (measured in the same run), the consistency check, and the result as one dict."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import httpx

from stockgate.bench.facts import machine_facts
from stockgate.bench.profile import Profiler
from stockgate.bench.scenarios import Ceiling, Outcome, Plan, Scenario, Target
from stockgate.bench.stack import Stack, listeners, own_stack, store_pids
from stockgate.bench.wrk import WrkResult, run_wrk, write_script
from stockgate.bootstrap import bootstrap
from stockgate.config import Settings, StoreUrls

# More errors (transport errors + 5xx) than this share of all requests fails the run.
ERROR_SHARE_ALLOWED = 0.001

AfterSetup = Callable[[Target, Plan], Awaitable[None]]


class Progress(Protocol):
    def step(self, description: str, seconds: float | None = None) -> None: ...


@dataclass(frozen=True, slots=True)
class Options:
    url: str | None
    duration: float
    connections: int
    with_ceiling: bool = True
    profile: Path | None = None  # py-spy raw output of the API under the scenario's load
    after_setup: AfterSetup | None = None  # tests: tamper with the stores before the load
    # Rate limits on in the stack, set too high to refuse: what counting them costs.
    rate_limits: bool = False


@dataclass(frozen=True, slots=True)
class Measured:
    load: WrkResult
    server_cpu_seconds: float
    store_cpu_seconds: float
    beside: dict[str, object]
    batches: dict[str, float]

    def cores(self, cpu_seconds: float) -> float:
        return round(cpu_seconds / self.load.duration_s, 2) if self.load.duration_s else 0.0


@contextlib.asynccontextmanager
async def stack_for(
    settings: Settings, urls: StoreUrls, scenario: Scenario, options: Options, workdir: Path
) -> AsyncIterator[Stack]:
    if options.url is not None:
        yield Stack(options.url.rstrip("/"), settings, urls, server_pids=listeners(options.url))
        return
    if scenario.hold_seconds is not None:
        settings = settings.model_copy(update={"hold_seconds": scenario.hold_seconds})
    async with own_stack(
        settings,
        urls,
        workdir,
        with_worker=scenario.needs_worker,
        rate_limits=options.rate_limits,
        with_stripe=scenario.needs_stripe,
    ) as stack:
        yield stack


async def run(
    settings: Settings,
    urls: StoreUrls,
    scenario: Scenario,
    options: Options,
    progress: Progress,
) -> dict[str, object]:
    """`urls`: the stores for set-up and checks (and for the own stack's processes).

    SIGTERM cancels the run like Ctrl-C does, so the stack's processes (in a session of
    their own, out of reach of a signal to ours), the database and the keys are cleaned up.
    """
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    if task is not None:
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await _run(settings, urls, scenario, options, progress)
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


async def _run(
    settings: Settings,
    urls: StoreUrls,
    scenario: Scenario,
    options: Options,
    progress: Progress,
) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="stockgate-bench-") as tmp:
        workdir = Path(tmp)
        progress.step("starting the stack" if options.url is None else "connecting")
        async with stack_for(settings, urls, scenario, options, workdir) as stack:
            stack.store_pids = store_pids(stack.urls)
            container = await bootstrap(stack.settings, stack.urls)
            try:
                async with httpx.AsyncClient(base_url=stack.base_url, timeout=10.0) as http:
                    target = Target(
                        stack.base_url,
                        stack.settings,
                        container,
                        http,
                        workdir,
                        _run_id(),
                        load_seconds=options.duration,
                    )
                    return await _measure(scenario, options, stack, target, progress)
            finally:
                await container.close()


async def _measure(
    scenario: Scenario, options: Options, stack: Stack, target: Target, progress: Progress
) -> dict[str, object]:
    progress.step(f"{scenario.name}: setting up")
    plan = await scenario.setup(target)
    if options.after_setup is not None:
        await options.after_setup(target, plan)
    ceiling: Measured | None = None
    if options.with_ceiling and not isinstance(scenario, Ceiling):
        progress.step("ceiling: GET /healthz", options.duration)
        ceiling = await _load(stack, target, Plan(Ceiling.script), options, profile=None)
    baseline: Measured | None = None
    if scenario.baseline:
        progress.step(f"{scenario.name}: baseline load", options.duration)
        baseline = await _load(stack, target, Plan(plan.script, plan.args), options, profile=None)
    if plan.prepare is not None:
        progress.step(f"{scenario.name}: preparing")
        await plan.prepare()
    progress.step(f"{scenario.name}: load", options.duration)
    measured = await _load(stack, target, plan, options, profile=options.profile)
    if isinstance(scenario, Ceiling):
        ceiling = measured
    progress.step(f"{scenario.name}: checking consistency")
    outcome = await scenario.check(target, plan, measured.load, measured.beside)
    facts = await machine_facts(target.container)
    result = assemble(scenario, options, stack, measured, ceiling, outcome, facts)
    if baseline is not None:
        result["baseline_requests_per_second"] = round(baseline.load.requests_per_second, 1)
        result["baseline_p50_ms"] = round(baseline.load.p50_ms, 2)
        result["baseline_p99_ms"] = round(baseline.load.p99_ms, 2)
        result["baseline_server_cpu_cores"] = baseline.cores(baseline.server_cpu_seconds)
    return result


async def _load(
    stack: Stack, target: Target, plan: Plan, options: Options, *, profile: Path | None
) -> Measured:
    script = write_script(plan.script, target.workdir)
    beside = asyncio.create_task(plan.beside()) if plan.beside else None
    profiler = Profiler.start(stack.api_worker_pids(), options.duration, profile)
    metrics_before = await batch_metrics(target.http)
    before = stack.server_cpu_seconds(), stack.store_cpu_seconds()
    try:
        load = await run_wrk(
            f"{stack.base_url}/",
            script,
            plan.args,
            duration=options.duration,
            connections=options.connections,
        )
    except BaseException:
        if beside is not None:
            beside.cancel()
        await profiler.stop()
        raise
    server_cpu = stack.server_cpu_seconds() - before[0]
    store_cpu = stack.store_cpu_seconds() - before[1]
    await profiler.stop()
    batches = mean_batches(metrics_before, await batch_metrics(target.http))
    figures = await beside if beside is not None else {}
    return Measured(load, server_cpu, store_cpu, figures, batches)


BATCH_METRICS = {
    "group_commit_batch_mean": "stockgate_group_commit_batch_size",
    "gate_pipeline_batch_mean": "stockgate_gate_pipeline_batch_size",
}


async def batch_metrics(http: httpx.AsyncClient) -> dict[str, float]:
    """Sums and counts of the batching histograms from /metrics (empty when unavailable)."""
    try:
        response = await http.get("/metrics")
    except httpx.HTTPError:
        return {}
    if response.status_code != 200:
        return {}
    values: dict[str, float] = {}
    for line in response.text.splitlines():
        name, _, value = line.partition(" ")
        if name.endswith(("_sum", "_count")) and name.startswith(tuple(BATCH_METRICS.values())):
            values[name] = values.get(name, 0.0) + float(value)
    return values


def mean_batches(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Mean batch size during the load (one API process: /metrics is per process)."""
    means = {}
    for key, metric in BATCH_METRICS.items():
        count = after.get(f"{metric}_count", 0.0) - before.get(f"{metric}_count", 0.0)
        total = after.get(f"{metric}_sum", 0.0) - before.get(f"{metric}_sum", 0.0)
        if count > 0:
            means[key] = round(total / count, 1)
    return means


def assemble(
    scenario: Scenario,
    options: Options,
    stack: Stack,
    measured: Measured,
    ceiling: Measured | None,
    outcome: Outcome,
    facts: dict[str, object],
) -> dict[str, object]:
    load = measured.load
    rps = round(load.requests_per_second, 1)
    problems = list(outcome.problems)
    if load.errors > ERROR_SHARE_ALLOWED * max(load.requests, 1):
        problems.append(
            f"{load.errors} errors (transport {load.transport_errors}, 5xx "
            f"{load.server_errors}) of {load.requests} requests: more than "
            f"{ERROR_SHARE_ALLOWED:.1%}"
        )
    result: dict[str, object] = {
        "scenario": scenario.name,
        "ok": not problems,
        "requests_per_second": rps,
        "p50_ms": round(load.p50_ms, 2),
        "p90_ms": round(load.p90_ms, 2),
        "p99_ms": round(load.p99_ms, 2),
        "p999_ms": round(load.p999_ms, 2),
        "max_ms": round(load.max_ms, 2),
        "requests": load.requests,
        "errors": load.errors,
        "transport_errors": load.transport_errors,
        "refused": load.count(409),
        "statuses": {str(k): v for k, v in sorted(load.statuses.items())},
        "oversold": outcome.oversold,
        "leaked": outcome.leaked,
        "problems": problems,
        "duration_s": round(load.duration_s, 2),
        "connections": options.connections,
        "wrk_cpu_cores": measured.cores(load.cpu_seconds),
        "server_cpu_cores": measured.cores(measured.server_cpu_seconds),
        "store_cpu_cores": measured.cores(measured.store_cpu_seconds),
        **measured.batches,
        "stack": "own" if options.url is None else options.url,
        "hold_seconds": stack.settings.hold_seconds,
        "http_workers": stack.settings.http_workers,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **measured.beside,
        **outcome.figures,
    }
    if load.kinds:
        result["kinds"] = dict(sorted(load.kinds.items()))
    if ceiling is not None:
        ceiling_rps = round(ceiling.load.requests_per_second, 1)
        result["ceiling_requests_per_second"] = ceiling_rps
        result["ceiling_p50_ms"] = round(ceiling.load.p50_ms, 2)
        result["ceiling_p99_ms"] = round(ceiling.load.p99_ms, 2)
        result["ceiling_wrk_cpu_cores"] = ceiling.cores(ceiling.load.cpu_seconds)
        result["ceiling_server_cpu_cores"] = ceiling.cores(ceiling.server_cpu_seconds)
        result["ceiling_store_cpu_cores"] = ceiling.cores(ceiling.store_cpu_seconds)
        result["ratio_to_ceiling"] = round(rps / ceiling_rps, 3) if ceiling_rps else None
    if options.profile is not None:
        result["profile"] = str(options.profile)
    result["goals"] = {
        f"{goal.key} {goal.op} {goal.bound:g}": _met(goal.met, result.get(goal.key))
        for goal in scenario.goals
    }
    result["machine"] = facts
    return result


def _met(met: Callable[[float], bool], value: object) -> bool | None:
    return met(float(value)) if isinstance(value, int | float) else None


def _run_id() -> str:
    return uuid.uuid4().hex[:8]


def exit_code(result: dict[str, object]) -> int:
    """1 when the run found drift (oversold, leaked), a failed check, or too many errors."""
    return 0 if result["ok"] else 1
