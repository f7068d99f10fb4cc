"""`stockgate api`: serve the app with granian (Rust HTTP server, uvloop)."""

from __future__ import annotations

from granian.constants import Interfaces, Loops
from granian.log import LogLevels
from granian.server import Server

from stockgate.adapters.logs import GRANIAN_LOGGING, configure_logging
from stockgate.config import Settings
from stockgate.supervisor import port_free


def serve(settings: Settings) -> int:
    configure_logging(settings)
    if not port_free(settings.http_host, settings.http_port):
        print(
            f"error: {settings.http_host}:{settings.http_port} is in use; "
            "set STOCKGATE_HTTP_PORT (or STOCKGATE_HTTP_HOST) to a free one"
        )
        return 2
    server = Server(
        "stockgate.entrypoints.http.app:create_app",
        address=settings.http_host,
        port=settings.http_port,
        interface=Interfaces.ASGI,
        workers=settings.http_workers,
        loop=Loops.uvloop,
        factory=True,
        log_access=False,
        log_level=LogLevels(settings.log_level),
        log_dictconfig=GRANIAN_LOGGING,
        backlog=2048,
    )
    server.serve()
    return 0
