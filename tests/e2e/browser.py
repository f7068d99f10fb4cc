"""Headless Debian Chromium through Playwright, and where screenshots go (artifacts)."""

from __future__ import annotations

import os
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def artifacts_dir(topic: str) -> Path:
    """STOCKGATE_TEST_ARTIFACTS/<topic> (default test-artifacts/ in the repository)."""
    root = Path(
        os.environ.get("STOCKGATE_TEST_ARTIFACTS", Path(__file__).parents[2] / "test-artifacts")
    )
    path = root / topic
    path.mkdir(parents=True, exist_ok=True)
    return path
