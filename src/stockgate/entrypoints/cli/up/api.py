"""The API `up` runs (`stockgate api`, granian) and the URLs it prints for it."""

from __future__ import annotations

from collections.abc import Callable

from stockgate.adapters.embedded.fake_stripe import FakeStripe
from stockgate.config import Settings
from stockgate.supervisor import Supervisor, port_free, stockgate_command

HEALTH_TIMEOUT_SECONDS = 60.0


def busy_port(settings: Settings) -> str | None:
    """The error line when the API's port is taken, else None."""
    if not port_free(settings.http_host, settings.http_port):
        return f"error: port {settings.http_port} is in use; set STOCKGATE_HTTP_PORT"
    return None


def start_api(children: Supervisor, env: dict[str, str]) -> None:
    children.start("api", stockgate_command("api"), env=env)


def wait_until_healthy(
    settings: Settings, children: Supervisor, cancelled: Callable[[], bool]
) -> bool:
    """True once /healthz answers; False when `up` is being stopped. Raises StartFailed."""
    return children.wait_healthy(
        f"{api_url(settings)}/healthz", timeout=HEALTH_TIMEOUT_SECONDS, cancelled=cancelled
    )


def api_url(settings: Settings) -> str:
    host = settings.http_host
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.http_port}"


def print_urls(settings: Settings, fake_stripe: FakeStripe | None) -> None:
    base = api_url(settings)
    lines = [
        f"stockgate is up (data in {settings.data_dir.resolve()})",
        # Only URLs that answer are printed.
        f"  admin        {base}/admin",
        f"  API docs     {base}/docs",
        f"  products     {base}/api/v1/products",
        f"  metrics      {base}/metrics",
    ]
    if fake_stripe is not None:
        lines.append(f"  fake Stripe  {fake_stripe.api_base}")
    lines.append("Press Ctrl-C to stop.")
    print("\n".join(lines), flush=True)
