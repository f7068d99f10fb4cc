"""Optional py-spy profile of the API processes while the scenario's load runs, and a summary
of where the samples fall (self time and inclusive time per function)."""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
from collections import Counter
from pathlib import Path

LINE_NUMBER = re.compile(r":\d+\)$")
STARTUP = ("granian/", "typer/", "multiprocessing/", "cli/main.py", "http/serve.py")


def py_spy() -> str | None:
    beside_python = Path(sys.executable).with_name("py-spy")
    return str(beside_python) if beside_python.exists() else shutil.which("py-spy")


class Profiler:
    """py-spy on each pid for the load's duration; `stop()` waits for it to write its file.

    Does nothing when `out` is None. Must be created inside the running event loop.
    """

    def __init__(self, pids: list[int], duration: float, out: Path | None) -> None:
        self._pids = pids if out is not None else []
        self._duration = duration
        self._out = out
        self._task: asyncio.Task[list[asyncio.subprocess.Process]] | None = None
        if self._pids:
            self._task = asyncio.get_running_loop().create_task(self._spawn())

    @classmethod
    def start(cls, pids: list[int], duration: float, out: Path | None) -> Profiler:
        return cls(pids, duration, out)

    async def _spawn(self) -> list[asyncio.subprocess.Process]:
        binary = py_spy()
        if binary is None or self._out is None:
            return []
        processes = []
        for index, pid in enumerate(self._pids):
            out = self._out if index == 0 else self._out.with_suffix(f".{index}.txt")
            processes.append(
                await asyncio.create_subprocess_exec(
                    binary,
                    "record",
                    "--pid",
                    str(pid),
                    "--duration",
                    str(max(1, round(self._duration))),
                    "--rate",
                    "200",
                    "--nonblocking",
                    "--format",
                    "raw",
                    "--output",
                    str(out),
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                )
            )
        return processes

    async def stop(self) -> None:
        if self._task is None:
            return
        for process in await self._task:
            try:
                await asyncio.wait_for(process.wait(), timeout=30)
            except TimeoutError:
                process.kill()
                await process.wait()


def _function(frame: str) -> str:
    """`name (file:line)` -> `name (file)`: samples of one function add up across its lines."""
    return LINE_NUMBER.sub(")", frame)


def summarize(path: Path, top: int = 20) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """(self share, inclusive share) per function from py-spy's raw (collapsed) stacks.

    The inclusive list leaves out the start-up chain every request sample sits under
    (runpy, typer, granian's serve), which says nothing about the request path.
    """
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_function(f) for f in stack.split(";") if f]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if not total:
        return [], []
    chain = {f for f in inclusive if "<frozen" in f or any(part in f for part in STARTUP)}
    return (
        [(frame, n / total) for frame, n in own.most_common(top)],
        [
            (frame, n / total)
            for frame, n in inclusive.most_common(top + len(chain))
            if frame not in chain
        ][:top],
    )
