"""Where a product's units are: the one home of the availability rule.

Every unit ever added to a product (its stock) is, at every instant, in exactly one place:
available, held by an active reservation, or sold (paid and not returned). Hence

    available = stock - held - sold

and invariant I1 (no oversell) is `held + sold <= stock`, i.e. `available >= 0`. PostgreSQL's
totals, the ledger, the Redis gate and the reconciler all compute their numbers through
`StockLevels`; the Lua scripts keep `available` as a counter that the same rule fixes
whenever the gate is built or repaired (adapters/redis/load.lua, set_total.lua).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StockLevels:
    stock: int
    held: int = 0
    sold: int = 0

    @property
    def available(self) -> int:
        return self.stock - self.held - self.sold

    @property
    def unsold(self) -> int:
        """Units not sold: what the gate's available + held must add up to."""
        return self.stock - self.sold

    @property
    def oversold(self) -> int:
        """Units held or sold beyond the stock (I1 says 0)."""
        return max(0, -self.available)
