"""Start `stockgate api` as a real process for end-to-end tests (through stockgate.supervisor)."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from stockgate.supervisor import StartFailed, Supervisor, free_port, stockgate_command

STOCKGATE = str(Path(sys.executable).with_name("stockgate"))

__all__ = ["STOCKGATE", "free_port", "running_api"]


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
