"""The process supervisor with real child processes: health, death, stop, die-with-parent."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from stockgate.supervisor import StartFailed, Supervisor, free_port, port_free

PYTHON = sys.executable


def python(code: str) -> list[str]:
    return [PYTHON, "-c", textwrap.dedent(code)]


def gone(pid: int, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.02)
    return False


def wait_for_file(path: Path, within: float = 5.0) -> str:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.02)
    raise AssertionError(f"{path} was not written")


def test_free_port_is_free_and_a_listening_port_is_not() -> None:
    port = free_port()
    assert port_free("127.0.0.1", port)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert not port_free("127.0.0.1", taken.getsockname()[1])


def test_wait_healthy_returns_once_the_url_answers_and_stop_ends_the_child(
    tmp_path: Path,
) -> None:
    port = free_port()
    server = [PYTHON, "-m", "http.server", "--bind", "127.0.0.1", str(port)]
    with Supervisor(stop_seconds=5) as children:
        child = children.start("web", server, log=tmp_path / "web.log")
        assert children.wait_healthy(f"http://127.0.0.1:{port}/", timeout=20)
        assert children.died() is None
        assert os.getpgid(child.pid) == child.pid  # a session (and group) of its own
    assert child.exit_code() is not None
    assert children.stop() == []  # twice is harmless


def test_a_child_that_exits_fails_the_wait_naming_it(tmp_path: Path) -> None:
    with Supervisor() as children:
        children.start("api", python("print('boom'); raise SystemExit(3)"), log=tmp_path / "a")
        with pytest.raises(StartFailed, match="api exited with code 3"):
            children.wait_healthy(f"http://127.0.0.1:{free_port()}/", timeout=20)
        assert "boom" in children.children[0].output()


def test_wait_healthy_times_out_and_can_be_cancelled() -> None:
    url = f"http://127.0.0.1:{free_port()}/"
    with Supervisor() as children:
        children.start("sleeper", python("import time; time.sleep(60)"))
        with pytest.raises(StartFailed, match="did not answer 200 within 0.3 s"):
            children.wait_healthy(url, timeout=0.3)
        assert not children.wait_healthy(url, timeout=30, cancelled=lambda: True)


def test_stop_kills_a_child_that_ignores_sigterm_and_what_it_left_in_its_group(
    tmp_path: Path,
) -> None:
    grandchild_pid = tmp_path / "grandchild.pid"
    stubborn = f"""
        import signal, subprocess, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        open({str(grandchild_pid)!r}, "w").write(str(grandchild.pid))
        time.sleep(60)
    """
    children = Supervisor(stop_seconds=0.5)
    child = children.start("stubborn", python(stubborn))
    grandchild = int(wait_for_file(grandchild_pid))
    started = time.monotonic()
    assert children.stop() == ["stubborn"]
    assert time.monotonic() - started < 3
    assert child.exit_code() == -signal.SIGKILL
    assert gone(grandchild)


def test_a_second_request_skips_the_wait_for_sigterm() -> None:
    children = Supervisor(stop_seconds=30)
    children.start("stubborn", python("import signal, time; signal.signal(15, 1); time.sleep(60)"))
    time.sleep(0.3)  # let it install its handler
    started = time.monotonic()
    assert children.stop(hurry=lambda: True) == ["stubborn"]
    assert time.monotonic() - started < 3


def test_watch_reports_the_first_failure_or_nothing_when_cancelled() -> None:
    with Supervisor() as children:
        children.start("short", python("raise SystemExit(1)"))
        assert children.watch(cancelled=lambda: False, also=lambda: None) == (
            "short exited with code 1"
        )
    with Supervisor() as children:
        children.start("long", python("import time; time.sleep(60)"))
        assert children.watch(cancelled=lambda: False, also=lambda: "stripe died") == (
            "stripe died"
        )
        assert children.watch(cancelled=lambda: True, also=lambda: None) is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_children_get_sigterm_when_their_parent_dies(tmp_path: Path) -> None:
    child_pid = tmp_path / "child.pid"
    parent = f"""
        import os
        from stockgate.supervisor import Supervisor
        child = Supervisor().start("sleeper", [{PYTHON!r}, "-c", "import time; time.sleep(60)"])
        open({str(child_pid)!r}, "w").write(str(child.pid))
        os._exit(0)  # no clean-up: only the kernel can stop the child now
    """
    subprocess.run(python(parent), check=True, timeout=30)
    assert gone(int(wait_for_file(child_pid)))


def test_wait_for_output_sees_a_line_in_the_log_or_names_the_child_that_exited(
    tmp_path: Path,
) -> None:
    speaks = """
        import os, time
        time.sleep(0.2)
        print("ready in", os.getcwd(), flush=True)
        time.sleep(60)
    """
    with Supervisor() as children:
        child = children.start("speaker", python(speaks), log=tmp_path / "s.log", cwd=tmp_path)
        child.wait_for_output(f"ready in {tmp_path}", timeout=20)
        quiet = children.start("quiet", python("raise SystemExit(4)"), log=tmp_path / "q.log")
        with pytest.raises(StartFailed, match="quiet exited with code 4"):
            quiet.wait_for_output("ready", timeout=20)
        with pytest.raises(StartFailed, match="wrote no 'never' within 0.2 s"):
            child.wait_for_output("never", timeout=0.2)
