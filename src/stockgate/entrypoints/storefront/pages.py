"""The storefront's routes: the page, its catalog fragment (htmx), its own static files and the
npm packages it uses, every answer with security headers and a CSP naming only what the page
needs (itself, and the configured Stripe.js with its API and frames)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from litestar import Request, Response, Router, get
from litestar.static_files import create_static_files_router

from stockgate.config import Settings
from stockgate.entrypoints.http.state import api
from stockgate.entrypoints.storefront.stripe_js import StripeJs, stripe_js
from stockgate.services import catalog

HERE = Path(__file__).parent
PROJECT_ROOT = HERE.parents[3]  # src/stockgate/entrypoints/storefront -> the checkout
# npm package -> its directory of browser builds, served under /static/vendor/<package>/.
VENDOR_PACKAGES = {"htmx": "htmx.org/dist", "socket.io": "socket.io-client/dist"}


def content_security_policy(stripe: StripeJs) -> str:
    def sources(*extra: str) -> str:
        return " ".join(("'self'", *extra))

    frames = " ".join(stripe.frame_origins) or "'none'"
    directives = [
        "default-src 'none'",
        f"script-src {sources(*stripe.script_origins)}",
        "style-src 'self'",
        "img-src 'self' data:",
        # 'self' covers the same-origin WebSocket of Socket.IO (CSP level 3).
        f"connect-src {sources(*stripe.connect_origins)}",
        f"frame-src {frames}",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
    return "; ".join(directives)


def security_headers(stripe: StripeJs) -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(stripe),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "X-Frame-Options": "DENY",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    }


def vendor_dir(settings: Settings) -> Path:
    return settings.storefront_vendor_dir or PROJECT_ROOT / "node_modules"


def storefront_routes(settings: Settings) -> list[Router]:
    stripe = stripe_js(settings)
    headers = security_headers(stripe)
    templates = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True),
        enable_async=False,
    )

    def html(template: str, **context: Any) -> Response[str]:
        body = templates.get_template(template).render(**context)
        return Response(body, media_type="text/html; charset=utf-8", headers=headers)

    async def with_headers(response: Response[Any]) -> Response[Any]:
        response.headers.update(headers)
        return response

    @get("/", include_in_schema=False)
    async def page() -> Response[str]:
        return html(
            "index.html",
            stripe=stripe,
            hold_seconds=settings.hold_seconds,
            max_quantity=settings.max_quantity,
        )

    @get("/storefront/catalog", include_in_schema=False)
    async def catalog_fragment(request: Request[Any, Any, Any]) -> Response[str]:
        container = api(request).container
        views = await catalog.list_products(uow_factory=container.uow_factory, gate=container.gate)
        return html("_catalog.html", products=views, max_quantity=settings.max_quantity)

    vendor = vendor_dir(settings)
    static = [
        create_static_files_router(
            "/static/storefront", directories=[HERE / "static"], after_request=with_headers
        )
    ] + [
        create_static_files_router(
            f"/static/vendor/{name}",
            directories=[vendor / package],
            name=f"vendor-{name}",
            after_request=with_headers,
        )
        for name, package in VENDOR_PACKAGES.items()
    ]
    return [Router("/", route_handlers=[page, catalog_fragment]), *static]
