"""Child processes: start them, wait until they answer, stop them. The one home for this.

Used by `stockgate up`, the bench's own stack and the end-to-end tests, and for `free_port` /
`port_free` by everything that picks or checks a port. It knows processes, not stockgate: what
to start is the caller's (`stockgate_command()` builds a `stockgate ...` command line).

- Every child runs in a session (process group) of its own, so a terminal's Ctrl-C reaches only
  the parent, which stops its children in order; and stopping a child's group also stops what
  the child started (granian's worker processes).
- On Linux every child gets SIGTERM should its parent die (PR_SET_PDEATHSIG). The kernel ties
  that to the parent *thread*: start children from a thread that lives as long as they do (the
  main thread, or an event loop's thread), never from `asyncio.to_thread`.
- Stopping: SIGTERM to each child, up to `stop_seconds` for all of them to finish (or until
  `hurry()` says so, e.g. a second Ctrl-C), then SIGKILL to each child's whole group.

Not a restart loop: see docs/decisions/0010-one-process-supervisor.md.
"""

from __future__ import annotations

import ctypes
import errno
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

STOP_SECONDS = 10.0
POLL_SECONDS = 0.1


class StartFailed(RuntimeError):
    """A child exited, or did not become healthy in time; the message says which."""


def stockgate_command(*args: str) -> list[str]:
    """`stockgate ARGS...` run by this interpreter (no reliance on PATH or the venv's script)."""
    return [sys.executable, "-m", "stockgate", *args]


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (another process may take it before we bind it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def port_free(host: str, port: int) -> bool:
    """Whether a server could bind `host:port` now. `::` falls back to the IPv4 wildcard
    where the machine has no IPv6."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        probe = socket.socket(family, socket.SOCK_STREAM)
    except OSError:  # no IPv6 here: the IPv4 wildcard is what a server would bind
        return port_free("0.0.0.0", port)
    with probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            if exc.errno == errno.EADDRNOTAVAIL and family == socket.AF_INET6:
                return port_free("0.0.0.0", port)
            raise
    return True


def answers(url: str, *, timeout: float = 1.0) -> bool:
    """Whether GET `url` answers 200 now."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError):
        return False


@dataclass(slots=True)
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log: Path | None = None  # where its output goes; None: this process's stdout/stderr

    @property
    def pid(self) -> int:
        return self.process.pid

    def exit_code(self) -> int | None:
        return self.process.poll()

    def wait_for_output(self, text: str, *, timeout: float) -> None:
        """Block until `text` appears in its log (e.g. a worker's `worker.started` line);
        StartFailed when it exits first or `timeout` seconds pass."""
        if self.log is None:
            raise ValueError(f"{self.name} writes to no log file")
        deadline = time.monotonic() + timeout
        while text not in self.output(last=0):
            code = self.exit_code()
            if code is not None:
                raise StartFailed(f"{self.name} exited with code {code}")
            if time.monotonic() > deadline:
                raise StartFailed(f"{self.name} wrote no {text!r} within {timeout:g} s")
            time.sleep(POLL_SECONDS / 2)

    def output(self, *, last: int = 3000) -> str:
        """The end of what it wrote (`last` characters, 0: all; only with a log file)."""
        if self.log is None:
            return ""
        try:
            return self.log.read_text(errors="replace")[-last:]
        except OSError:
            return ""


@dataclass(slots=True)
class Supervisor:
    """The children started together, stopped together (`with Supervisor() as children:`).

    Adding one more kind of child is one `start(...)` line at the caller.
    """

    stop_seconds: float = STOP_SECONDS
    children: list[Child] = field(default_factory=list)

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(
        self,
        name: str,
        command: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        log: Path | None = None,
        cwd: Path | None = None,
    ) -> Child:
        """Start `command` in a session of its own; its output goes to `log` (appended) when
        given, else to ours."""
        if log is None:
            process = _popen(command, env, cwd, stdout=None)
        else:
            log.parent.mkdir(parents=True, exist_ok=True)
            with log.open("ab") as out:
                process = _popen(command, env, cwd, stdout=out)
        child = Child(name, process, log)
        self.children.append(child)
        return child

    def died(self) -> str | None:
        """'NAME exited with code N' for the first child that is no longer running, else None."""
        for child in self.children:
            code = child.exit_code()
            if code is not None:
                return f"{child.name} exited with code {code}"
        return None

    def wait_healthy(
        self, url: str, *, timeout: float, cancelled: Callable[[], bool] = lambda: False
    ) -> bool:
        """Poll `url` until it answers 200 (True) or `cancelled()` (False); raises StartFailed
        when a child exits first or `timeout` seconds pass."""
        deadline = time.monotonic() + timeout
        while not cancelled():
            died = self.died()
            if died is not None:
                raise StartFailed(died)
            if answers(url):
                return True
            if time.monotonic() > deadline:
                raise StartFailed(f"{url} did not answer 200 within {timeout:g} s")
            time.sleep(POLL_SECONDS)
        return False

    def watch(self, *, cancelled: Callable[[], bool], also: Callable[[], str | None]) -> str | None:
        """Block until a child exits (its 'NAME exited ...' line), `also()` names another
        failure (that line), or `cancelled()` (None)."""
        while not cancelled():
            died = self.died() or also()
            if died is not None:
                return died
            time.sleep(POLL_SECONDS)
        return None

    def stop(self, *, hurry: Callable[[], bool] = lambda: False) -> list[str]:
        """Stop every child (see the module docstring); returns the names of those that had to
        be killed. Safe to call twice."""
        running = [c for c in self.children if c.exit_code() is None]
        for child in running:
            _signal(child.pid, signal.SIGTERM, group=False)  # the leader stops its own workers
        deadline = time.monotonic() + self.stop_seconds
        while any(c.exit_code() is None for c in running):
            if time.monotonic() > deadline or hurry():
                break
            time.sleep(0.05)
        killed: list[str] = []
        for child in self.children:
            if child.exit_code() is None:
                killed.append(child.name)
            # Also whatever the child left in its group (granian's worker processes).
            _signal(child.pid, signal.SIGKILL, group=True)
            child.process.wait()
        return killed


def _popen(
    command: Sequence[str],
    env: Mapping[str, str] | None,
    cwd: Path | None,
    *,
    stdout: IO[bytes] | None,
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        list(command),
        env=None if env is None else dict(env),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=None if stdout is None else subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_die_with_parent(os.getpid()),
    )


def _die_with_parent(parent: int) -> Callable[[], None] | None:
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)  # loaded before the fork, not in the child

    def set_parent_death_signal() -> None:
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before the line above
            os.kill(os.getpid(), signal.SIGTERM)

    return set_parent_death_signal


def _signal(pid: int, sig: signal.Signals, *, group: bool) -> None:
    try:
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass  # already gone (a reaped group leader's pgid may even be reused: EPERM)
