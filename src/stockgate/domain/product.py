"""Products: what is for sale, and the rules a new product must satisfy."""

from __future__ import annotations

import re
from dataclasses import dataclass

from stockgate.domain.errors import InvalidInput

SKU_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,63}$")
CURRENCY_PATTERN = re.compile(r"^[a-z]{3}$")
# A restock's key: a rerun with the same key adds nothing (visible ASCII, no spaces).
RESTOCK_KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,200}$")
MAX_STOCK = 1_000_000_000
MAX_PRICE_CENTS = 100_000_000_00


@dataclass(frozen=True, slots=True)
class NewProduct:
    sku: str
    name: str
    price_cents: int
    stock: int
    currency: str = "usd"
    limit_per_customer: int | None = None

    def __post_init__(self) -> None:
        if not SKU_PATTERN.match(self.sku):
            raise InvalidInput(
                "SKU must be 1-64 characters: letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        if not self.name.strip() or len(self.name) > 200:
            raise InvalidInput("name must be 1-200 characters")
        if not 0 <= self.price_cents <= MAX_PRICE_CENTS:
            raise InvalidInput(f"price in cents must be between 0 and {MAX_PRICE_CENTS}")
        check_stock_amount(self.stock, "stock")
        if not CURRENCY_PATTERN.match(self.currency):
            raise InvalidInput("currency must be a three-letter ISO code such as usd")
        if self.limit_per_customer is not None and not 1 <= self.limit_per_customer <= MAX_STOCK:
            raise InvalidInput("limit per customer must be a positive integer")


def check_stock_amount(amount: int, what: str, *, minimum: int = 0) -> None:
    if not minimum <= amount <= MAX_STOCK:
        raise InvalidInput(f"{what} must be an integer between {minimum} and {MAX_STOCK}")


def check_restock_key(key: str) -> None:
    if not RESTOCK_KEY_PATTERN.match(key):
        raise InvalidInput("restock key must be 1-200 visible ASCII characters (no spaces)")


@dataclass(frozen=True, slots=True)
class Product:
    id: int
    sku: str
    name: str
    price_cents: int
    currency: str
    stock: int  # every unit ever added; available = stock - sold - held
    limit_per_customer: int | None
