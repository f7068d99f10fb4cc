"""The /admin router: every page behind the login guard, CSRF check and security headers."""

from __future__ import annotations

from typing import Any

from litestar import Router
from litestar.exceptions import HTTPException, ValidationException
from litestar.static_files import create_static_files_router

from stockgate.domain.errors import StockgateError
from stockgate.entrypoints.admin.login import LOGIN_ROUTES
from stockgate.entrypoints.admin.operations import OPERATION_ROUTES
from stockgate.entrypoints.admin.orders import ORDER_ROUTES
from stockgate.entrypoints.admin.overview import OVERVIEW_ROUTES
from stockgate.entrypoints.admin.products import PRODUCT_ROUTES
from stockgate.entrypoints.admin.web import HERE, admin_error, guard, security_headers


def admin_routers() -> list[Any]:
    pages = Router(
        path="/admin",
        route_handlers=[
            *LOGIN_ROUTES,
            *OVERVIEW_ROUTES,
            *PRODUCT_ROUTES,
            *ORDER_ROUTES,
            *OPERATION_ROUTES,
        ],
        before_request=guard,
        after_request=security_headers,
        # Every class the app maps too: the handler nearest in the MRO wins, whatever layer.
        exception_handlers={
            StockgateError: admin_error,
            ValidationException: admin_error,
            HTTPException: admin_error,
            Exception: admin_error,
        },
        include_in_schema=False,
    )
    static = create_static_files_router(
        path="/admin/static",
        directories=[HERE / "static"],
        after_request=security_headers,
        include_in_schema=False,
        name="admin-static",
    )
    return [pages, static]
