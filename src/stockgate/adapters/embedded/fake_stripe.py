"""The local fake Stripe (`localstripe`) for development, run as its own process.

localstripe is GPL-licensed: it is only ever run as a separate program, never imported.
It listens on every interface (IPv4 and IPv6) at the given port, keeps its state in
/tmp/localstripe.pickle, and sends webhooks to URLs registered through its `_config` API.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

# A key of the test-mode shape; localstripe accepts any.
SECRET_KEY = "sk_test_stockgate_local"
PUBLISHABLE_KEY = "pk_test_stockgate_local"
WEBHOOK_ID = "stockgate"


class FakeStripeUnavailable(RuntimeError):
    """localstripe could not be started; the stack runs without payments."""


@dataclass(slots=True)
class FakeStripe:
    port: int
    log_path: Path
    webhook_secret: str = field(default_factory=lambda: "whsec_" + secrets.token_hex(16))
    process: subprocess.Popen[bytes] | None = None

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environment(self) -> dict[str, str]:
        """What the API and workers need to talk to this fake (STOCKGATE_* settings)."""
        return {
            "STOCKGATE_STRIPE_API_BASE": self.api_base,
            "STOCKGATE_STRIPE_SECRET_KEY": SECRET_KEY,
            "STOCKGATE_STRIPE_PUBLISHABLE_KEY": PUBLISHABLE_KEY,
            "STOCKGATE_STRIPE_WEBHOOK_SECRET": self.webhook_secret,
        }

    def start(self, *, timeout: float = 20.0) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:  # an access-log line per request: not for `up`
            self.process = subprocess.Popen(
                [sys.executable, "-m", "localstripe", "--port", str(self.port)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches the supervisor, which stops us in order
            )
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self.process.poll() is not None:
                code = self.process.returncode
                self.process = None
                raise FakeStripeUnavailable(f"{self._last_log_line()} (exit code {code})")
            if time.monotonic() > deadline:
                self.stop()
                raise FakeStripeUnavailable(f"no answer on port {self.port} after {timeout} s")
            time.sleep(0.1)

    def _last_log_line(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no log"
        return lines[-1] if lines else "no log"

    def register_webhook(self, url: str) -> None:
        """Have the fake send its events to `url`, signed with our webhook secret."""
        body = json.dumps({"url": url, "secret": self.webhook_secret}).encode()
        request = urllib.request.Request(
            f"{self.api_base}/_config/webhooks/{WEBHOOK_ID}",
            data=body,
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5):
            pass

    def _answers(self) -> bool:
        request = urllib.request.Request(
            f"{self.api_base}/v1/balance", headers={"Authorization": f"Bearer {SECRET_KEY}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=0.5):
                return True
        except urllib.error.HTTPError:
            return True  # it answered, even if not to this question
        except OSError:
            return False

    def exit_code(self) -> int | None:
        """None while it runs (or when it was never started)."""
        return None if self.process is None else self.process.poll()

    def stop(self, *, timeout: float = 5.0) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.process = None
