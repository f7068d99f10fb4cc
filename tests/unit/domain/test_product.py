"""Rules a new product must satisfy."""

from __future__ import annotations

from typing import Any

import pytest

from stockgate.domain.errors import InvalidInput
from stockgate.domain.product import NewProduct


def new(**changes: Any) -> NewProduct:
    values: dict[str, Any] = {"sku": "TEE-1", "name": "Tee", "price_cents": 100, "stock": 5}
    values.update(changes)
    return NewProduct(**values)


def test_valid_product() -> None:
    assert new(limit_per_customer=2, currency="eur").limit_per_customer == 2


@pytest.mark.parametrize(
    "changes",
    [
        {"sku": ""},
        {"sku": "-starts-with-dash"},
        {"sku": "has space"},
        {"name": "  "},
        {"price_cents": -1},
        {"stock": -1},
        {"stock": 10**10},
        {"currency": "EURO"},
        {"limit_per_customer": 0},
    ],
)
def test_invalid_product_is_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput):
        new(**changes)
