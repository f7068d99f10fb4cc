"""`stockgate orders` starts the way the supervisor starts stockgate (`python -m`), and answers
a malformed order id with one line and exit code 2."""

from __future__ import annotations

import subprocess
import sys


def test_orders_command_runs_as_a_module_and_refuses_a_malformed_id() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "stockgate.entrypoints.cli.main", "orders", "cancel", "12; DROP"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "must be an order id" in done.stderr and "Traceback" not in done.stderr
