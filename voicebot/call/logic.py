"""Choosing a call's logic: the routed dialplan, or the built-in handler when asked (or as the fallback)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from voicebot.call.dialplan_logic import DialplanLogic
from voicebot.call.handler import BuiltinHandler
from voicebot.call.params import CallWorkerParams
from voicebot.dialplan.plan import parse
from voicebot.dialplan.versions import PlanFile, VersionError, VersionStore
from voicebot.dialplan.yamlsafe import YamlError
from voicebot.logs import get_logger

log = get_logger(__name__)
CallLogic = DialplanLogic | BuiltinHandler


def make_logic(
    params: CallWorkerParams, dialplan: str, call_id: str = "", caller: str = "", called: str = ""
) -> CallLogic:
    if params.call_logic == "builtin" or not dialplan:
        return BuiltinHandler(params)
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
        # built-in handler and say so loudly (`voicebot dialplan check` finds it before this).
        log.error("dialplan.unusable", dialplan=dialplan, error=str(exc)[:500])
        return BuiltinHandler(params)
    log.info("dialplan.loaded", dialplan=plan.id, version=plan.version, hash=plan.content_hash)
    return DialplanLogic(plan, caller=caller, called=called, call_id=call_id)
