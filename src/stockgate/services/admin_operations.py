"""Operators' maintenance actions from the dashboard, each written to the audit log."""

from __future__ import annotations

from stockgate.domain.errors import NotFound
from stockgate.services.ports import AuditLog, Clock, StockGate, UnitOfWorkFactory
from stockgate.services.reconcile import ReconcileReport, reconcile


async def reconcile_as(
    actor: str,
    *,
    fix: bool,
    uow_factory: UnitOfWorkFactory,
    gate: StockGate,
    clock: Clock,
    grace_seconds: float,
    audit: AuditLog,
) -> ReconcileReport:
    report = await reconcile(
        uow_factory=uow_factory, gate=gate, clock=clock, grace_seconds=grace_seconds, fix=fix
    )
    drift = {
        p.sku: {"leaked": p.leaked, "oversold": p.oversold, "fixes": p.fixes}
        for p in report.products
        if p.drift or p.fixes
    }
    await audit.add(
        actor,
        "reconcile.fix" if fix else "reconcile.run",
        None,
        after={"products": len(report.products), "drift": drift},
    )
    return report


async def replay_webhook(
    actor: str, event_id: str, *, uow_factory: UnitOfWorkFactory, audit: AuditLog
) -> None:
    """Mark a stored event for applying again; the inbox sweeper applies it (I5: applying is
    idempotent, so a replay of an applied event changes nothing that was right)."""
    async with uow_factory() as uow:
        before = await uow.inbox.get(event_id)
        if before is None or not await uow.inbox.reopen(event_id):
            raise NotFound(f"no webhook event {event_id}")
        await uow.commit()
    await audit.add(
        actor,
        "webhook.replay",
        event_id,
        before={"processed_at": str(before.processed_at), "outcome": before.outcome},
    )
