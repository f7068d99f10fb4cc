"""`stockgate orders list|show|retry|cancel`: what the admin dashboard does, for operators at a
terminal. Thin: parse, call a service, print (a table, or JSON with --json)."""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from stockgate.domain.errors import NotificationFailed
from stockgate.domain.order import Order, OrderStatus
from stockgate.entrypoints.cli.console import fail, out, run, settings

if TYPE_CHECKING:  # the services and stores are imported by the command that runs, not --help
    from stockgate.bootstrap import Container
    from stockgate.services.order_admin import OrderDetails

CANCELED_BY_OPERATOR = "canceled by an operator"

orders_app = typer.Typer(
    help="Look at orders; retry a failed fulfillment; cancel a paid order with a refund.",
    no_args_is_help=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def parse_order_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value.strip())
    except ValueError:
        fail(f"ORDER_ID must be an order id (a UUID), got {value!r}")


def order_dict(order: Order) -> dict[str, Any]:
    return {
        "id": str(order.id),
        "status": order.status.value,
        "reservation_id": str(order.reservation_id),
        "customer_id": str(order.customer_id),
        "amount_cents": order.amount_cents,
        "currency": order.currency,
        "items": [
            {
                "product_id": li.product_id,
                "quantity": li.quantity,
                "unit_price_cents": li.unit_price_cents,
            }
            for li in order.lines
        ],
        "payment_intent_id": order.payment_intent_id,
        "flag": order.flag.value if order.flag else None,
        "failure_reason": order.failure_reason,
        "fulfillment_attempts": order.fulfillment_attempts,
        "created_at": order.created_at.isoformat(),
        "paid_at": order.paid_at.isoformat() if order.paid_at else None,
        "fulfilled_at": order.fulfilled_at.isoformat() if order.fulfilled_at else None,
    }


def details_dict(details: OrderDetails) -> dict[str, Any]:
    return {
        **order_dict(details.order),
        "history": [
            {"at": e.at.isoformat(), "kind": e.kind, "detail": dict(e.detail)}
            for e in details.history
        ],
    }


def print_orders(orders: list[Order], as_json: bool) -> None:
    if as_json:
        print(json.dumps([order_dict(o) for o in orders]))
        return
    table = Table("id", "status", "amount", "attempts", "paid at", "reason")
    for o in orders:
        table.add_row(
            str(o.id),
            o.status.value + (f" ({o.flag.value})" if o.flag else ""),
            f"{o.amount_cents / 100:.2f} {o.currency.upper()}",
            str(o.fulfillment_attempts),
            o.paid_at.isoformat(timespec="seconds") if o.paid_at else "-",
            o.failure_reason or "",
        )
    out.print(table)


def print_order(order: Order, as_json: bool) -> None:
    if as_json:
        print(json.dumps(order_dict(order)))
    else:
        reason = f" ({order.failure_reason})" if order.failure_reason else ""
        out.print(f"order {order.id}: {order.status.value}{reason}")


@orders_app.command("list")
def orders_list(
    status: Annotated[
        list[OrderStatus] | None,
        typer.Option(help="Only orders with this status (repeatable); default: all."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many.")] = 100,
    as_json: JsonOption = False,
) -> None:
    """List orders, oldest first (e.g. --status fulfillment_failed)."""
    from stockgate.entrypoints.cli.catalog import with_container
    from stockgate.services.order_admin import list_orders

    async def work(c: Container) -> list[Order]:
        return await list_orders(c.uow_factory, status or [], limit=limit)

    print_orders(run(lambda: with_container(settings(), work)), as_json)


@orders_app.command("show")
def orders_show(
    order_id: Annotated[str, typer.Argument(help="The order's id.")], as_json: JsonOption = False
) -> None:
    """Show one order with its history (payments, attempts, notifications, refunds)."""
    from stockgate.entrypoints.cli.catalog import with_container
    from stockgate.services.order_admin import order_details

    oid = parse_order_id(order_id)

    async def work(c: Container) -> OrderDetails:
        return await order_details(c.uow_factory, oid)

    details = run(lambda: with_container(settings(), work))
    if as_json:
        print(json.dumps(details_dict(details)))
        return
    print_order(details.order, False)
    table = Table("at", "event", "detail")
    for e in details.history:
        table.add_row(e.at.isoformat(timespec="seconds"), e.kind, json.dumps(dict(e.detail)))
    out.print(table)


@orders_app.command("retry")
def orders_retry(
    order_id: Annotated[str, typer.Argument(help="The order's id.")], as_json: JsonOption = False
) -> None:
    """Try to fulfill a failed order now (exit 1 if it fails again; safe to repeat)."""
    from stockgate.entrypoints.cli.catalog import with_container
    from stockgate.services.fulfill import retry_fulfillment

    oid = parse_order_id(order_id)

    async def work(c: Container) -> Order | str:
        try:
            return await retry_fulfillment(oid, c.fulfill_deps)
        except NotificationFailed as exc:
            return exc.detail

    done = run(lambda: with_container(settings(), work))
    if isinstance(done, str):
        fail(f"order {oid} is still not fulfilled: {done}", 1)
    print_order(done, as_json)


@orders_app.command("cancel")
def orders_cancel(
    order_id: Annotated[str, typer.Argument(help="The order's id.")],
    reason: Annotated[str, typer.Option(help="Why (kept in the order's history).")] = (
        CANCELED_BY_OPERATOR
    ),
    as_json: JsonOption = False,
) -> None:
    """Cancel a paid order: refund it in full and put unshipped stock back (safe to repeat)."""
    from stockgate.entrypoints.cli.catalog import with_container
    from stockgate.services.cancel import cancel_with_refund

    oid = parse_order_id(order_id)

    async def work(c: Container) -> Order:
        return await cancel_with_refund(oid, c.cancel_deps, reason=reason)

    print_order(run(lambda: with_container(settings(), work)), as_json)
