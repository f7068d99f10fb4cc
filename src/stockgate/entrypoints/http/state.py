"""What the HTTP handlers share: the container and per-node helpers, kept on app.state."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from litestar import Request

from stockgate.adapters import metrics
from stockgate.bootstrap import Container
from stockgate.domain.errors import Unauthorized
from stockgate.entrypoints.http.client_address import ClientAddresses
from stockgate.services.ports import HOLDS_PER_ADDRESS, HOLDS_PER_CUSTOMER


@dataclass(slots=True)
class ApiState:
    container: Container
    addresses: ClientAddresses  # who the client is (trusted proxies' X-Forwarded-For)
    taken: Any = metrics.HOLDS_TAKEN
    _refused: dict[str, Any] = field(default_factory=dict)

    def refused(self, code: str) -> Any:
        """The refusal counter for one reason (label lookups cached off the hot path)."""
        counter = self._refused.get(code)
        if counter is None:
            counter = self._refused[code] = metrics.HOLDS_REFUSED.labels(code)
        return counter


def api(request: Request[Any, Any, Any]) -> ApiState:
    state: ApiState = request.app.state.api
    return state


def customer_of(request: Request[Any, Any, Any], state: ApiState) -> uuid.UUID:
    return bearer_customer(request.headers.get("authorization"), state)


def bearer_customer(header: str | None, state: ApiState) -> uuid.UUID:
    """The customer named by the signed bearer token (identity never comes from a plain header)."""
    if not header:
        raise Unauthorized("send Authorization: Bearer <token> (POST /api/v1/customers)")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("the Authorization header must be: Bearer <token>")
    return state.container.tokens.verify(token.strip())


def client_address(request: Request[Any, Any, Any], state: ApiState) -> str:
    """The client's address as a limit key (see client_address.py)."""
    peer = request.client.host if request.client else None
    return state.addresses.of(peer, request.headers.getall("x-forwarded-for", []))


async def limit_holds(state: ApiState, client: str, customer_id: uuid.UUID) -> None:
    """Count a request that may take stock, per client address and per customer (429 beyond)."""
    await state.container.rate_limits.hit_all(
        (HOLDS_PER_ADDRESS, client), (HOLDS_PER_CUSTOMER, customer_id.hex)
    )
