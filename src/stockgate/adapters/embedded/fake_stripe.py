"""The local fake Stripe (`localstripe`) for development and tests, run as its own process.

localstripe is GPL-licensed: it is only ever run as a separate program, never imported.
It listens on every interface (IPv4 and IPv6) at the given port and sends webhooks to URLs
registered through its `_config` API. It keeps those registrations in memory only, so this
class remembers them and registers them again after a restart.

Its state is one pickle at the fixed path /tmp/localstripe.pickle, rewritten whole on every
write and loaded at start. No flag, environment variable, working directory, HOME or TMPDIR
moves it, so instances on one machine would share and clobber that file. Each instance
therefore gets a private /tmp when the machine allows it: `unshare` puts the process in its
own user and mount namespace and bind-mounts `state_dir` over /tmp there (nowhere else).
Where namespaces are refused, the instance falls back to the shared file; `fresh=True`
(`--from-scratch`) still keeps another instance's saved state out of it.
See docs/decisions/0009-stripe-and-the-fake.md.
"""

from __future__ import annotations

import functools
import json
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

# A key of the test-mode shape; localstripe accepts any `sk_...` key.
SECRET_KEY = "sk_test_stockgate_local"
PUBLISHABLE_KEY = "pk_test_stockgate_local"
WEBHOOK_ID = "stockgate"

# Run "$@" with `$1` bind-mounted over /tmp, in a mount namespace of its own (exec keeps the
# pid, so stopping the child stops localstripe itself).
_PRIVATE_TMP = 'mount --bind "$1" /tmp && shift && exec "$@"'


class FakeStripeUnavailable(RuntimeError):
    """localstripe could not be started; the stack runs without payments."""


def _under_tmp(path: str) -> bool:
    return Path(path).resolve().is_relative_to("/tmp")


@functools.cache
def private_tmp_supported() -> bool:
    """Whether this machine lets an unprivileged process have its own /tmp (asked once)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return False
    with tempfile.TemporaryDirectory(prefix="stockgate-probe-") as probe:
        try:
            done = subprocess.run(
                [unshare, "--user", "--map-root-user", "--mount", "sh", "-c", _PRIVATE_TMP]
                + ["sh", probe, "true"],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
    return done.returncode == 0


@dataclass(frozen=True, slots=True)
class _Webhook:
    url: str
    secret: str
    events: tuple[str, ...] | None


@dataclass(slots=True)
class FakeStripe:
    """One localstripe process. `state_dir`: its private /tmp (None: localstripe's shared
    file); `fresh`: the first start ignores any saved state (a restart always loads it)."""

    port: int
    log_path: Path
    state_dir: Path | None = None
    fresh: bool = False
    webhook_secret: str = field(default_factory=lambda: "whsec_" + secrets.token_hex(16))
    process: subprocess.Popen[bytes] | None = None
    isolated: bool = False  # True while running with its own /tmp
    _webhooks: dict[str, _Webhook] = field(default_factory=dict)
    _started: bool = False

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def state_file(self) -> Path:
        """Where this instance's state lives while it runs."""
        if self.isolated and self.state_dir is not None:
            return self.state_dir / "localstripe.pickle"
        return Path("/tmp/localstripe.pickle")

    def environment(self) -> dict[str, str]:
        """What the API and workers need to talk to this fake (STOCKGATE_* settings)."""
        return {
            "STOCKGATE_STRIPE_API_BASE": self.api_base,
            "STOCKGATE_STRIPE_SECRET_KEY": SECRET_KEY,
            "STOCKGATE_STRIPE_PUBLISHABLE_KEY": PUBLISHABLE_KEY,
            "STOCKGATE_STRIPE_WEBHOOK_SECRET": self.webhook_secret,
        }

    def _command(self) -> list[str]:
        """The command line, choosing the private /tmp when it can be had (sets `isolated`)."""
        argv = [sys.executable, "-m", "localstripe", "--port", str(self.port)]
        if self.fresh and not self._started:
            argv.append("--from-scratch")
        # The private /tmp hides the real one: only when this environment lives elsewhere.
        self.isolated = (
            self.state_dir is not None and not _under_tmp(sys.prefix) and private_tmp_supported()
        )
        if not self.isolated or self.state_dir is None:
            return argv
        unshare = ["unshare", "--user", "--map-root-user", "--mount"]
        return [*unshare, "sh", "-c", _PRIVATE_TMP, "sh", str(self.state_dir), *argv]

    def start(self, *, timeout: float = 20.0) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if self.state_dir is not None:
            self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:  # an access-log line per request: not for `up`
            self.process = subprocess.Popen(
                self._command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches the supervisor, which stops us in order
            )
        self._started = True
        self._wait_until_it_answers(timeout)
        for webhook_id, webhook in self._webhooks.items():  # it forgot them if it ran before
            self._post_webhook(webhook_id, webhook)

    def _wait_until_it_answers(self, timeout: float) -> None:
        assert self.process is not None
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

    def restart(self, *, timeout: float = 20.0) -> None:
        """Stop and start again with the saved state and the same webhooks (an outage)."""
        self.stop()
        self.start(timeout=timeout)

    def _last_log_line(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no log"
        return lines[-1] if lines else "no log"

    def register_webhook(
        self,
        url: str,
        *,
        webhook_id: str = WEBHOOK_ID,
        secret: str | None = None,
        events: tuple[str, ...] | None = None,
    ) -> None:
        """Have the fake send its events (or only `events`) to `url`, signed with `secret`
        (default: this fake's webhook secret). The same `webhook_id` again replaces it."""
        webhook = _Webhook(url, secret or self.webhook_secret, events)
        self._post_webhook(webhook_id, webhook)
        self._webhooks[webhook_id] = webhook

    def _post_webhook(self, webhook_id: str, webhook: _Webhook) -> None:
        body: dict[str, object] = {"url": webhook.url, "secret": webhook.secret}
        if webhook.events is not None:
            body["events"] = list(webhook.events)
        self._config("POST", f"webhooks/{webhook_id}", json.dumps(body).encode())

    def flush(self) -> None:
        """Forget every object (intents, refunds, events); webhooks stay registered."""
        self._config("DELETE", "data", None)

    def _config(self, method: str, path: str, body: bytes | None) -> None:
        request = urllib.request.Request(
            f"{self.api_base}/_config/{path}",
            data=body,
            headers={"Content-Type": "application/json"},
            method=method,
        )
        with urllib.request.urlopen(request, timeout=5):
            pass

    def _answers(self) -> bool:
        # A lookup of an intent that does not exist: any answer proves it is up, and unlike
        # GET /v1/balance it creates nothing (the balance would also send a webhook).
        request = urllib.request.Request(
            f"{self.api_base}/v1/payment_intents/pi_readiness_probe",
            headers={"Authorization": f"Bearer {SECRET_KEY}"},
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
