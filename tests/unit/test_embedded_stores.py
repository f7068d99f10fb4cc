"""Finding the embedded servers and the ports `up` needs, without starting any server."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from stockgate.adapters.embedded import postgres, valkey
from stockgate.adapters.embedded.stores import embedded_stores, resolve
from stockgate.config import Settings
from stockgate.domain.errors import EmbeddedStoreNotRunning
from stockgate.entrypoints.cli.up import busy_port
from stockgate.supervisor import port_free


def test_configured_urls_win_and_start_nothing(tmp_path: Path) -> None:
    settings = Settings(
        database_url="postgresql://u@db/x", redis_url="redis://r:6379/0", data_dir=tmp_path
    )
    assert resolve(settings).database_url == "postgresql://u@db/x"
    with embedded_stores(settings) as urls:
        assert urls.redis_url == "redis://r:6379/0"
    assert list(tmp_path.iterdir()) == []


def test_resolve_only_attaches_and_says_what_to_do_when_nothing_runs(tmp_path: Path) -> None:
    settings = Settings(database_url=None, redis_url=None, data_dir=tmp_path)
    with pytest.raises(EmbeddedStoreNotRunning, match="stockgate up.*STOCKGATE_DATABASE_URL"):
        resolve(settings)


def test_stale_valkey_state_file_is_ignored_and_removed(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    state = tmp_path / valkey.STATE_FILE
    state.write_text(json.dumps({"pid": dead.pid, "port": 1, "started_at": 0.0}))
    assert valkey.find(tmp_path) is None
    assert not state.exists()


def test_garbled_valkey_state_file_is_removed(tmp_path: Path) -> None:
    state = tmp_path / valkey.STATE_FILE
    state.write_text("{not json")
    assert valkey.find(tmp_path) is None
    assert not state.exists()


def test_postmaster_pid_of_a_dead_server_is_not_a_running_postgres(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lines = [str(dead.pid), str(tmp_path), "0", "5432", str(tmp_path), "", "1 2", "ready"]
    (tmp_path / "postmaster.pid").write_text("\n".join(lines) + "\n")
    assert postgres.find(tmp_path) is None


def test_embedded_postgres_url_names_the_socket_directory() -> None:
    running = postgres.RunningPostgres(pid=1, socket_dir=Path("/data/pg"), port=5432)
    assert running.url() == "postgresql://postgres@/stockgate?host=/data/pg&port=5432"


def test_taken_http_port_names_the_setting() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert not port_free("127.0.0.1", port)
        message = busy_port(Settings(http_port=port))
    assert message is not None and "STOCKGATE_HTTP_PORT" in message and str(port) in message


def test_fake_stripe_port_equal_to_http_port_names_its_setting() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    message = busy_port(Settings(http_port=port, fake_stripe_port=port))
    assert message is not None and "STOCKGATE_FAKE_STRIPE_PORT" in message


def test_no_fake_stripe_port_check_when_stripe_is_configured() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = Settings(http_port=port, fake_stripe_port=port, stripe_secret_key="sk_live_x")
    assert busy_port(settings) is None
