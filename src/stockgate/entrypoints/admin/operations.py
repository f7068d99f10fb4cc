"""Operations: the audit log, reconciliation (run, drift, fix) and the webhook inbox."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post
from litestar.response import Redirect

from stockgate.domain.errors import NotFound
from stockgate.entrypoints.admin.forms import Form
from stockgate.entrypoints.admin.paging import PAGE_SIZE, cursor, parse_cursor
from stockgate.entrypoints.admin.web import render, session_of, state_of
from stockgate.services.admin_operations import reconcile_as, replay_webhook


@get("/audit", include_in_schema=False)
async def audit_page(request: Request[Any, Any, Any]) -> Response[str]:
    raw = request.query_params.get("before") or ""
    before = int(raw) if raw.isdigit() and len(raw) < 19 else None
    entries = await state_of(request).container.audit.recent(limit=PAGE_SIZE + 1, before_id=before)
    more = len(entries) > PAGE_SIZE
    entries = entries[:PAGE_SIZE]
    return render(
        "audit.html",
        session=session_of(request),
        page="audit",
        entries=entries,
        next_before=entries[-1].id if more and entries else None,
    )


@get("/reconcile", include_in_schema=False)
async def reconcile_page(request: Request[Any, Any, Any]) -> Response[str]:
    return render("reconcile.html", session=session_of(request), page="reconcile", report=None)


@post("/reconcile", include_in_schema=False, status_code=200)
async def reconcile_run(request: Request[Any, Any, Any]) -> Response[str]:
    form = Form.of(await request.form())
    fix = form.values.get("fix") == "yes"
    if fix and form.values.get("confirm") != "yes":
        return render(
            "confirm.html",
            session=session_of(request),
            page="reconcile",
            action="/admin/reconcile",
            question="Repair every product's Redis counters and holds from PostgreSQL now?",
            fields={"fix": "yes"},
            back="/admin/reconcile",
        )
    container = state_of(request).container
    report = await reconcile_as(
        session_of(request).username,
        fix=fix,
        uow_factory=container.uow_factory,
        gate=container.gate,
        clock=container.clock,
        grace_seconds=container.settings.reconcile_grace_seconds,
        audit=container.audit,
    )
    return render("reconcile.html", session=session_of(request), page="reconcile", report=report)


@get("/webhooks", include_in_schema=False)
async def webhooks_page(request: Request[Any, Any, Any]) -> Response[str]:
    params = request.query_params
    unprocessed = params.get("unprocessed") == "1"
    rows = await state_of(request).container.admin_views.webhook_events(
        before=parse_cursor(params.get("before")),
        unprocessed_only=unprocessed,
        limit=PAGE_SIZE + 1,
    )
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    return render(
        "webhooks.html",
        session=session_of(request),
        page="webhooks",
        rows=rows,
        unprocessed=unprocessed,
        notice=params.get("notice"),
        next_cursor=cursor(rows[-1].received_at, rows[-1].id) if more and rows else None,
    )


@get("/webhooks/{event_id:str}", include_in_schema=False)
async def webhook_page(request: Request[Any, Any, Any], event_id: str) -> Response[str]:
    event = await state_of(request).container.admin_views.webhook_event(event_id[:255])
    if event is None:
        raise NotFound(f"no webhook event {event_id[:255]}")
    return render("webhook.html", session=session_of(request), page="webhooks", event=event)


@post("/webhooks/{event_id:str}/replay", include_in_schema=False, status_code=303)
async def webhook_replay(request: Request[Any, Any, Any], event_id: str) -> Response[Any]:
    form = Form.of(await request.form())
    event_id = event_id[:255]
    if form.values.get("confirm") != "yes":
        return render(
            "confirm.html",
            200,
            session=session_of(request),
            page="webhooks",
            action=f"/admin/webhooks/{event_id}/replay",
            question=f"Apply webhook event {event_id} again?",
            fields={},
            back=f"/admin/webhooks/{event_id}",
        )
    container = state_of(request).container
    await replay_webhook(
        session_of(request).username,
        event_id,
        uow_factory=container.uow_factory,
        views=container.admin_views,
        queue=container.work_queue,
        audit=container.audit,
    )
    return Redirect(f"/admin/webhooks?notice=Replaying+{event_id}", status_code=303)


OPERATION_ROUTES = [
    audit_page,
    reconcile_page,
    reconcile_run,
    webhooks_page,
    webhook_page,
    webhook_replay,
]
