"""Start `stockgate api` and workers as real processes for end-to-end tests (through
stockgate.supervisor)."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from stockgate.supervisor import Child, StartFailed, Supervisor, free_port, stockgate_command

STOCKGATE = str(Path(sys.executable).with_name("stockgate"))

__all__ = ["STOCKGATE", "free_port", "running_api", "running_workers"]


@contextmanager
def running_api(
    env: dict[str, str],
    *,
    timeout: float = 60.0,
    log_level: str = "warning",
    output: list[str] | None = None,
    port: int | None = None,
) -> Iterator[str]:
    """The API's base URL while it runs; once stopped, what it wrote goes to `output`.
    `port`: listen there (a test that restarts the API keeps its URL), else a free one."""
    port = port or free_port()
    env = {**env, "STOCKGATE_HTTP_PORT": str(port), "STOCKGATE_LOG_LEVEL": log_level}
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="stockgate-api-") as logs:
        log = Path(logs) / "api.log"
        children = Supervisor()
        api = children.start("api", stockgate_command("api"), env=env, log=log)
        try:
            try:
                children.wait_healthy(f"{base}/healthz", timeout=timeout)
            except StartFailed as exc:
                raise RuntimeError(f"stockgate api: {exc}:\n{api.output()}") from exc
            yield base
        finally:
            children.stop()
            if output is not None:
                output.append(log.read_text(errors="replace"))


@contextmanager
def running_workers(
    env: dict[str, str], *roles: str, timeout: float = 60.0
) -> Iterator[list[Child]]:
    """One `stockgate worker --role ROLE` per role, each polling (its `worker.started` line
    seen) before this yields; stopped with SIGTERM on the way out (see each `exit_code()`)."""
    env = {**env, "STOCKGATE_LOG_LEVEL": "info"}  # the started line is an info record
    with tempfile.TemporaryDirectory(prefix="stockgate-workers-") as logs:
        children = Supervisor()
        try:
            for n, role in enumerate(roles):
                command = stockgate_command("worker", "--role", role)
                log = Path(logs) / f"worker-{n}-{role}.log"
                worker = children.start(f"worker {role}", command, env=env, log=log)
                try:
                    worker.wait_for_output("worker.started", timeout=timeout)
                except StartFailed as exc:
                    raise RuntimeError(f"stockgate worker: {exc}:\n{worker.output()}") from exc
            yield children.children
        finally:
            children.stop()
