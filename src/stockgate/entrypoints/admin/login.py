"""Log in and out. The login form carries its own CSRF token (a cookie and a field that must
match), since there is no session yet to bind one to."""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from litestar import Request, Response, get, post
from litestar.response import Redirect

from stockgate.domain import errors
from stockgate.entrypoints.admin.web import (
    CSRF_FIELD,
    LOGIN_COOKIE,
    SESSION_COOKIE,
    render,
    secure_cookies,
    session_of,
    state_of,
)
from stockgate.entrypoints.http.state import client_address
from stockgate.services.admin_auth import current_session, log_in, log_out

MAX_FIELD = 1024


def _next(target: str | None) -> str:
    """Only a path of this dashboard: never an open redirect to another site."""
    if target and target.startswith("/admin") and not target.startswith("//"):
        return target
    return "/admin"


def _form_page(
    request: Request[Any, Any, Any], status_code: int = 200, **context: Any
) -> Response[str]:
    token = secrets.token_urlsafe(32)
    response = render(
        "login.html",
        status_code,
        csrf_token=token,
        next=_next(request.query_params.get("next")),
        **context,
    )
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        path="/admin/login",
        httponly=True,
        samesite="strict",
        secure=secure_cookies(request),
        max_age=3600,
    )
    return response


@get("/login", opt={"public": True}, include_in_schema=False)
async def login_page(request: Request[Any, Any, Any]) -> Response[Any]:
    state = state_of(request)
    session = await current_session(
        request.cookies.get(SESSION_COOKIE), deps=state.container.auth_deps
    )
    if session is not None:
        return Redirect(_next(request.query_params.get("next")), status_code=303)
    return _form_page(request)


@post("/login", opt={"public": True}, include_in_schema=False, status_code=303)
async def login(request: Request[Any, Any, Any]) -> Response[Any]:
    form = await request.form()
    username = _field(form.get("username"))
    password = _field(form.get("password"))
    token = _field(form.get(CSRF_FIELD))
    cookie = request.cookies.get(LOGIN_COOKIE, "")
    if not token or not cookie or not hmac.compare_digest(token.encode(), cookie.encode()):
        raise errors.CsrfRefused()
    if not username or not password:
        return _form_page(request, 400, error="Enter your name and password.", username=username)
    state = state_of(request)
    try:
        session = await log_in(
            username, password, client_address(request, state), deps=state.container.auth_deps
        )
    except errors.LoginThrottled as exc:
        throttled = _form_page(request, 429, error=exc.detail, username=username)
        throttled.headers["Retry-After"] = str(exc.facts["retry_after"])
        return throttled
    except errors.InvalidCredentials as exc:
        return _form_page(request, 401, error=exc.detail.capitalize() + ".", username=username)
    # A new session id at every login: a cookie planted before it (fixation) names nothing.
    response: Response[Any] = Redirect(_next(_field(form.get("next"))), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        session.id,
        path="/admin",
        httponly=True,
        samesite="lax",
        secure=secure_cookies(request),
    )
    response.delete_cookie(LOGIN_COOKIE, path="/admin/login")
    return response


@post("/logout", include_in_schema=False, status_code=303)
async def logout(request: Request[Any, Any, Any]) -> Response[Any]:
    await log_out(session_of(request), deps=state_of(request).container.auth_deps)
    response: Response[Any] = Redirect("/admin/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/admin")
    return response


def _field(value: object) -> str:
    """A submitted text field; "" when missing or longer than any valid value."""
    return value if isinstance(value, str) and len(value) <= MAX_FIELD else ""


LOGIN_ROUTES = [login_page, login, logout]
