"""Admin users: the operators who may open the admin dashboard."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class AdminUser:
    id: int
    username: str
    created_at: datetime
