"""structlog set-up: JSON lines in production, readable lines on a terminal.

A request id is bound per request by the HTTP layer (contextvars), so every line of one
request carries it. Lines of the standard library's `logging` (granian, asyncpg) go through
the same renderer, so a log pipeline reading JSON gets nothing else. Secrets are never passed
to a logger; settings are logged only through `safe_settings`, which drops every secret value.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

from stockgate.config import LogFormat, Settings


def configure_logging(settings: Settings) -> None:
    level = getattr(logging, settings.log_level.upper())
    as_json = settings.log_format is LogFormat.JSON or (
        settings.log_format is LogFormat.AUTO and not sys.stderr.isatty()
    )
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    stamped: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*stamped, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*stamped, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # Libraries' info lines are chatter; granian's own logger keeps its level (below).
    root.setLevel(max(level, logging.WARNING))


# For granian's `log_dictconfig`: its logger hands its lines to the root handler above
# instead of printing its own format (granian sets the logger's level itself).
GRANIAN_LOGGING: dict[str, Any] = {
    "loggers": {"_granian": {"handlers": [], "propagate": True}},
}


def safe_settings(settings: Settings) -> dict[str, Any]:
    """Settings fit for a log line: secrets and URL passwords removed."""
    shown: dict[str, Any] = {}
    for name, value in settings.model_dump().items():
        if "secret" in name or "key" in name:
            shown[name] = "***" if value else None
        elif name.endswith("_url") and isinstance(value, str) and "@" in value:
            scheme, _, rest = value.partition("://")
            shown[name] = f"{scheme}://***@{rest.rpartition('@')[2]}"
        else:
            shown[name] = value
    return shown
