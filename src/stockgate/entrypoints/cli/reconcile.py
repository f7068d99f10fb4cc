"""`stockgate reconcile`: print the per-product comparison; exit 1 when drift remains."""

from __future__ import annotations

import json

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from stockgate.bootstrap import Container
from stockgate.config import Settings
from stockgate.entrypoints.cli.catalog import with_container
from stockgate.services.reconcile import ProductReport, ReconcileReport, reconcile


async def reconcile_command(settings: Settings, *, fix: bool, as_json: bool) -> int:
    async def work(c: Container) -> tuple[ReconcileReport, ReconcileReport | None]:
        async def run(fix: bool) -> ReconcileReport:
            return await reconcile(
                uow_factory=c.uow_factory,
                gate=c.gate,
                clock=c.clock,
                grace_seconds=settings.reconcile_grace_seconds,
                fix=fix,
                stock_changes=c.stock_changes,
            )

        found = await run(fix)
        after = None
        if fix:  # look again: only drift that survived the repair counts
            after = await run(False)
        return found, after

    found, after = await with_container(settings, work)
    remaining = after if after is not None else found
    if as_json:
        print(json.dumps(_as_json(found, remaining)))
    else:
        _print(found, remaining)
    return 1 if remaining.drift_found else 0


def _as_json(found: ReconcileReport, remaining: ReconcileReport) -> dict[str, object]:
    return {
        "fixed": found.fixed,
        "drift_found": found.drift_found,
        "drift_remaining": remaining.drift_found,
        "leaked": remaining.leaked,
        "oversold": remaining.oversold,
        "products": [_product_json(p) for p in found.products],
    }


def _product_json(p: ProductReport) -> dict[str, object]:
    if p.error:  # nothing could be read: no figures rather than made-up ones
        return {"product_id": p.product_id, "sku": p.sku, "drift": True, "error": p.error}
    return {
        "product_id": p.product_id,
        "sku": p.sku,
        "stock": p.stock,
        "sold": p.sold,
        "held": p.held,
        "expected_available": p.expected_available,
        "gate_available": p.gate_available,
        "gate_held": p.gate_held,
        "gate_sold": p.gate_sold,
        "orphan_holds": p.orphan_holds,
        "missing_holds": p.missing_holds,
        "missing_sales": p.missing_sales,
        "stale_sales": p.stale_sales,
        "ledger_ok": p.ledger_ok,
        "leaked": p.leaked,
        "oversold": p.oversold,
        "drift": p.drift,
        "fixes": p.fixes,
        "error": None,
    }


def _print(found: ReconcileReport, remaining: ReconcileReport) -> None:
    console = Console()
    table = Table(
        "id",
        "sku",
        "stock",
        "sold",
        "held",
        "gate avail",
        "gate held",
        "gate sold",
        "ledger",
        "leaked",
        "oversold",
        "fixes",
        title="Redis vs PostgreSQL",
    )
    for p in found.products:
        table.add_row(
            str(p.product_id),
            p.sku,
            str(p.stock),
            str(p.sold),
            str(p.held),
            "-" if p.gate_available is None else str(p.gate_available),
            str(p.gate_held),
            str(p.gate_sold),
            "ok" if p.ledger_ok else "MISMATCH",
            str(p.leaked),
            str(p.oversold),
            f"[red]{escape(p.error)}[/]" if p.error else "; ".join(p.fixes) or "-",
        )
    console.print(table)
    if remaining.drift_found:
        console.print(f"[red]drift remains in {remaining.drift_found} product(s)[/]")
    else:
        console.print("[green]no drift[/]")
