"""Choosing a call's logic: the routed dialplan, or the built-in handler when asked (or as the fallback)."""

from __future__ import annotations

from pathlib import Path

from voicebot.call.dialplan_logic import DialplanLogic
from voicebot.call.handler import BuiltinHandler
from voicebot.call.params import CallWorkerParams
from voicebot.dialplan.plan import parse
from voicebot.dialplan.versions import VersionStore
from voicebot.dialplan.yamlsafe import YamlError
from voicebot.logs import get_logger

log = get_logger(__name__)
CallLogic = DialplanLogic | BuiltinHandler


def make_logic(
    params: CallWorkerParams, dialplan: str, call_id: str = "", caller: str = "", called: str = ""
) -> CallLogic:
    if params.call_logic == "builtin" or not dialplan:
        return BuiltinHandler(params)
    try:
        plan = parse(Path(dialplan).read_bytes(), dialplan)
        published = (
            VersionStore(params.dialplan_store).resolve(plan.id, call_id) if params.dialplan_store else None
        )
        if published is not None:
            # The store's live version (or the canary, for its share of calls) wins over the file.
            plan = parse(published.read_bytes(), str(published))
    except (OSError, YamlError) as exc:
        # A broken file must not leave callers in silence: serve them with the built-in handler
        # and say so loudly (`voicebot dialplan check` finds the problem before this happens).
        log.error("dialplan.unusable", dialplan=dialplan, error=str(exc)[:500])
        return BuiltinHandler(params)
    log.info("dialplan.loaded", dialplan=plan.id, version=plan.version, hash=plan.content_hash)
    return DialplanLogic(plan, caller=caller, called=called, call_id=call_id)
