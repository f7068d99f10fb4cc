"""Errors as problem+json (RFC 9457), mapped in one place.

The status is looked up along the exception's MRO, so a new domain error subclass needs no
new handler. Unexpected errors are logged with their traceback and answered with a bare 500.
"""

from __future__ import annotations

from typing import Any

import structlog
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException

from stockgate.domain import errors

log = structlog.get_logger(__name__)

PROBLEM = "application/problem+json"

STATUS: dict[type[errors.StockgateError], int] = {
    errors.InvalidInput: 422,
    errors.Unauthorized: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.StoreUnavailable: 503,
    errors.PaymentsUnconfigured: 503,
    errors.RateLimited: 429,
    errors.PaymentDeclined: 402,
    errors.StockgateError: 400,
}

HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


def problem_body(status: int, code: str, title: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": f"https://stockgate.dev/problems/{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }


def _headers(extra: dict[str, Any]) -> dict[str, str] | None:
    return {"Retry-After": str(extra["retry_after"])} if "retry_after" in extra else None


def problem(
    status: int, code: str, title: str, detail: str, **extra: Any
) -> Response[dict[str, Any]]:
    body = problem_body(status, code, title, detail, **extra)
    return Response(body, status_code=status, media_type=PROBLEM, headers=_headers(extra))


def status_of(exc: errors.StockgateError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400


def domain_error(request: Request[Any, Any, Any], exc: errors.StockgateError) -> Response[Any]:
    status = status_of(exc)
    if status >= 500:
        log.warning("request.store_unavailable", code=exc.code, detail=exc.detail)
    return problem(status, exc.code, exc.title, exc.detail, **exc.facts)


def validation_error(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    detail = str(exc.detail)
    if "malformed" in detail.lower() or "decode" in detail.lower():
        return problem(400, "malformed_json", "Malformed JSON", "the body is not valid JSON")
    return problem(
        422,
        "invalid_input",
        "Invalid input",
        detail,
        errors=_plain(exc.extra),
    )


def http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    code = HTTP_CODES.get(status, "http_error")
    return problem(status, code, code.replace("_", " ").capitalize(), str(exc.detail))


def unexpected_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("request.unexpected_error", path=request.url.path)
    return problem(500, "internal_error", "Internal error", "an unexpected error occurred")


def _plain(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


HANDLERS: dict[Any, Any] = {
    # Routing errors (unknown path, wrong method) are looked up by status code.
    404: http_error,
    405: http_error,
    errors.StockgateError: domain_error,
    ValidationException: validation_error,
    HTTPException: http_error,
    Exception: unexpected_error,
}

__all__ = ["HANDLERS", "PROBLEM", "MediaType", "problem"]
