"""The dashboard's edge: session cookie, login guard, CSRF, security headers, error pages.

Every route under /admin passes `guard` first: a request without a live session is sent to
the login page (a browser) or answered 401 (JSON, htmx); a state-changing request must carry
the session's CSRF token (form field `_csrf` or header `X-CSRF-Token`), else it is refused
with 403 before any handler runs, so nothing changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import structlog
from jinja2 import Environment, FileSystemLoader, select_autoescape
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.response import Redirect

from stockgate.domain import errors
from stockgate.entrypoints.http.problems import problem, status_of
from stockgate.entrypoints.http.state import ApiState, api
from stockgate.entrypoints.storefront.pages import security_headers as storefront_headers
from stockgate.entrypoints.storefront.stripe_js import StripeJs
from stockgate.services.admin_auth import check_csrf, current_session
from stockgate.services.ports import AdminSession

log = structlog.get_logger(__name__)

SESSION_COOKIE = "sg_admin_session"
LOGIN_COOKIE = "sg_admin_login"  # pre-login CSRF token (double submit), only for the login form
CSRF_FIELD = "_csrf"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
HERE = Path(__file__).parent

# The storefront's headers and CSP (one definition), for a page that loads no Stripe.js:
# only our own scripts and styles, no framing; and nothing of the dashboard kept in caches.
SECURITY_HEADERS = {
    **storefront_headers(StripeJs(None, "", False, (), (), ())),
    "Cache-Control": "no-store",
}

templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def render(
    template: str, status_code: int = 200, *, headers: dict[str, str] | None = None, **context: Any
) -> Response[str]:
    html = templates.get_template(template).render(**context)
    return Response(
        html,
        status_code=status_code,
        media_type="text/html",
        headers={**SECURITY_HEADERS, **(headers or {})},
    )


def session_of(request: Request[Any, Any, Any]) -> AdminSession:
    """The live session `guard` found (every non-public admin route has one)."""
    session: AdminSession = request.state.admin_session
    return session


def wants_json(request: Request[Any, Any, Any]) -> bool:
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def is_htmx(request: Request[Any, Any, Any]) -> bool:
    return request.headers.get("hx-request") == "true"


def secure_cookies(request: Request[Any, Any, Any]) -> bool:
    """HTTPS here, or at a trusted proxy in front that says so (TLS ended at the proxy)."""
    if request.url.scheme == "https":
        return True
    peer = request.client.host if request.client else None
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return forwarded == "https" and api(request).addresses.trusts(peer)


async def guard(request: Request[Any, Any, Any]) -> Response[Any] | None:
    """Before every admin route: find the session, check CSRF; answer instead when refused."""
    if request.route_handler.opt.get("public"):
        return None
    state = api(request)
    session = await current_session(
        request.cookies.get(SESSION_COOKIE), deps=state.container.auth_deps
    )
    if session is None:
        return _login_required(request)
    request.state.admin_session = session
    if request.method not in SAFE_METHODS:
        token = request.headers.get(CSRF_HEADER)
        if token is None:
            form = await request.form()
            value = form.get(CSRF_FIELD)
            token = value if isinstance(value, str) else None
        check_csrf(session, token)  # raises CsrfRefused: the handler never runs
    return None


def _login_required(request: Request[Any, Any, Any]) -> Response[Any]:
    if wants_json(request) or is_htmx(request) or request.method not in SAFE_METHODS:
        exc = errors.AdminLoginRequired()
        response = problem(401, exc.code, exc.title, exc.detail)
        response.headers["HX-Redirect"] = "/admin/login"
        return response
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return Redirect(f"/admin/login?next={quote(target, safe='')}", status_code=303)


async def security_headers(response: Response[Any]) -> Response[Any]:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def admin_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Errors under /admin: a page for people, problem+json for scripts; never a traceback."""
    if isinstance(exc, errors.StockgateError):
        status, code, title, detail = status_of(exc), exc.code, exc.title, exc.detail
        if isinstance(exc, errors.StoreUnavailable):
            log.warning("admin.store_unavailable", code=exc.code, detail=exc.detail)
    elif isinstance(exc, ValidationException):
        status, code, title, detail = 400, "invalid_input", "Invalid input", str(exc.detail)
    elif isinstance(exc, HTTPException):
        status, code = exc.status_code, "http_error"
        title, detail = "Request refused", str(exc.detail)
    else:
        log.exception("admin.unexpected_error", path=request.url.path)
        status, code = 500, "internal_error"
        title, detail = "Internal error", "an unexpected error occurred; it has been logged"
    if wants_json(request):
        response = problem(status, code, title, detail)
        response.headers.update(SECURITY_HEADERS)
        return response
    return render(
        "error.html",
        status,
        status=status,
        code=code,
        title=title,
        detail=detail,
        store_down=status == 503,
    )


def state_of(request: Request[Any, Any, Any]) -> ApiState:
    return api(request)
