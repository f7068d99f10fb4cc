"""Drives wrk: builds the Lua script from the package's templates, runs it bounded in time,
and reads back the figures its done() hook prints, with the CPU time wrk itself used."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

MARKER = "@@wrk "
INSTALL_HINT = "wrk is not installed: `apt-get install wrk` (Debian/Ubuntu) or `brew install wrk`"


class WrkMissing(RuntimeError):
    pass


class WrkFailed(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class WrkResult:
    requests: int
    duration_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    statuses: dict[int, int]
    kinds: dict[str, int]  # "<kind>:<status>" for scenarios that send several kinds
    socket_errors: dict[str, int]
    cpu_seconds: float  # user + system time of the wrk process
    output: str = field(repr=False, default="")

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def transport_errors(self) -> int:
        """Connections refused, reset or timed out: requests that got no HTTP answer."""
        return sum(self.socket_errors.get(k, 0) for k in ("connect", "read", "write", "timeout"))

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)

    @property
    def errors(self) -> int:
        return self.transport_errors + self.server_errors

    def count(self, status: int) -> int:
        return self.statuses.get(status, 0)


def wrk_path() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise WrkMissing(INSTALL_HINT)
    return path


def wrk_version() -> str:
    try:
        done = subprocess.run(
            [wrk_path(), "--version"], capture_output=True, text=True, timeout=5, check=False
        )
    except (WrkMissing, OSError, subprocess.TimeoutExpired):
        return "unknown"
    first = (done.stdout or done.stderr).splitlines()
    return first[0].split(" [")[0].removeprefix("wrk ").strip() if first else "unknown"


def write_script(name: str, directory: Path) -> Path:
    """The scenario's script with the shared counting hooks in front of it."""
    lua = resources.files("stockgate.bench") / "lua"
    text = (lua / "common.lua").read_text() + "\n" + (lua / f"{name}.lua").read_text()
    path = directory / f"{name}.lua"
    path.write_text(text)
    return path


async def run_wrk(
    url: str,
    script: Path,
    args: list[str],
    *,
    duration: float,
    connections: int,
    timeout_s: float = 5.0,
) -> WrkResult:
    """One wrk run (`-t1`: one Lua state, so counting in response() is exact)."""
    command = [
        wrk_path(),
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        f"--timeout={timeout_s:g}s",
        "--latency",
        "-s",
        str(script),
        url,
        "--",
        *args,
    ]
    out_path = script.with_suffix(".out")
    limit_s = duration + timeout_s + 15
    with out_path.open("w+") as out:
        # Popen only forks; the wait, which blocks, runs in a thread (wait4 for the CPU time).
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)  # noqa: ASYNC220
        try:
            status, usage = await asyncio.to_thread(_wait, process, limit_s)
        except BaseException:
            # Cancelled (Ctrl-C, SIGTERM): wrk must not keep loading a stack being stopped.
            if process.returncode is None and _alive(process.pid):
                os.kill(process.pid, signal.SIGKILL)
            raise
        out.seek(0)
        text = out.read()
    if status != 0:
        raise WrkFailed(f"wrk exited with {status}:\n{text[-2000:]}")
    return parse(text, usage.ru_utime + usage.ru_stime)


def _wait(process: subprocess.Popen[bytes], limit_s: float) -> tuple[int, resource.struct_rusage]:
    """wait4 gives the child's own CPU time, which psutil cannot read once it has exited."""
    deadline = time.monotonic() + limit_s
    while True:
        pid, raw, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = os.waitstatus_to_exitcode(raw)
            return process.returncode, usage
        if time.monotonic() > deadline:
            os.kill(process.pid, signal.SIGKILL)
            _, raw, usage = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(raw)
            raise WrkFailed(f"wrk did not finish within {limit_s:.0f} s; killed")
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def parse(text: str, cpu_seconds: float) -> WrkResult:
    line = next((ln for ln in text.splitlines() if ln.startswith(MARKER)), None)
    if line is None:
        raise WrkFailed(f"wrk printed no summary:\n{text[-2000:]}")
    data = json.loads(line.removeprefix(MARKER))
    latency = data["latency_us"]
    return WrkResult(
        requests=int(data["requests"]),
        duration_s=data["duration_us"] / 1e6,
        p50_ms=latency["p50"] / 1000,
        p90_ms=latency["p90"] / 1000,
        p99_ms=latency["p99"] / 1000,
        p999_ms=latency["p999"] / 1000,
        max_ms=latency["max"] / 1000,
        statuses={int(k): int(v) for k, v in data["statuses"].items()},
        kinds={str(k): int(v) for k, v in data["kinds"].items()},
        socket_errors={k: int(v) for k, v in data["errors"].items() if k != "status"},
        cpu_seconds=cpu_seconds,
        output=text,
    )
