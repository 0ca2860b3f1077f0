"""A call summary for the record and the CRM, written by the configured LLM."""

from __future__ import annotations

from voicebot.db.models import Call
from voicebot.llm.client import LlmConfig, sentences

SYSTEM = (
    "You write short notes for a contact centre's CRM. Summarise the phone call below in at most two "
    "sentences: what the caller wanted and how the call ended. Do not invent details."
)


def transcript(call: Call) -> str:
    lines = []
    for e in call.events:
        if e.kind == "transcript":
            lines.append(f"caller: {e.data.get('text', '')}")
        elif e.kind == "dtmf":
            lines.append(f"caller pressed: {e.data.get('digit', e.data.get('digits', ''))}")
        elif e.kind == "transfer_result":
            lines.append(f"transfer to {e.data.get('queue')}: {'done' if e.data.get('ok') else 'failed'}")
    lines.append(f"call ended: {call.disposition or 'ended'}")
    return "\n".join(lines)


async def summarise(llm: LlmConfig, call: Call) -> str:
    parts = [s async for s in sentences(llm, SYSTEM, [("user", transcript(call))], phone=False)]
    return " ".join(parts).strip()
