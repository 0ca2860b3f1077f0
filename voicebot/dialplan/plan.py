"""Dialplan file (format version 1) -> a validated Plan, with every error at file:line:column."""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import gc
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path as FilePath
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from voicebot.dialplan.verbs import VERBS, Verb
from voicebot.dialplan.verbs.agent import Agent
from voicebot.dialplan.verbs.say import Say
from voicebot.dialplan.verbs.tool import Integration, Tool
from voicebot.dialplan.yamlsafe import Diagnostic, Loaded, Path, YamlError, load
from voicebot.media.audiofile import load_wav

FORMAT_VERSION = 1
# A plan id names a folder in the version store on every node and is a label in records and reports.
PLAN_ID = re.compile(r"[A-Za-z0-9_@+-][A-Za-z0-9_.@+-]{0,127}")
STEP_FIELDS = frozenset({"next", "description"})
TOP_FIELDS = (
    "id",
    "version",
    "format",
    "kind",
    "description",
    "settings",
    "variables",
    "queues",
    "handlers",
    "integrations",
    "start",
    "steps",
)


class Settings(BaseModel):
    """Plan-wide defaults: language and voice for speech, barge-in, timeouts."""

    model_config = ConfigDict(extra="forbid")
    language: str = Field("en", pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")
    voice: str | None = None
    barge_in: bool = True
    no_input_timeout_s: float = Field(6.0, gt=0, le=60)
    inter_digit_timeout_s: float = Field(3.0, gt=0, le=30)  # keys: the gap that ends an entry
    # the caller's silence that ends a spoken answer (shorter: snappier; longer: fewer cut-offs)
    end_of_turn_ms: int = Field(700, ge=200, le=3000)
    # Where a call goes when the bot cannot carry on with it (its worker died twice at the same step);
    # one of the plan's `queues`. None: the caller is told and the call ends.
    fallback_queue: str | None = None


class Handlers(BaseModel):
    """Plan-wide handlers: where to go whatever step the caller is in."""

    model_config = ConfigDict(extra="forbid")
    agent: str | None = None  # the caller asks for a person (key below, or one of the words)
    agent_key: str | None = Field("0", pattern=r"^[0-9*#]$")
    agent_words: list[str] = Field(default_factory=lambda: ["agent", "operator", "representative", "human"])
    no_input: str | None = None  # a step's retries ran out and it names no target of its own
    no_match: str | None = None
    # Call-wide: after this many silences / misunderstandings in total, go to the handler above
    # (0 = only when a step's own retries run out). Callers stuck across many steps reach a person.
    max_no_input: int = Field(0, ge=0, le=50)
    max_no_match: int = Field(0, ge=0, le=50)
    error: str | None = None  # the interpreter hit a runtime problem (e.g. a runaway loop)

    def targets(self) -> list[str]:
        return [t for t in (self.agent, self.no_input, self.no_match, self.error) if t]


@dataclass(frozen=True)
class Step:
    """One step: its verb and where it is written (``file`` differs for inlined subflow steps)."""

    id: str
    verb: Verb
    next: str | None
    line: int
    column: int
    file: str = ""


@dataclass
class Plan:
    """A validated dialplan: what the checker checks and the interpreter runs."""

    id: str
    version: int
    description: str
    settings: Settings
    variables: dict[str, Any]
    queues: list[str]
    handlers: Handlers
    integrations: dict[str, Integration]
    start: str
    steps: dict[str, Step]
    content_hash: str
    file: str = "<input>"
    kind: str = "dialplan"  # or "subflow": steps may `return`; only other dialplans call it
    warnings: list[Diagnostic] = field(default_factory=list)
    positions: dict[Path, tuple[int, int]] = field(default_factory=dict, repr=False)
    includes: tuple[str, ...] = ()  # subflow files read to build this plan (nested ones too)

    def __post_init__(self) -> None:
        ids = list(self.steps)
        self._following = {sid: ids[i + 1] if i + 1 < len(ids) else None for i, sid in enumerate(ids)}

    def after(self, step_id: str) -> str | None:
        """Where a step continues when it has no `next`: the following step in the file."""
        nxt = self._following.get(step_id)
        # Inlined subflow steps come after their call site; the step below a subflow's last step
        # is never the caller's own step (a subflow ends with return, goto or an ending verb).
        if nxt is not None and step_id.rpartition("/")[0] != nxt.rpartition("/")[0]:
            return None
        return nxt

    @property
    def ref(self) -> str:
        """``id@version#hash``: what logs, reports and stored call state name."""
        return f"{self.id}@{self.version}#{self.content_hash}"


def did_you_mean(word: str, choices: list[str] | tuple[str, ...]) -> str:
    """``; did you mean 'x'?`` for the closest of ``choices``, or nothing."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


class _Parser:
    def __init__(self, loaded: Loaded, file: str) -> None:
        self.loaded, self.file = loaded, file
        self.errors: list[Diagnostic] = []

    def error(self, path: Path, message: str) -> None:
        line, col = self.loaded.where(path)
        self.errors.append(Diagnostic(self.file, line, col, "error", message))

    def validation(self, path: Path, exc: ValidationError) -> None:
        for err in exc.errors():
            loc = tuple(str(p) if not isinstance(p, int) else p for p in err["loc"])
            where = ".".join(str(p) for p in loc)
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden" and loc:
                model = _model_at(path, loc[:-1])
                fields = list(model.model_fields) if model else []
                msg = f"unknown field {loc[-1]!r}{did_you_mean(str(loc[-1]), fields)}"
                if " " in str(loc[-1]):  # `{say: Sorry, we are closed}`: the comma split the text
                    msg += "; inside { } a comma separates fields: put text with commas in quotes"
                where = ".".join(str(p) for p in loc[:-1])
            self.error((*path, *loc), f"{where + ': ' if where else ''}{msg}")

    def model(self, cls: type[BaseModel], path: Path, data: Any) -> Any:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            self.validation(path, exc)
            return None

    def step(self, step_id: str, body: Any) -> Step | None:
        path: Path = ("steps", step_id)
        if not isinstance(body, dict):
            self.error(path, f"step {step_id!r} must be a mapping with one verb, e.g. `say: Hello`")
            return None
        verbs = [k for k in body if k not in STEP_FIELDS]
        if len(verbs) != 1:
            found = ", ".join(map(str, verbs)) or "none"
            self.error(path, f"step {step_id!r} needs exactly one verb (found: {found})")
            return None
        name = str(verbs[0])
        cls = VERBS.get(name)
        if cls is None:
            self.error((*path, name), f"unknown verb {name!r}{did_you_mean(name, tuple(VERBS))}")
            return None
        params = body[name]
        if not isinstance(params, dict):
            params = {cls.shorthand: params} if cls.shorthand and params is not None else {}
        verb = self.model(cls, (*path, name), params)
        if verb is None:
            return None
        nxt = body.get("next")
        if nxt is not None and not isinstance(nxt, str):
            self.error((*path, "next"), "next must be a step id")
            nxt = None
        line, col = self.loaded.where(path)
        return Step(step_id, verb, nxt, line, col, self.file)


def _model_at(path: Path, loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The pydantic model validating ``path + loc`` (for "did you mean" on unknown fields)."""
    full = (*path, *loc)
    if full[:1] == ("settings",):
        return Settings
    if full[:1] == ("handlers",):
        return Handlers
    if full[:1] == ("integrations",):
        return Integration
    if len(full) < 3 or full[0] != "steps":
        return None
    model: type[BaseModel] | None = VERBS.get(str(full[2]))
    for part in full[3:]:
        if model is None or isinstance(part, int):
            continue
        info = model.model_fields.get(str(part))
        model = _inner_model(info.annotation) if info else None
    return model


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _inner_model(arg)
        if found:
            return found
    return None


def _is_yes_no_field(path: Path) -> bool:
    """Is the value at ``path`` a yes/no setting (where an unquoted `yes` means true, as intended)?"""
    model = _model_at(path[:-1], ()) if len(path) >= 2 else None
    info = model.model_fields.get(str(path[-1])) if model else None
    return info is not None and bool in getattr(info.annotation, "__args__", (info.annotation,))


def parse(text: bytes | str, file: str = "<input>", *, _depth: int = 0) -> Plan:
    """Load and validate; raise YamlError with every diagnostic (structure only: see check.py)."""
    with _gc_paused():
        return _parse(text, file, _depth)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a file becomes a plan.

    Parsing allocates a node, a value and a position per YAML value, all freed by reference counting;
    the collector's passes over them were ~45% of the time to check a 5,000-step file. The input is
    bounded (size, depth, expanded values), so the pause is too."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _parse(text: bytes | str, file: str, _depth: int) -> Plan:
    loaded = load(text, file)
    p = _Parser(loaded, file)
    data = loaded.data
    if not isinstance(data, dict):
        raise YamlError(
            [Diagnostic(file, 1, 1, "error", "a dialplan is a mapping with id, version and steps")]
        )
    _top_level(p, data)
    settings = p.model(Settings, ("settings",), data.get("settings") or {}) or Settings()
    handlers = p.model(Handlers, ("handlers",), data.get("handlers") or {}) or Handlers()
    raw_steps = data.get("steps")
    steps = _steps(p, raw_steps)
    integrations = _integrations(p, data.get("integrations") or {})
    step_ids = [str(k) for k in raw_steps] if isinstance(raw_steps, dict) else []
    _handler_targets(p, handlers, step_ids)
    queues = data.get("queues") or []
    if not isinstance(queues, list) or not all(isinstance(q, str) for q in queues):
        p.error(("queues",), "queues must be a list of queue names")
        queues = []
    variables = data.get("variables") or {}
    if not isinstance(variables, dict):
        p.error(("variables",), "variables must be a mapping of name -> starting value")
        variables = {}
    start = str(data.get("start") or (step_ids[0] if step_ids else ""))
    warnings = loaded.warnings_except(_is_yes_no_field)
    if p.errors:  # with the warnings: an unquoted `no` explains why a text field got a boolean
        raise YamlError(sorted([*p.errors, *warnings], key=lambda d: (d.line, d.column)))
    raw = text.encode() if isinstance(text, str) else text
    plan = Plan(
        id=str(data["id"]),
        kind=str(data.get("kind") or "dialplan"),
        version=int(data["version"]),
        description=str(data.get("description") or ""),
        settings=settings,
        handlers=handlers,
        integrations=integrations,
        variables={str(k): v for k, v in variables.items()},
        queues=list(queues),
        start=start,
        steps=steps,
        content_hash=hashlib.sha256(raw).hexdigest()[:16],
        file=file,
        warnings=warnings,
        positions=loaded.positions,
    )
    from voicebot.dialplan.subflows import inline  # subflows parse files with this module

    plan = inline(plan, _depth)
    if _depth == 0:  # a subflow may use its caller's integrations: checked once all are merged
        problems = undeclared_integrations(plan)
        if problems:
            raise YamlError(problems)
    return plan


def undeclared_integrations(plan: Plan) -> list[Diagnostic]:
    """Tool and agent steps may only use integrations declared in the plan (or its subflows)."""
    known = list(plan.integrations)
    out = []
    for sid, step in plan.steps.items():
        used = (
            [("integration", step.verb.integration)]
            if isinstance(step.verb, Tool)
            else [(f"tools.{t}.integration", tool.integration) for t, tool in step.verb.tools.items()]
            if isinstance(step.verb, Agent)
            else []
        )
        for field_name, name in used:
            if name not in plan.integrations:
                line, col = plan.positions.get(
                    ("steps", sid, step.verb.name, *field_name.split(".")), (step.line, step.column)
                )
                what = "integration" if field_name == "integration" else "agent tool"
                out.append(
                    Diagnostic(
                        step.file or plan.file,
                        line,
                        col,
                        "error",
                        f"{what} {name!r} is not declared under `integrations`{did_you_mean(name, known)}",
                    )
                )
    return out


def _top_level(p: _Parser, data: dict[Any, Any]) -> None:
    for key in data:
        if key not in TOP_FIELDS:
            p.error((str(key),), f"unknown field {key!r}{did_you_mean(str(key), TOP_FIELDS)}")
    for key in ("id", "version", "steps"):
        if key not in data:
            p.error((), f"missing required field {key!r}")
    if "id" in data and not (isinstance(data["id"], str) and PLAN_ID.fullmatch(data["id"])):
        p.error(
            ("id",),
            "id must be a name of letters, digits and _ - . @ + (not starting with a dot), "
            "e.g. `id: billing`",
        )
    version = data.get("version")
    if "version" in data and not (
        isinstance(version, int) and not isinstance(version, bool) and version >= 1
    ):
        p.error(("version",), "version must be a whole number >= 1")
    if data.get("kind", "dialplan") not in ("dialplan", "subflow"):
        p.error(("kind",), "kind is `dialplan` (the default) or `subflow`")
    if data.get("format", FORMAT_VERSION) != FORMAT_VERSION:
        p.error(("format",), f"this voicebot reads dialplan format {FORMAT_VERSION}")


def _steps(p: _Parser, raw_steps: Any) -> dict[str, Step]:
    steps: dict[str, Step] = {}
    if not isinstance(raw_steps, dict) or not raw_steps:
        if "steps" in p.loaded.data:  # (a missing `steps` is reported as a missing field)
            p.error(("steps",), "steps must be a non-empty mapping of step id -> step")
        return steps
    for step_id, body in raw_steps.items():
        if "/" in str(step_id):
            p.error(("steps", str(step_id)), f"step id {step_id!r}: '/' is reserved for subflow steps")
            continue
        step = p.step(str(step_id), body)
        if step is not None:
            steps[str(step_id)] = _checked_audio(p, step)
    return steps


def _checked_audio(p: _Parser, step: Step) -> Step:
    """A say's WAV must exist and be usable now, not when a caller reaches it."""
    if not (isinstance(step.verb, Say) and step.verb.audio):
        return step
    audio = (FilePath(p.file).parent / step.verb.audio).resolve()
    try:
        load_wav(audio, 8000)
    except ValueError as exc:
        p.error(("steps", step.id, "say", "audio"), f"audio {step.verb.audio!r}: {exc}")
        return step
    return dataclasses.replace(step, verb=step.verb.model_copy(update={"audio": str(audio)}))


def _integrations(p: _Parser, raw: Any) -> dict[str, Integration]:
    if not isinstance(raw, dict):
        p.error(("integrations",), "integrations must be a mapping of name -> {base_url, headers, ...}")
        return {}
    out: dict[str, Integration] = {}
    for name, spec in raw.items():
        model = p.model(Integration, ("integrations", str(name)), spec)
        if model is not None:
            out[str(name)] = model
    return out


def _handler_targets(p: _Parser, handlers: Handlers, step_ids: list[str]) -> None:
    for name in ("agent", "no_input", "no_match", "error"):
        target = getattr(handlers, name)
        if target is not None and step_ids and target not in step_ids:
            p.error(
                ("handlers", name),
                f"handler {name!r} goes to {target!r}, which does not exist{did_you_mean(target, step_ids)}",
            )
