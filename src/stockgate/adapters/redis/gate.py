"""The stock gate in Redis (implements services.ports.StockGate)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from stockgate.adapters.redis.keys import Keys
from stockgate.adapters.redis.scripts import Arg, ScriptBatcher, Scripts, redis_error
from stockgate.adapters.redis.sold_out import SoldOutCache
from stockgate.domain.errors import StoreUnavailable
from stockgate.domain.reservation import Reservation
from stockgate.services.ports import (
    ConvertMode,
    ConvertStatus,
    GateHold,
    GateState,
    ProductTotals,
    TakeResult,
    TakeStatus,
)

IDEMPOTENCY_TTL_SECONDS = 24 * 3600


class RedisStockGate:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        *,
        sold_out_ttl: float,
        on_batch: Callable[[int], None] = lambda size: None,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._scripts = Scripts.read()
        self._batcher = ScriptBatcher(redis, on_batch=on_batch)
        self._sold_out = SoldOutCache(sold_out_ttl)
        self._follower: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Follow back-in-stock messages (API nodes; workers do not need the cache)."""
        self._follower = asyncio.get_running_loop().create_task(
            self._sold_out.follow(self._redis, self._keys.restocked_channel)
        )

    async def stop(self) -> None:
        """Stop following, and finish every gate call already made (a give-back included)."""
        if self._follower is not None:
            self._follower.cancel()
            await asyncio.gather(self._follower, return_exceptions=True)
        await self._batcher.drain()

    def known_sold_out(self, product_id: int) -> bool:
        return product_id in self._sold_out

    async def take(
        self, reservation: Reservation, idempotency_key: str | None, fingerprint: str
    ) -> TakeResult:
        keys = [self._keys.idempotency(reservation.customer_id, idempotency_key)]
        args: list[Arg] = [
            reservation.id.hex,
            reservation.customer_id.hex,
            fingerprint,
            IDEMPOTENCY_TTL_SECONDS if idempotency_key else 0,
            int(time.time() * 1000),
            idempotency_key or "",
        ]
        for line in reservation.lines:
            keys.extend(self._keys.product(line.product_id))
            args.append(line.quantity)
        reply = await self._batcher.run(self._scripts.take, keys, args)
        return self._take_result(reservation, reply)

    def _take_result(self, reservation: Reservation, reply: list[Any]) -> TakeResult:
        code = int(reply[0])
        if code == 1:
            return TakeResult(TakeStatus.TAKEN)
        if code == 2:
            original, _, fingerprint = _text(reply[1]).partition(" ")
            return TakeResult(
                TakeStatus.DUPLICATE,
                reservation_id=uuid.UUID(hex=original),
                fingerprint=fingerprint,
            )
        product_id = reservation.lines[int(reply[1]) - 1].product_id
        if code == 0:
            available = int(reply[2])
            if available <= 0:
                self._sold_out.remember(product_id)
            return TakeResult(TakeStatus.SOLD_OUT, product_id=product_id, available=available)
        if code == -1:
            return TakeResult(
                TakeStatus.LIMIT_EXCEEDED,
                product_id=product_id,
                limit=int(reply[2]),
                already=int(reply[3]),
            )
        return TakeResult(TakeStatus.NOT_LOADED, product_id=product_id)

    async def give_back(self, reservation: Reservation, idempotency_key: str | None = None) -> int:
        keys = [self._keys.idempotency(reservation.customer_id, idempotency_key)]
        args: list[Arg] = [
            reservation.id.hex,
            "1" if idempotency_key else "0",
            self._keys.restocked_channel,
        ]
        for line in reservation.lines:
            keys.extend(self._keys.product(line.product_id))
            args.append(line.product_id)
            self._sold_out.forget(line.product_id)
        return int(await self._batcher.run(self._scripts.give_back, keys, args))

    async def available(self, product_ids: Sequence[int]) -> dict[int, int | None]:
        if not product_ids:
            return {}
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for product_id in product_ids:
                    pipe.hget(self._keys.stock(product_id), "available")
                values = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise StoreUnavailable("redis") from exc
        return {
            pid: None if value is None else int(value)
            for pid, value in zip(product_ids, values, strict=True)
        }

    async def add_stock(self, product_id: int, quantity: int, version: int) -> None:
        self._sold_out.forget(product_id)
        await self._batcher.run(
            self._scripts.add_stock,
            [self._keys.stock(product_id)],
            [quantity, version, self._keys.restocked_channel, product_id],
        )

    async def load(self, totals: ProductTotals) -> bool:
        product = totals.product
        args: list[Arg] = [
            totals.levels.available,
            product.limit_per_customer or 0,
            totals.stock_version,
        ]
        holds = [
            (reservation, line.quantity)
            for reservation in totals.active
            for line in reservation.lines
            if line.product_id == product.id
        ]
        args.append(len(holds))
        for reservation, quantity in holds:
            taken_ms = int(reservation.created_at.timestamp() * 1000)
            args += [reservation.id.hex, reservation.customer_id.hex, quantity, taken_ms]
        args.append(len(totals.sales))
        for reservation_id, units in totals.sales.items():
            args += [reservation_id.hex, units]
        for customer_id, units in totals.sold_by_customer.items():
            args += [customer_id.hex, units]
        self._sold_out.forget(product.id)
        loaded = await self._batcher.run(
            self._scripts.load, self._keys.product_with_sales(product.id), args
        )
        return bool(loaded)

    async def state(self, product_id: int) -> GateState:
        stock_key, holds_key, _, sales_key = self._keys.product_with_sales(product_id)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hgetall(stock_key)
                pipe.hgetall(holds_key)
                pipe.hgetall(sales_key)
                stock, records, sales = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise redis_error(exc) from exc
        holds = {}
        for reservation_hex, record in records.items():
            customer_hex, quantity, taken_ms, *key = _text(record).split(" ", 3)
            reservation_id = uuid.UUID(hex=_text(reservation_hex))
            holds[reservation_id] = GateHold(
                reservation_id,
                uuid.UUID(hex=customer_hex),
                int(quantity),
                int(taken_ms),
                key[0] if key else None,
            )
        available = stock.get(b"available")
        return GateState(
            product_id,
            None if available is None else int(available),
            int(stock.get(b"version", 0)),
            holds,
            {uuid.UUID(hex=_text(rid)): int(units) for rid, units in sales.items()},
            int(stock.get(b"sold", 0)),
        )

    async def restore(self, product_id: int, hold: GateHold) -> bool:
        args: list[Arg] = [
            hold.reservation_id.hex,
            hold.customer_id.hex,
            hold.quantity,
            hold.taken_at_ms,
        ]
        return bool(
            await self._batcher.run(self._scripts.restore, self._keys.product(product_id), args)
        )

    async def set_total(self, totals: ProductTotals) -> int | None:
        product = totals.product
        args: list[Arg] = [
            totals.product.stock,
            totals.stock_version,
            product.limit_per_customer or 0,
            self._keys.restocked_channel,
            product.id,
        ]
        for customer_id, units in totals.sold_by_customer.items():
            args += [customer_id.hex, units]
        self._sold_out.forget(product.id)
        reply = await self._batcher.run(
            self._scripts.set_total, self._keys.product(product.id), args
        )
        return int(reply[1]) if int(reply[0]) == 1 else None

    async def convert(self, reservation: Reservation, mode: ConvertMode) -> ConvertStatus:
        keys: list[str] = []
        args: list[Arg] = [
            reservation.id.hex,
            mode.value,
            reservation.customer_id.hex,
            self._keys.restocked_channel,
        ]
        for line in reservation.lines:
            keys.extend(self._keys.product_with_sales(line.product_id))
            args.append(line.quantity)
        reply = int(await self._batcher.run(self._scripts.convert, keys, args))
        return _CONVERTED[reply]

    async def return_sold(self, reservation: Reservation) -> int:
        keys: list[str] = []
        args: list[Arg] = [
            reservation.id.hex,
            reservation.customer_id.hex,
            self._keys.restocked_channel,
        ]
        for line in reservation.lines:
            keys.extend(self._keys.product_with_sales(line.product_id))
            args.append(line.product_id)
            self._sold_out.forget(line.product_id)
        return int(await self._batcher.run(self._scripts.return_sold, keys, args))


_CONVERTED = {
    1: ConvertStatus.CONVERTED,
    0: ConvertStatus.ALREADY,
    -1: ConvertStatus.REFUSED,
    -2: ConvertStatus.NOT_LOADED,
}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
