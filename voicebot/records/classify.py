"""Why a call did not reach its end: one failure class per call, derived from its event log (pure).

Rules are tried in the order of ``RULES``; the first that holds names the class. A call none of them
fits is ``completed``. Each rule is a small function over the events, so each can be tested on its
own and read next to its documentation (docs/operations.md, "Failure classes").

The outcome says how the call ended, the class why it went wrong, if it did:

* outcome ``escalated``: a transfer to a queue succeeded; ``completed``: the bot ended the call at the
  end of its plan; ``abandoned``: the caller hung up first; ``failed``: anything else.
* A call can be escalated *and* carry a failure class: a caller handed to a person after three
  answers the bot could not recognise was escalated because of a recognition error.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

# Events are the record's: {"kind": ..., **data}. Kinds used here: step, no_match, transcript,
# asr_unrecognized, asr_failed, barge_in, early_endpoint, tool_result, tool_interrupted, llm_failed,
# transfer_result, hangup_request, call_ended, policy_block, resume_gave_up.
Event = dict[str, Any]

CLASSES = (
    "completed",
    "system_failure",
    "handover_failure",
    "tool_failure",
    "policy_block",
    "recognition_error",
    "unsupported_request",
    "endpointing_error",
    "incorrect_intent",
    "weak_retrieval",
    "user_disconnection",
)
OUTCOMES = ("completed", "escalated", "abandoned", "failed")

# A transcript at or above this confidence was heard well: no match on it is the plan's gap, not the ear's.
CONFIDENT = 0.6
STREAK = 2  # no-matches in a row on one step that make a streak
SAME_WORDS = 0.8  # word overlap (Jaccard) of two caller turns that count as a repeat
BOT_FAILURES = frozenset({"bot_failed", "max_call_duration"})


@dataclass(frozen=True)
class Verdict:
    outcome: str
    failure_class: str
    why: str  # one line for `voicebot calls show`


def _kinds(events: Sequence[Event], *kinds: str) -> list[Event]:
    return [e for e in events if e["kind"] in kinds]


def _transferred(events: Sequence[Event]) -> bool:
    results = _kinds(events, "transfer_result")
    return bool(results) and bool(results[-1].get("ok"))


def _hangups(events: Sequence[Event]) -> list[str]:
    return [str(e.get("reason", "")) for e in _kinds(events, "hangup_request")]


# --- the rules: each returns why it holds, or "" ----------------------------------------------------
def system_failure(events: Sequence[Event]) -> str:
    """The platform ended the call: the bot's plan could not go on, a crashed worker's call could not
    be resumed, the call's node died, or the call hit the maximum duration."""
    if _kinds(events, "resume_gave_up"):
        return "the call could not be resumed after its worker died"
    failed = [r for r in _hangups(events) if r in BOT_FAILURES]
    if failed:
        return f"the bot ended the call: {failed[-1]}"
    ended = _kinds(events, "call_ended")
    if not events or (ended and str(ended[-1].get("reason", "")).startswith("node ")):
        return "the call was lost with its node"
    return ""


def handover_failure(events: Sequence[Event]) -> str:
    """A transfer was tried and the last one did not succeed."""
    results = _kinds(events, "transfer_result")
    if results and not results[-1].get("ok"):
        last = results[-1]
        return (
            f"transfer to {last.get('queue')} failed: {last.get('status')} {last.get('reason', '')}".strip()
        )
    return ""


def tool_failure(events: Sequence[Event]) -> str:
    """A backend the bot relies on failed: an integration call returned an error or was cut off by
    a crash, or the language model did not answer."""
    bad = [e for e in _kinds(events, "tool_result") if not e.get("ok", True)]
    if bad:
        return f"a tool call failed: {str(bad[-1].get('error', ''))[:80]}"
    if _kinds(events, "tool_interrupted"):
        return "a tool call was interrupted by a worker crash"
    if _kinds(events, "llm_failed"):
        return "the language model failed"
    return ""


def policy_block(events: Sequence[Event]) -> str:
    """A policy refused what the call asked for (a tool or a transfer outside policy, a failed step-up
    check); recorded as ``policy_block`` events by guarded tool calls."""
    blocked = _kinds(events, "policy_block")
    return f"blocked by policy: {blocked[-1].get('rule', '')}".strip() if blocked else ""


def _streak(events: Sequence[Event]) -> list[Event]:
    """The longest run of no-matches on one step (with the caller turn that caused each)."""
    best: list[Event] = []
    run: list[Event] = []
    heard: Event | None = None
    for e in events:
        if e["kind"] in ("transcript", "asr_unrecognized", "asr_failed", "dtmf"):
            heard = e
        elif e["kind"] == "no_match":
            if run and run[-1]["step"] != e.get("step"):
                run = []
            run.append({"step": e.get("step"), "heard": heard})
            heard = None
            best = max(best, run, key=len)
        elif e["kind"] == "step":
            run = []
    return best


def _well_heard(item: Event) -> bool:
    heard = item.get("heard")
    if heard is not None and heard["kind"] == "dtmf":
        return True  # a key is received exactly
    return (
        heard is not None
        and heard["kind"] == "transcript"
        and float(heard.get("confidence") or 0.0) >= CONFIDENT
    )


def recognition_error(events: Sequence[Event]) -> str:
    """A streak of no-matches on one step, most of them on turns the recogniser did not hear well (no
    text, a failed decode, or low confidence; keys count as heard well); or two or more failed
    decodes in the call."""
    streak = _streak(events)
    if len(streak) >= STREAK and sum(not _well_heard(i) for i in streak) * 2 > len(streak):
        return f"{len(streak)} answers in a row not recognised at step {streak[-1]['step']}"
    if len(_kinds(events, "asr_failed")) >= STREAK:
        return "the recogniser failed on several turns"
    return ""


def unsupported_request(events: Sequence[Event]) -> str:
    """A streak of no-matches on one step on words heard clearly (or keys): the caller asked for
    something the plan has no answer for."""
    streak = _streak(events)
    if len(streak) >= STREAK:
        return f"{len(streak)} clear answers matched nothing at step {streak[-1]['step']}"
    return ""


def endpointing_error(events: Sequence[Event]) -> str:
    """The bot's turn-taking went wrong: the caller barged in on the same step's prompt twice or more
    (the bot kept talking over them), or answers cut off early went unmatched."""
    step: str | None = None
    counts: dict[str | None, int] = {}
    for e in events:
        if e["kind"] == "step":
            step = e.get("step")
        elif e["kind"] == "barge_in":
            counts[step] = counts.get(step, 0) + 1
    worst = max(counts.items(), key=lambda kv: kv[1], default=(None, 0))
    if worst[1] >= STREAK:
        return f"{worst[1]} barge-ins on the prompt of step {worst[0]}"
    early_missed = 0
    early = False  # the latest answer was cut at the early endpoint
    for e in events:
        if e["kind"] == "early_endpoint":
            early = True
        elif e["kind"] == "no_match":
            early_missed, early = early_missed + early, False
        elif e["kind"] == "step":
            early = False
    if early_missed >= STREAK:
        return f"{early_missed} answers cut off early matched nothing"
    return ""


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9']+", text.lower()))


def incorrect_intent(events: Sequence[Event]) -> str:
    """The caller had to say the same thing again at another step: the first time it was taken for
    something else (two caller turns in a row at different steps, their words >= 80 % the same)."""
    step = None
    said: list[tuple[str | None, set[str]]] = []
    for e in events:
        if e["kind"] == "step":
            step = e.get("step")
        elif e["kind"] == "transcript":
            words = _words(str(e.get("text", "")))
            if len(words) >= 2:
                said.append((step, words))
    for (s1, w1), (s2, w2) in itertools.pairwise(said):
        if s1 != s2 and len(w1 & w2) / len(w1 | w2) >= SAME_WORDS:
            return f"the caller repeated themselves at step {s2}"
    return ""


def weak_retrieval(events: Sequence[Event]) -> str:
    """A knowledge answer was given from weak matches (``retrieval`` events whose ``score`` is below
    their ``threshold``), recorded by knowledge-base answers."""
    weak = [
        e for e in _kinds(events, "retrieval") if float(e.get("score", 1.0)) < float(e.get("threshold", 0.0))
    ]
    return f"{len(weak)} answers from weak knowledge matches" if weak else ""


def user_disconnection(events: Sequence[Event]) -> str:
    """The caller hung up before the plan ended the call or handed it over."""
    if _transferred(events) or _hangups(events):
        return ""
    return "the caller hung up before the end" if _end_reason(events).startswith("remote") else ""


def _end_reason(events: Sequence[Event]) -> str:
    ended = _kinds(events, "call_ended")
    return str(ended[-1].get("reason", "")) if ended else ""


Rule = Callable[[Sequence[Event]], str]
RULES: tuple[tuple[str, Rule], ...] = (
    ("system_failure", system_failure),
    ("handover_failure", handover_failure),
    ("tool_failure", tool_failure),
    ("policy_block", policy_block),
    ("recognition_error", recognition_error),
    ("unsupported_request", unsupported_request),
    ("endpointing_error", endpointing_error),
    ("incorrect_intent", incorrect_intent),
    ("weak_retrieval", weak_retrieval),
    ("user_disconnection", user_disconnection),
)


def outcome(events: Sequence[Event]) -> str:
    if _transferred(events):
        return "escalated"
    hangups = _hangups(events)
    if hangups and hangups[-1] not in BOT_FAILURES:
        return "completed"
    if user_disconnection(events):
        return "abandoned"
    return "failed"


def classify(events: Sequence[Event]) -> Verdict:
    """The call's outcome and failure class, with the reason in one line."""
    how = outcome(events)
    for name, rule in RULES:
        why = rule(events)
        if why:
            return Verdict(how, name, why)
    if how == "failed":  # ended by neither side's plan nor the caller: the UA or the line went away
        return Verdict(
            how, "system_failure", f"the call ended without its plan ending it ({_end_reason(events)})"
        )
    return Verdict(how, "completed", "")
