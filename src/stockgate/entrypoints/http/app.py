"""The Litestar application factory. Clients are built in the lifespan, never at import."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from litestar import Litestar
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin

import stockgate
from stockgate.bootstrap import bootstrap
from stockgate.config import Settings, StoreUrls, load_settings
from stockgate.entrypoints.admin.routes import admin_routers
from stockgate.entrypoints.http.client_address import ClientAddresses
from stockgate.entrypoints.http.fast_path import ReservationFastPath
from stockgate.entrypoints.http.problems import HANDLERS
from stockgate.entrypoints.http.request_context import RequestContext
from stockgate.entrypoints.http.reservation_docs import describe_reservations
from stockgate.entrypoints.http.routes import ROUTES
from stockgate.entrypoints.http.state import ApiState
from stockgate.entrypoints.realtime.server import Realtime
from stockgate.entrypoints.storefront.pages import storefront_routes

log = structlog.get_logger(__name__)


def create_app(settings: Settings | None = None, urls: StoreUrls | None = None) -> Realtime:
    """The ASGI app granian serves: Socket.IO at /socket.io/, else the reservation fast path
    in front of Litestar."""
    settings = settings or load_settings()
    context = RequestContext()
    realtime = Realtime()
    app = create_litestar(settings, urls, context, realtime)
    realtime.app = ReservationFastPath(app, context, max_body_bytes=settings.max_body_bytes)
    return realtime


def create_litestar(
    settings: Settings, urls: StoreUrls | None, context: RequestContext, realtime: Realtime
) -> Litestar:

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        container = await bootstrap(settings, urls, api_node=True)
        app.state.api = ApiState(
            container=container, addresses=ClientAddresses(settings.trusted_networks)
        )
        # Long-lived start-up objects leave the garbage collector's view, and young
        # collections run less often: collection pauses were most of the p99
        # (docs/performance.md).
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 50, 100)
        await realtime.start(container)
        log.info("api.started", hold_seconds=settings.hold_seconds)
        try:
            yield
        finally:
            await realtime.stop()
            await container.close()
            log.info("api.stopped")

    app = Litestar(
        route_handlers=[*ROUTES, *storefront_routes(settings), *admin_routers()],
        lifespan=[lifespan],
        middleware=[context.middleware],
        exception_handlers=HANDLERS,
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="stockgate",
            version=stockgate.__version__,
            description="Limited stock for many buyers at once: reservations that never oversell.",
            path="/docs",  # interactive docs at /docs; the schema also at /openapi.json
            render_plugins=[SwaggerRenderPlugin(path="/"), JsonRenderPlugin(path="/openapi.json")],
        ),
        debug=False,
        # Logging is configured once, by adapters/logs.py; Litestar's default would replace
        # the root handler with its own format in each worker.
        logging_config=None,
    )
    describe_reservations(app.openapi_schema)  # served by the fast path, not by a route
    return app
