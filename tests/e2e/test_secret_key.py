"""`stockgate api` and `worker` refuse a secret key anyone could know; `up` makes its own."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
import pytest

from stockgate.config import DEV_SECRET_KEY, Settings
from stockgate.supervisor import Supervisor, stockgate_command
from tests.conftest import TEST_SECRET_KEY
from tests.e2e.api_process import STOCKGATE
from tests.e2e.conftest import env_for


def run(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [STOCKGATE, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("command", [("api",), ("worker", "--role", "expiry")])
@pytest.mark.parametrize("key", [None, DEV_SECRET_KEY, "s3cret", "x" * 31])
def test_weak_secret_key_stops_start_up_with_one_line_and_exit_2(
    module_settings: Settings, tmp_path: Path, command: tuple[str, ...], key: str | None
) -> None:
    env = env_for(module_settings)
    del env["STOCKGATE_SECRET_KEY"]
    if key is not None:
        env["STOCKGATE_SECRET_KEY"] = key
    result = run(env, tmp_path, *command)  # tmp_path: no stray .env file
    assert result.returncode == 2, result.stderr
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    assert "STOCKGATE_SECRET_KEY" in lines[0]
    assert 'python -c "import secrets; print(secrets.token_urlsafe(48))"' in lines[0]
    assert "Traceback" not in result.stderr


def test_api_with_a_strong_secret_key_serves_buyers(api_url: str) -> None:
    # `api_url` runs `stockgate api` with the tests' 32+ character key (see env_for).
    assert len(TEST_SECRET_KEY) >= 32
    created = httpx.post(f"{api_url}/api/v1/customers")
    assert created.status_code == 201
    token = created.json()["token"]
    mine = httpx.get(
        f"{api_url}/api/v1/reservations/00000000-0000-4000-8000-000000000000",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert mine.status_code == 404  # the token is accepted: unknown reservation, not 401


def test_worker_with_a_strong_secret_key_starts_and_stops_cleanly(
    module_settings: Settings, tmp_path: Path
) -> None:
    env = env_for(module_settings, STOCKGATE_LOG_FORMAT="json", STOCKGATE_LOG_LEVEL="info")
    children = Supervisor()
    command = stockgate_command("worker", "--role", "expiry")
    log = tmp_path / "worker.log"
    worker = children.start("worker", command, env=env, log=log, cwd=tmp_path)  # no .env here
    try:
        worker.wait_for_output("worker.started", timeout=60)
    finally:
        killed = children.stop()
    assert killed == [] and worker.exit_code() == 0


def test_up_refuses_a_short_secret_key_before_starting_anything(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOCKGATE_")}
    env.update(STOCKGATE_DATA_DIR=str(tmp_path / "data"), STOCKGATE_SECRET_KEY="s3cret")
    result = run(env, tmp_path, "up")
    assert result.returncode == 2
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 1 and "STOCKGATE_SECRET_KEY" in lines[0], lines
    assert not (tmp_path / "data").exists()  # nothing was started
