"""Start `stockgate api` as a real process for end-to-end tests."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

STOCKGATE = str(Path(sys.executable).with_name("stockgate"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def running_api(
    env: dict[str, str],
    *,
    timeout: float = 60.0,
    log_level: str = "warning",
    output: list[str] | None = None,
) -> Iterator[str]:
    """The API's base URL while it runs; once stopped, what it wrote goes to `output`."""
    port = free_port()
    env = {**env, "STOCKGATE_HTTP_PORT": str(port), "STOCKGATE_LOG_LEVEL": log_level}
    process = subprocess.Popen(
        [STOCKGATE, "api"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                early = process.stdout.read().decode() if process.stdout else ""
                raise RuntimeError(f"stockgate api exited early:\n{early}")
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("stockgate api did not become healthy")
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if output is not None and process.stdout:
            output.append(process.stdout.read().decode())
