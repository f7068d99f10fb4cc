"""Which Stripe.js the storefront loads, and what the page may talk to because of it.

The fake Stripe (localstripe) serves a stand-in at `<api base>/js.stripe.com/v3/`: its card
element is plain inputs in the page, and it cannot create payment methods, so the page pays
with Stripe's named test payment methods instead (decision 0033). Real Stripe.js comes from
js.stripe.com and talks to api.stripe.com inside its own frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from stockgate.config import Settings

REAL_STRIPE_JS = "https://js.stripe.com/v3/"
REAL_API = "https://api.stripe.com"
# Stripe's documented CSP needs: its script and frames, its API, its hooks/3-D Secure frames.
REAL_FRAMES = ("https://js.stripe.com", "https://hooks.stripe.com")


@dataclass(frozen=True, slots=True)
class StripeJs:
    url: str | None  # None: no publishable key, so the page cannot take card details
    publishable_key: str
    fake: bool  # the fake's stand-in: pay with named test payment methods
    script_origins: tuple[str, ...]
    connect_origins: tuple[str, ...]
    frame_origins: tuple[str, ...]


def stripe_js(settings: Settings) -> StripeJs:
    key = settings.stripe_publishable_key or ""
    api_base = (settings.stripe_api_base or "").rstrip("/")
    fake = bool(api_base) and origin(api_base) != REAL_API
    url = settings.stripe_js_url or (f"{api_base}/js.stripe.com/v3/" if fake else REAL_STRIPE_JS)
    if not key:
        return StripeJs(None, "", fake, (), (), ())
    if fake:
        return StripeJs(url, key, True, (origin(url),), (origin(api_base),), ())
    return StripeJs(url, key, False, (origin(url),), (REAL_API,), REAL_FRAMES)


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
