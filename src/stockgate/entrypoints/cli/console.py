"""How a command talks and ends: the consoles, settings, one-line errors and exit codes.

Exit codes: 0 success, 1 drift or failure at run time, 2 bad input (one line, no traceback),
3 a backing store is unavailable. Every command module imports these from here (never from
main.py, which imports the command modules).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import NoReturn, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console

from stockgate.config import Settings, load_settings, weak_secret_key
from stockgate.domain.errors import StockgateError, StoreUnavailable

T = TypeVar("T")

out = Console()
err = Console(stderr=True)


def fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def settings() -> Settings:
    try:
        return load_settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "STOCKGATE_" + "_".join(str(p) for p in first["loc"]).upper()
        fail(f"{name}: {first['msg']}")


def production_settings() -> Settings:
    """Settings for a process that serves buyers, with its stores found before it starts.

    A secret key anyone could know is refused (exit 2); stores that cannot be found exit 3.
    The URLs found (the embedded servers' when none is configured) go on in the settings.
    """
    from stockgate.adapters.embedded.stores import resolve

    loaded = settings()
    weak = weak_secret_key(loaded.secret_key.get_secret_value())
    if weak is not None:
        fail(weak)
    try:
        urls = resolve(loaded)
    except StoreUnavailable as exc:
        fail(exc.detail, 3)
    return loaded.model_copy(
        update={"database_url": urls.database_url, "redis_url": urls.redis_url}
    )


def parse_int(value: str, what: str, *, minimum: int = 0) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        fail(f"{what} must be a whole number, got {value!r}")
    if number < minimum:
        fail(f"{what} must be at least {minimum}, got {number}")
    return number


def run(work: Callable[[], Awaitable[T]], *, on_store_error: str | None = None) -> T:
    """Run async work, mapping domain errors to one-line messages and exit codes.
    `on_store_error`: what to tell the operator when a store failed midway."""
    try:
        return asyncio.run(work())  # type: ignore[arg-type]  # a coroutine function's result
    except StoreUnavailable as exc:
        fail(f"{exc.detail}; {on_store_error}" if on_store_error else exc.detail, 3)
    except StockgateError as exc:
        fail(exc.detail, 2)
