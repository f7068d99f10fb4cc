"""`stockgate up` as a user runs it: embedded stores, API and workers, a clean stop, data kept.

No STOCKGATE_DATABASE_URL / STOCKGATE_REDIS_URL: `up` starts the embedded PostgreSQL and Valkey
in a temporary data directory, and the fake Stripe on a free port.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest

from stockgate import supervisor
from tests.e2e.api_process import STOCKGATE

pytestmark = pytest.mark.slow

READY_LINE = "Press Ctrl-C to stop."
START_SECONDS = 120  # a first start runs initdb; on a busy 2-core machine 45 s was too short
STOP_SECONDS = 20


def free_port() -> int:
    """Free on every interface: the fake Stripe listens on all of them."""
    return supervisor.free_port("::" if socket.has_ipv6 else "0.0.0.0")


@pytest.fixture
def up_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOCKGATE_")}
    env.update(
        STOCKGATE_DATA_DIR=str(tmp_path / "data"),
        STOCKGATE_HTTP_PORT=str(free_port()),
        STOCKGATE_FAKE_STRIPE_PORT=str(free_port()),
        STOCKGATE_LOG_FORMAT="json",
    )
    return env


@dataclass
class Up:
    process: subprocess.Popen[str]
    lines: queue.Queue[str] = field(default_factory=queue.Queue)
    seen: list[str] = field(default_factory=list)

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                assert self.process.poll() is None, "up exited early:\n" + "".join(self.seen)
                continue
            self.seen.append(line)
            if text in line:
                return
        raise AssertionError(f"no {text!r} within {timeout} s:\n" + "".join(self.seen))

    def output(self) -> str:
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return "".join(self.seen)


def start_up(env: dict[str, str], cwd: Path, *args: str) -> Up:
    process = subprocess.Popen(
        [STOCKGATE, "up", *args],
        env=env,
        cwd=cwd,  # no stray .env file
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    up = Up(process)

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            up.lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return up


@contextmanager
def running_up(env: dict[str, str], cwd: Path, *args: str) -> Iterator[Up]:
    up = start_up(env, cwd, *args)
    try:
        up.wait_for(READY_LINE, START_SECONDS)
        yield up
    finally:
        if up.process.poll() is None:  # a failed assertion: do not leave a stack behind
            up.process.send_signal(signal.SIGTERM)
            try:
                up.process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                for child in psutil.Process(up.process.pid).children(recursive=True):
                    child.kill()
                up.process.kill()


def cli(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [STOCKGATE, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )


def stack_processes(up: Up, data_dir: Path) -> list[psutil.Process]:
    """`up`'s children (API, granian workers, workers, fake Stripe) and the embedded servers."""
    found = {p.pid: p for p in psutil.Process(up.process.pid).children(recursive=True)}
    found.update({p.pid: p for p in servers_of(data_dir)})
    return list(found.values())


def servers_of(data_dir: Path) -> list[psutil.Process]:
    """Processes working in the data directory: PostgreSQL (all of them) and Valkey."""
    servers = []
    for process in psutil.process_iter(["cwd", "status"]):
        cwd = process.info["cwd"] or ""
        if cwd.startswith(str(data_dir)) and process.info["status"] != psutil.STATUS_ZOMBIE:
            servers.append(process)
    return servers


def stop(up: Up) -> int:
    up.process.send_signal(signal.SIGTERM)
    started = time.monotonic()
    code = up.process.wait(STOP_SECONDS)
    assert time.monotonic() - started < STOP_SECONDS
    return code


def assert_nothing_left(processes: list[psutil.Process], data_dir: Path) -> None:
    _, alive = psutil.wait_procs(processes, timeout=5)
    alive = [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"left running: {[(p.pid, p.cmdline()) for p in alive]}"
    assert not servers_of(data_dir)
    assert not (data_dir / "postgres" / "postmaster.pid").exists()
    assert not (data_dir / "valkey" / "server.json").exists()


def test_up_serves_stops_cleanly_and_keeps_data_for_the_next_run(
    up_env: dict[str, str], tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    base = f"http://127.0.0.1:{up_env['STOCKGATE_HTTP_PORT']}"
    with running_up(up_env, tmp_path) as up:
        output = up.output()
        for url in (f"{base}/docs", f"{base}/api/v1/products"):
            assert url in output
            assert httpx.get(url).status_code == 200
        assert httpx.get(f"{base}/healthz").status_code == 200
        assert httpx.get(f"{base}/readyz").status_code == 200
        # No STOCKGATE_SECRET_KEY: `up` signs with a random key of its own, kept for next time.
        token = httpx.post(f"{base}/api/v1/customers").json()["token"]
        assert (data_dir / "secret-key").stat().st_mode & 0o777 == 0o600
        # A one-shot command finds the running embedded servers (and leaves them running).
        added = cli(
            up_env,
            tmp_path,
            *("products", "add", "--sku", "UP-1", "--name", "Kept", "--price-cents", "100"),
            *("--stock", "7", "--json"),
        )
        assert added.returncode == 0, added.stderr
        assert httpx.get(f"{base}/readyz").status_code == 200
        processes = stack_processes(up, data_dir)
        assert len(servers_of(data_dir)) >= 2  # postgres (and its helpers) and valkey
        assert stop(up) == 0
    assert_nothing_left(processes, data_dir)

    with running_up(up_env, tmp_path) as up:
        listed = httpx.get(f"{base}/api/v1/products")
        assert listed.status_code == 200
        assert [p["sku"] for p in listed.json()] == ["UP-1"]
        unknown = f"{base}/api/v1/reservations/00000000-0000-4000-8000-000000000000"
        mine = httpx.get(unknown, headers={"Authorization": f"Bearer {token}"})
        assert mine.status_code == 404  # the first run's token is still valid: not 401
        processes = stack_processes(up, data_dir)
        assert stop(up) == 0
    assert_nothing_left(processes, data_dir)


def test_one_shot_command_starts_and_stops_the_embedded_servers(
    up_env: dict[str, str], tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    listed = cli(up_env, tmp_path, "products", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []
    assert_nothing_left([], data_dir)


def test_up_with_demo_twice_adds_the_catalog_once(up_env: dict[str, str], tmp_path: Path) -> None:
    base = f"http://127.0.0.1:{up_env['STOCKGATE_HTTP_PORT']}"
    for run in range(2):
        with running_up(up_env, tmp_path, "--demo") as up:
            output = up.output()
            assert "demo admin login: admin / " in output
            skus = [p["sku"] for p in httpx.get(f"{base}/api/v1/products").json()]
            assert len(skus) == len(set(skus)) >= 3, (run, skus)
            assert stop(up) == 0


def test_up_refuses_a_taken_http_port_naming_the_setting(
    up_env: dict[str, str], tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        up_env["STOCKGATE_HTTP_PORT"] = str(taken.getsockname()[1])
        result = cli(up_env, tmp_path, "up")
    assert result.returncode == 2
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 1 and "STOCKGATE_HTTP_PORT" in lines[0], lines
    assert not (tmp_path / "data" / "postgres").exists()  # nothing was started


def test_up_refuses_a_taken_fake_stripe_port_naming_the_setting(
    up_env: dict[str, str], tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        up_env["STOCKGATE_FAKE_STRIPE_PORT"] = str(taken.getsockname()[1])
        result = cli(up_env, tmp_path, "up")
    assert result.returncode == 2
    assert "STOCKGATE_FAKE_STRIPE_PORT" in result.stdout + result.stderr
