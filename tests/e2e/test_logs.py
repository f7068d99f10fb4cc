"""With STOCKGATE_LOG_FORMAT=json every line the API writes is one JSON object: its own
lines, granian's and other libraries' (a log pipeline parses nothing else)."""

from __future__ import annotations

import json
from typing import Any

import httpx

from stockgate.config import Settings
from tests.e2e.api_process import free_port, running_api
from tests.e2e.conftest import env_for


def records(output: list[str]) -> list[dict[str, Any]]:
    (written,) = output
    lines = [line for line in written.splitlines() if line.strip()]
    parsed = [json.loads(line) for line in lines]  # a line that is not JSON fails here
    assert all({"event", "level", "timestamp"} <= record.keys() for record in parsed), parsed
    return parsed


def test_every_line_the_api_writes_is_json(module_settings: Settings) -> None:
    output: list[str] = []
    env = env_for(module_settings, STOCKGATE_LOG_FORMAT="json")
    with running_api(env, log_level="info", output=output) as api:
        assert httpx.get(f"{api}/healthz").status_code == 200
    written = records(output)
    events = [record["event"] for record in written]
    assert "api.started" in events and "api.stopped" in events
    granian = [r["event"] for r in written if r.get("logger", "").startswith("_granian")]
    assert any(event.startswith("Listening at") for event in granian), granian


def test_an_api_started_while_postgres_is_down_logs_it_and_serves(
    module_settings: Settings,
) -> None:
    nothing_there = f"postgresql://postgres@127.0.0.1:{free_port()}/stockgate"
    env = env_for(
        module_settings, STOCKGATE_DATABASE_URL=nothing_there, STOCKGATE_LOG_FORMAT="json"
    )
    output: list[str] = []
    with running_api(env, output=output) as api:
        assert httpx.get(f"{api}/healthz").status_code == 200
    (deferred,) = [r for r in records(output) if r["event"] == "journal.connect_deferred"]
    assert deferred["level"] == "warning"
    assert "Connection refused" in deferred["error"]
