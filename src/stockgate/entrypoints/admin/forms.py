"""Reading the dashboard's forms: each field parsed with a message a person can act on."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

MAX_FIELD = 1024


@dataclass
class Form:
    """A submitted form's values and what is wrong with them, field by field."""

    values: dict[str, str]
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, data: Any) -> Form:
        values = {}
        for name in data:
            value = data.get(name)
            if isinstance(value, str):
                values[name] = value[:MAX_FIELD].strip()
        return cls(values)

    def text(self, name: str, label: str, *, required: bool = True) -> str:
        value = self.values.get(name, "")
        if required and not value:
            self.errors[name] = f"{label} is required."
        return value

    def integer(
        self, name: str, label: str, *, minimum: int, maximum: int, required: bool = True
    ) -> int | None:
        raw = self.values.get(name, "")
        if not raw:
            if required:
                self.errors[name] = f"{label} is required."
            return None
        try:
            value = int(raw)
        except ValueError:
            self.errors[name] = f"{label} must be a whole number."
            return None
        if not minimum <= value <= maximum:
            self.errors[name] = f"{label} must be between {minimum} and {maximum}."
            return None
        return value

    @property
    def ok(self) -> bool:
        return not self.errors


def parse_uuid(raw: str | None) -> uuid.UUID | None:
    if not raw:
        return None
    try:
        return uuid.UUID(raw.strip())
    except ValueError:
        return None
