"""Keyset paging cursors: "<ISO time>|<id>" of the last row shown (no OFFSET on big tables)."""

from __future__ import annotations

import uuid
from datetime import datetime

PAGE_SIZE = 50


def cursor(at: datetime, key: object) -> str:
    return f"{at.isoformat()}|{key}"


def parse_cursor(raw: str | None) -> tuple[datetime, str] | None:
    """None for a missing or malformed cursor (the first page)."""
    if not raw or "|" not in raw or len(raw) > 300:
        return None
    at, _, key = raw.partition("|")
    try:
        when = datetime.fromisoformat(at)
    except ValueError:
        return None
    if when.tzinfo is None or not key:
        return None
    return when, key


def parse_uuid_cursor(raw: str | None) -> tuple[datetime, uuid.UUID] | None:
    parsed = parse_cursor(raw)
    if parsed is None:
        return None
    try:
        return parsed[0], uuid.UUID(parsed[1])
    except ValueError:
        return None
