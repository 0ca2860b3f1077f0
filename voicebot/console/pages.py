"""What each console page shows, and the admin's actions on dialplan versions.

Reads go through the same queries as `voicebot calls` and `voicebot report` (voicebot/reports);
what a caller said, and the caller's number, are shown only to roles that may see transcripts. A
version change goes through the same store operations as `voicebot dialplan` (through the database
when the versions are shared, so every node follows within seconds) and is written to the audit log,
refused attempts included."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from markupsafe import Markup

from voicebot.console import auth, live, plots, store
from voicebot.console.app import CTX, client, render
from voicebot.dialplan import shared
from voicebot.dialplan.versions import VersionError, VersionStore
from voicebot.logs import masked_number
from voicebot.records.classify import CLASSES, OUTCOMES, classify
from voicebot.reports import query, summary
from voicebot.reports.calls import seconds_of
from voicebot.reports.costs import call_cost
from voicebot.supervisor.health import readiness

CALL_ID = re.compile(r"^[0-9a-f]{6,32}$")
LIST_LIMIT = 100


def _since(text: str, default: str | None) -> dt.timedelta | None:
    text = (text or default or "").strip()
    if not text:
        return None
    try:
        return query.span(text)  # as `voicebot calls list --since` reads it
    except ValueError as exc:
        raise web.HTTPBadRequest(text=f"since: {exc}") from None


def _may(request: web.Request, permission: str) -> bool:
    who = request["who"]
    return who is not None and auth.can(who.role, permission)


async def live_page(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CTX]
    calls = live.rows(live.read(ctx.run_dir), time.time(), _may(request, "transcripts"))
    capacity: dict[str, Any] = {"slots": ctx.slots, "up": len(calls)}
    if ctx.health is not None:
        _, body = readiness(ctx.health())
        capacity |= body
    return render(request, "live.html", calls=calls, capacity=capacity, refresh=3)


async def calls_page(request: web.Request) -> web.StreamResponse:
    ctx, q = request.app[CTX], request.query
    outcome = q.get("outcome") or None
    failure_class = q.get("class") or None
    if outcome not in (None, *OUTCOMES) or failure_class not in (None, *CLASSES):
        raise web.HTTPBadRequest(text="unknown outcome or failure class")
    async with ctx.db() as session, session.begin():
        found = await query.calls(
            session,
            since=_since(q.get("since", ""), None),
            dialplan=(q.get("dialplan") or None),
            outcome=outcome,
            failure_class=failure_class,
            limit=LIST_LIMIT,
        )
    rows = [query.call_doc(c) | {"seconds": seconds_of(c)} for c in found]
    if not _may(request, "transcripts"):
        rows = [r | {"caller": masked_number(r["caller"] or "")} for r in rows]
    return render(
        request,
        "calls.html",
        calls=rows,
        filters=dict(q),
        outcomes=OUTCOMES,
        classes=CLASSES,
        limit=LIST_LIMIT,
    )


async def call_page(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CTX]
    call_id = request.match_info["call_id"]
    if not CALL_ID.match(call_id):
        raise web.HTTPNotFound(text="not a call id")
    try:
        async with ctx.db() as session, session.begin():
            call, events = await query.call_with_events(session, call_id)
    except query.CallNotFound as exc:
        return render(request, "error.html", 404, message=str(exc))
    transcripts = _may(request, "transcripts")
    plain = [{"kind": e.kind, **(e.data or {})} for e in events]
    verdict = classify(plain)
    doc = query.call_doc(call) | {"seconds": seconds_of(call)}
    if not transcripts:
        doc["caller"] = masked_number(doc["caller"] or "")
    turns = []
    for e in events:
        if e.kind != "turn":
            continue
        data = dict(e.data or {})
        if "greeting_ms" in data:
            turns.append(
                {"title": "greeting", "note": f"first audio {data.get('greeting_ms')} ms after answer"}
            )
        else:
            title = f"turn {data.get('turn')} (decided by {data.get('decided_by') or '-'})"
            turns.append({"title": title, "svg": Markup(plots.waterfall(data))})
    return render(
        request,
        "call.html",
        call=doc,
        verdict=verdict,
        events=[query.event_doc(e, transcripts, call.started_at) for e in events],
        turns=turns,
        transcripts=transcripts,
        cost=call_cost(call.trunk, seconds_of(call), plain, ctx.settings.costs),
        currency=ctx.settings.costs.currency,
    )


def _routed_files(request: web.Request) -> list[Path]:
    """The dialplan files the routes name: the only files the console may publish."""
    files = [r.dialplan.resolve() for r in request.app[CTX].settings.routes]
    return list(dict.fromkeys(files))


async def versions_page(request: web.Request, message: str = "", status: int = 200) -> web.Response:
    ctx = request.app[CTX]
    plans = [{"id": plan_id, "state": ctx.versions.state(plan_id)} for plan_id in ctx.versions.plans()]
    return render(
        request,
        "versions.html",
        status,
        plans=plans,
        files=[str(f) for f in _routed_files(request)],
        message=message,
        shared=bool(ctx.shared_url),
    )


async def _change(
    request: web.Request, action: str, target: str, op: Callable[[VersionStore], Any]
) -> web.Response:
    """Run a version change if the user may; audit it either way."""
    ctx = request.app[CTX]
    who, source = request["who"], client(request)
    if not _may(request, "versions"):
        async with ctx.db() as session, session.begin():
            await store.audit(
                session, who.user, action, target, ok=False, source=source, detail={"why": f"role {who.role}"}
            )
        return render(
            request, "error.html", 403, message=f"Your role ({who.role}) may not {action} dialplan versions."
        )
    plan_of: Callable[[Any], str] = (
        (lambda result: str(result[0].id)) if action == "publish" else (lambda _: target)
    )
    try:
        if ctx.shared_url:
            result = await shared.apply(ctx.shared_url, ctx.versions, op, plan_of)
        else:
            result = op(ctx.versions)
    except (VersionError, OSError, ConnectionError) as exc:
        async with ctx.db() as session, session.begin():
            await store.audit(
                session, who.user, action, target, ok=False, source=source, detail={"why": str(exc)[:500]}
            )
        return await versions_page(request, f"Not done: {exc}", 409)
    plan_id = plan_of(result)
    st = ctx.versions.state(plan_id)
    detail = {"live": st.live, "canary": st.canary, "canary_percent": st.canary_percent}
    async with ctx.db() as session, session.begin():
        await store.audit(
            session,
            who.user,
            action,
            plan_id if action == "publish" else target,
            source=source,
            detail=detail,
        )
    raise web.HTTPSeeOther("/versions")


async def version_action(request: web.Request) -> web.Response:
    plan_id, action = request.match_info["plan_id"], request.match_info["action"]
    form = await request.post()
    if plan_id not in request.app[CTX].versions.plans():  # only what the versions page lists
        return await versions_page(
            request, f"Not done: no dialplan {plan_id[:80]!r} has been published.", 404
        )
    if action == "promote":
        return await _change(request, action, plan_id, lambda s: s.promote(plan_id))
    if action == "rollback":
        return await _change(request, action, plan_id, lambda s: s.rollback(plan_id))
    if action == "canary":
        try:
            percent = int(str(form.get("percent", "")))
        except ValueError:
            return await versions_page(
                request, "Not done: the canary share is a whole percentage (1-100).", 400
            )
        return await _change(request, "canary", plan_id, lambda s: s.set_canary_share(plan_id, percent))
    raise web.HTTPNotFound(text="no such action")


async def publish(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    form = await request.post()
    files = _routed_files(request)
    chosen = str(form.get("file", ""))
    if chosen not in [str(f) for f in files]:  # never a path the browser made up
        return await versions_page(request, "Not done: publish one of the routed dialplan files.", 400)
    raw_percent = str(form.get("canary", "")).strip()
    try:
        percent = int(raw_percent) if raw_percent else None
    except ValueError:
        return await versions_page(request, "Not done: the canary share is a whole percentage (1-100).", 400)
    queues, bases = list(ctx.settings.queues), list(ctx.settings.tools_allow)
    path = Path(chosen)
    return await _change(request, "publish", path.name, lambda s: s.publish(path, percent, queues, bases))


async def report_page(request: web.Request) -> web.StreamResponse:
    ctx, q = request.app[CTX], request.query
    span = _since(q.get("since", ""), "24h")
    assert span is not None
    async with ctx.db() as session, session.begin():
        rows = await query.report_rows(
            session, since=span, dialplan=q.get("dialplan") or None, prices=ctx.settings.costs
        )
    report = summary.summarise(rows)
    parts = []
    for part in [report["total"], *report["by_version"]]:
        parts.append(
            part
            | {
                "title": "all calls"
                if part["dialplan"] == "*"
                else f"{part['dialplan']} version {part['version'] or '?'}",
                "latency_svg": Markup(plots.percentiles(part["stages_ms"])),
                "classes_svg": Markup(plots.counts(list(part["failure_classes"].items()))),
            }
        )
    return render(
        request, "report.html", parts=parts, since=q.get("since", "24h"), currency=ctx.settings.costs.currency
    )


async def audit_page(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CTX]
    if not _may(request, "audit"):
        return render(request, "error.html", 403, message="The audit log is for admins.")
    async with ctx.db() as session:
        entries = await store.audit_entries(session)
    return render(request, "audit.html", entries=entries)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", live_page)
    app.router.add_get("/calls", calls_page)
    app.router.add_get("/calls/{call_id}", call_page)
    app.router.add_get("/versions", versions_page)
    app.router.add_post("/versions/publish", publish)
    app.router.add_post("/versions/{plan_id}/{action}", version_action)
    app.router.add_get("/report", report_page)
    app.router.add_get("/audit", audit_page)
