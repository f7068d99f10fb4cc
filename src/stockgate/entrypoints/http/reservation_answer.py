"""Taking a reservation over HTTP, independent of the framework: the fast path's answer."""

from __future__ import annotations

import re
from dataclasses import dataclass

import msgspec

from stockgate.domain.errors import InvalidInput, StockgateError, Unauthorized
from stockgate.domain.reservation import ReserveRequest
from stockgate.entrypoints.http.problems import PROBLEM, problem_body, status_of
from stockgate.entrypoints.http.schemas import ReservationIn, ReservationOut, decode_body
from stockgate.entrypoints.http.state import ApiState, bearer_customer, limit_holds
from stockgate.services.ports import HOLDS_PER_ADDRESS
from stockgate.services.reserve import reserve

IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")  # visible ASCII, no spaces
JSON = "application/json"


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes
    media_type: str
    retry_after: int | None = None


async def answer_reservation(
    state: ApiState,
    authorization: str | None,
    idempotency_key: str | None,
    body: bytes,
    client: str,
) -> Answer:
    """`client`: the client's address as a limit key (client_address.py)."""
    try:
        limits = state.container.rate_limits
        try:
            customer_id = bearer_customer(authorization, state)
        except Unauthorized:
            await limits.hit(HOLDS_PER_ADDRESS, client)  # bad tokens count for the address
            raise
        await limit_holds(state, client, customer_id)
        if idempotency_key is not None and not IDEMPOTENCY_KEY.match(idempotency_key):
            raise InvalidInput("Idempotency-Key must be 1-200 visible ASCII characters")
        data = decode_body(body, ReservationIn)
        reservation = await reserve(
            ReserveRequest(customer_id, data.lines(), idempotency_key),
            state.container.reserve_deps,
        )
    except StockgateError as exc:
        state.refused(exc.code).inc()
        return problem_answer(exc)
    state.taken.inc()
    return Answer(201, msgspec.json.encode(ReservationOut.of(reservation)), JSON)


def problem_answer(exc: StockgateError) -> Answer:
    status = status_of(exc)
    body = problem_body(status, exc.code, exc.title, exc.detail, **exc.facts)
    retry_after = exc.facts.get("retry_after")
    return Answer(status, msgspec.json.encode(body), PROBLEM, retry_after)
