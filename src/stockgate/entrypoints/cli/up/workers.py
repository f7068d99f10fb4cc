"""The workers `up` runs: one `stockgate worker` process per entry of WORKER_ROLES."""

from __future__ import annotations

from stockgate.supervisor import Supervisor, stockgate_command

# One process per role; to split them, list the roles (e.g. "fulfillment", "expiry").
WORKER_ROLES: tuple[str, ...] = ("all",)


def start_workers(children: Supervisor, env: dict[str, str]) -> None:
    for role in WORKER_ROLES:
        name = "worker" if role == "all" else f"worker ({role})"
        children.start(name, stockgate_command("worker", "--role", role), env=env)
