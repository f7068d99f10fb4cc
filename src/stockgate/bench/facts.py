"""What a figure was measured on (machine, versions, commit), and where results are kept."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
from pathlib import Path

import psutil
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

import stockgate
from stockgate.bench.wrk import wrk_version
from stockgate.bootstrap import Container

REPOSITORY = Path(stockgate.__file__).resolve().parents[2]


def default_results_dir() -> Path:
    return REPOSITORY / "bench" / "results"


def append_result(results_dir: Path, scenario: str, result: dict[str, object]) -> Path:
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{scenario}.jsonl"
    with path.open("a") as out:
        out.write(json.dumps(result, sort_keys=True) + "\n")
    return path


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def git_commit() -> str:
    try:
        head = subprocess.run(
            ["git", "-C", str(REPOSITORY), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPOSITORY), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")


async def machine_facts(container: Container) -> dict[str, object]:
    postgres = redis = "unknown"
    stores = container.stores
    assert stores is not None  # the bench always runs on real stores
    with contextlib.suppress(SQLAlchemyError, OSError):  # best effort: figures stand without
        async with stores.engine.connect() as connection:
            postgres = str((await connection.execute(text("SHOW server_version"))).scalar())
    with contextlib.suppress(RedisError, OSError):
        info = await stores.redis.info("server")
        redis = str(info.get("valkey_version") or info.get("redis_version"))
    return {
        "cores": os.cpu_count(),
        # Other work on the machine skews absolute figures; the ratio from one run less so.
        "load_average_1m": round(os.getloadavg()[0], 2),
        "memory_bytes": psutil.virtual_memory().total,
        "cpu_model": cpu_model(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "postgres": postgres,
        "redis": redis,
        "wrk": wrk_version(),
        "git_commit": git_commit(),
    }
