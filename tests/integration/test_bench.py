"""`stockgate bench`: a tiny real run (own API process, wrk) and its consistency check.

These start the API as a child process and run wrk for a couple of seconds; they check the
bench's plumbing and its verdicts, never the figures (benchmarks are not timed assertions).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from stockgate.adapters.redis.keys import Keys
from stockgate.bench.cli import run_bench
from stockgate.bench.scenarios import Plan, Target
from stockgate.config import Settings
from tests.conftest import clients

pytestmark = pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")

CONTRACT_KEYS = {
    "scenario",
    "requests_per_second",
    "p50_ms",
    "p99_ms",
    "errors",
    "refused",
    "oversold",
    "leaked",
    "ceiling_requests_per_second",
    "ratio_to_ceiling",
}


def last_json(stdout: str) -> dict[str, object]:
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert len(lines) == 1, "with --json the bench prints exactly one line on stdout"
    result: dict[str, object] = json.loads(lines[0])
    return result


def bench(settings: Settings, results_dir: Path, scenario: str = "reserve", **options: Any) -> int:
    """`run_bench` as these tests call it: its own stack, a JSON answer, short and small by
    default; each test names only what it changes."""
    chosen: dict[str, Any] = {"duration": 1, "connections": 1} | options
    return run_bench(settings, scenario, url=None, as_json=True, results_dir=results_dir, **chosen)


def test_tiny_reserve_run_reports_contract_keys_and_no_drift(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = bench(settings, tmp_path, duration=2, connections=4)

    result = last_json(capsys.readouterr().out)
    assert code == 0, result["problems"]
    assert result.keys() >= CONTRACT_KEYS
    assert result["scenario"] == "reserve"
    assert isinstance(result["requests_per_second"], float)
    assert result["requests_per_second"] > 0
    assert result["oversold"] == 0
    assert result["leaked"] == 0
    assert result["statuses"] == {"201": result["requests"]}
    kept = (tmp_path / "reserve.jsonl").read_text().splitlines()
    assert len(kept) == 1
    assert json.loads(kept[0])["machine"]["cores"] >= 1


def test_stock_taken_behind_the_gates_back_is_reported_as_leaked_and_fails_the_run(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async def take_one_unit_behind_the_back(target: Target, plan: Plan) -> None:
        (product_id,) = plan.stock
        stock_key = Keys(target.settings.redis_prefix).stock(product_id)
        await clients(target.container).redis.hincrby(stock_key, "available", -1)

    code = bench(
        settings,
        tmp_path,
        connections=2,
        with_ceiling=False,
        after_setup=take_one_unit_behind_the_back,
    )

    result = last_json(capsys.readouterr().out)
    assert code == 1
    assert result["leaked"] == 1
    assert result["oversold"] == 0
    assert result["ok"] is False
    assert "ceiling_requests_per_second" not in result


def test_missing_wrk_says_how_to_install_it_and_exits_2(
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))

    code = bench(settings, tmp_path)

    assert code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "apt-get install wrk" in captured.err


def test_a_series_keeps_every_run_and_sums_them_up(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = bench(settings, tmp_path, connections=2, with_ceiling=False, runs=2)

    captured = capsys.readouterr()
    series = last_json(captured.out)
    assert code == 0
    results = series["results"]
    assert isinstance(results, list) and len(results) == 2
    assert all(r["oversold"] == 0 and r["leaked"] == 0 for r in results)
    summary = series["summary"]
    assert isinstance(summary, dict)
    assert summary["runs"] == 2 and summary["consistent_runs"] == 2
    assert summary["goals"]["p99_ms <= 25"]["measured"] == 2
    assert "run 2/2:" in captured.err  # progress, one line per run
    assert len((tmp_path / "reserve.jsonl").read_text().splitlines()) == 2


@pytest.mark.parametrize("runs", [0, 51])
def test_runs_out_of_range_is_refused_before_any_load(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str], runs: int
) -> None:
    code = bench(settings, tmp_path, runs=runs)

    assert code == 2
    assert "--runs must be between 1 and 50" in capsys.readouterr().err
    assert not (tmp_path / "reserve.jsonl").exists()


def test_unknown_scenario_lists_the_known_ones_and_exits_2(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = bench(settings, tmp_path, "nope")

    assert code == 2
    assert "flash-sale" in capsys.readouterr().err


@pytest.mark.slow
def test_flash_sale_brings_all_stock_back_after_expiry(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = bench(settings, tmp_path, "flash-sale", duration=2, connections=8, with_ceiling=False)

    result = last_json(capsys.readouterr().out)
    assert code == 0, result["problems"]
    assert result["all_stock_back"] is True
    assert result["oversold"] == result["leaked"] == 0
    assert isinstance(result["released"], int)
    assert result["released"] > 0


def test_checkout_pays_every_order_and_reports_its_latencies(
    settings: Settings,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from stockgate.bench.scenarios import SCENARIOS

    monkeypatch.setattr(SCENARIOS["checkout"], "checkouts", 8)  # a tiny run: plumbing only
    code = bench(settings, tmp_path, "checkout", duration=2, connections=2, with_ceiling=False)

    result = last_json(capsys.readouterr().out)
    assert code == 0, result["problems"]
    assert (result["checkouts"], result["unpaid_orders"]) == (8, 0)
    assert result["oversold"] == result["leaked"] == 0
    for key in ("checkout_p50_ms", "checkout_p99_ms", "webhook_to_paid_p50_ms"):
        value = result[key]
        assert isinstance(value, float) and value > 0
