"""The fake Stripe (localstripe) `up` runs when no Stripe key is set."""

from __future__ import annotations

from stockgate.adapters.embedded.fake_stripe import FakeStripe, FakeStripeUnavailable
from stockgate.config import Settings
from stockgate.entrypoints.cli.up.api import api_url
from stockgate.entrypoints.cli.up.terminal import say
from stockgate.supervisor import port_free


def wanted(settings: Settings) -> bool:
    return settings.stripe_secret_key is None


def busy_port(settings: Settings) -> str | None:
    """The error line when the fake Stripe's port is taken, else None."""
    port = settings.fake_stripe_port
    if wanted(settings) and (port == settings.http_port or not port_free("::", port)):
        return f"error: port {port} (fake Stripe) is in use; set STOCKGATE_FAKE_STRIPE_PORT"
    return None


def start_fake_stripe(settings: Settings, env: dict[str, str]) -> FakeStripe | None:
    """Start it and add its settings to `env`; None (with a warning) when it cannot start."""
    data_dir = settings.data_dir.resolve()
    # Its own state directory: intents survive a restart of `up` like the embedded stores' data,
    # and no other localstripe on the machine shares them.
    fake = FakeStripe(
        settings.fake_stripe_port, data_dir / "fake-stripe.log", state_dir=data_dir / "fake-stripe"
    )
    try:
        fake.start()
        fake.register_webhook(f"{api_url(settings)}/api/v1/stripe/webhook")
    except (FakeStripeUnavailable, OSError) as exc:
        fake.stop()
        say(
            f"warning: the fake Stripe (localstripe) did not start: {exc}; running without "
            "payments (checkout answers 503) - set STOCKGATE_STRIPE_SECRET_KEY to use Stripe"
        )
        return None
    env.update(fake.environment())
    return fake


def died(fake: FakeStripe | None) -> str | None:
    """The error line once the fake Stripe has exited, else None."""
    if fake is None or fake.exit_code() is None:
        return None
    return f"the fake Stripe exited with code {fake.exit_code()}"
