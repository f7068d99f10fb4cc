"""What the person at the terminal sees (`up: ...` lines on stderr) and sends (Ctrl-C)."""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


def say(message: str) -> None:
    print(f"up: {message}", file=sys.stderr, flush=True)


class StopRequests:
    """How many times SIGINT/SIGTERM arrived: once stops in order, twice skips the waits."""

    def __init__(self) -> None:
        self.count = 0

    @property
    def requested(self) -> bool:
        return self.count > 0

    def handle(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self.count == 1:
            say(f"{signal.Signals(signum).name}: stopping (again to skip waiting)")


@contextmanager
def stop_requests() -> Iterator[StopRequests]:
    """SIGINT and SIGTERM only set a flag: every step checks it, so cleanup runs in order."""
    stop = StopRequests()
    previous = {sig: signal.signal(sig, stop.handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
