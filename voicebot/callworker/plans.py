"""Choosing a call's plan: the routed dialplan (its published version), or the built-in plan when the
settings ask for it or as the fallback for a dialplan file that was never usable."""

from __future__ import annotations

import hashlib
from pathlib import Path

from voicebot.callworker.params import CallWorkerParams
from voicebot.dialplan.plan import Plan, parse
from voicebot.dialplan.versions import PlanFile, VersionError, VersionStore
from voicebot.dialplan.yamlsafe import YamlError
from voicebot.engine.builtin import builtin_plan
from voicebot.logs import get_logger

log = get_logger(__name__)


def builtin(params: CallWorkerParams) -> Plan:
    """The settings' built-in plan (greeting, transfer digits, speech keywords)."""
    return builtin_plan(
        params.greeting, params.transfer_digits, params.speech_keywords, params.hangup_digit, params.barge_in
    )


def plan_for_call(params: CallWorkerParams, dialplan: str, call_id: str = "") -> Plan:
    """The plan this call runs: a published version wins over the file (canary by call id)."""
    if params.call_logic == "builtin" or not dialplan:
        return builtin(params)
    path = Path(dialplan)
    keep = None
    if params.dialplan_store is not None:
        key = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
        keep = params.dialplan_store / "_last_good" / f"{path.stem}-{key}"
    # Queue names and tool bases are enforced where they are used (UA worker, tool executor).
    source = PlanFile(path, keep=keep)
    problems = source.reload()
    try:
        plan = source.plan
        if problems:
            # The file was edited into a broken state: callers keep getting the last good version.
            log.error(
                "dialplan.broken_kept_last_good",
                dialplan=dialplan,
                version=plan.version,
                errors="; ".join(map(str, problems[:5]))[:500],
            )
        published = (
            VersionStore(params.dialplan_store).resolve(plan.id, call_id) if params.dialplan_store else None
        )
        if published is not None:
            # The store's live version (or the canary, for its share of calls) wins over the file.
            plan = parse(published.read_bytes(), str(published))
    except (OSError, YamlError, VersionError) as exc:
        # A file that was never good must not leave callers in silence: serve them with the
        # built-in plan and say so loudly (`voicebot dialplan check` finds it before this).
        log.error("dialplan.unusable", dialplan=dialplan, error=str(exc)[:500])
        return builtin(params)
    log.info("dialplan.loaded", dialplan=plan.id, version=plan.version, hash=plan.content_hash)
    return plan
