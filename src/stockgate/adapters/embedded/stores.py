"""Where PostgreSQL and Redis are: the configured URLs, else the embedded servers.

(Interim version: configured URLs only. The embedded servers are wired in by the
`stockgate up` work.)
"""

from __future__ import annotations

from stockgate.bootstrap import StoreUrls
from stockgate.config import Settings


def resolve(settings: Settings) -> StoreUrls:
    if settings.database_url is None or settings.redis_url is None:
        raise SystemExit("set STOCKGATE_DATABASE_URL and STOCKGATE_REDIS_URL")
    return StoreUrls(settings.database_url, settings.redis_url)
