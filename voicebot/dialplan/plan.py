"""Dialplan file (format version 1) -> a validated Plan, with every error at file:line:column."""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
from dataclasses import dataclass, field
from pathlib import Path as FilePath
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from voicebot.dialplan.verbs import VERBS, Verb
from voicebot.dialplan.verbs.basic import Say
from voicebot.dialplan.verbs.conversation import Agent
from voicebot.dialplan.verbs.tool import Integration, Tool
from voicebot.dialplan.yamlsafe import Diagnostic, Loaded, Path, YamlError, load
from voicebot.media.audiofile import load_wav

STEP_FIELDS = frozenset({"next", "description"})
TOP_FIELDS = (
    "id",
    "version",
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
    model_config = ConfigDict(extra="forbid")
    language: str = "en"
    voice: str | None = None
    barge_in: bool = True
    no_input_timeout_s: float = Field(6.0, gt=0, le=60)


class Handlers(BaseModel):
    """Plan-wide handlers: where to go whatever step the caller is in."""

    model_config = ConfigDict(extra="forbid")
    agent: str | None = None  # the caller asks for a person (key below, or one of the words)
    agent_key: str | None = Field("0", pattern=r"^[0-9*#]$")
    agent_words: list[str] = Field(default_factory=lambda: ["agent", "operator", "representative", "human"])
    no_input: str | None = None  # a step's retries ran out and it names no target of its own
    no_match: str | None = None
    error: str | None = None  # the interpreter hit a runtime problem (e.g. a runaway loop)

    def targets(self) -> list[str]:
        return [t for t in (self.agent, self.no_input, self.no_match, self.error) if t]


@dataclass(frozen=True)
class Step:
    id: str
    verb: Verb
    next: str | None
    line: int
    column: int


@dataclass
class Plan:
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
    warnings: list[Diagnostic] = field(default_factory=list)

    def __post_init__(self) -> None:
        ids = list(self.steps)
        self._following = dict(zip(ids, [*ids[1:], None], strict=True))

    def after(self, step_id: str) -> str | None:
        """Where a step continues when it has no `next`: the following step in the file."""
        return self._following.get(step_id)


def did_you_mean(word: str, choices: list[str] | tuple[str, ...]) -> str:
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
            self.error((*path, *loc), f"{where + ': ' if where else ''}{err['msg']}")

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
        try:
            verb = cls.model_validate(params)
        except ValidationError as exc:
            self.validation((*path, name), exc)
            return None
        nxt = body.get("next")
        if nxt is not None and not isinstance(nxt, str):
            self.error((*path, "next"), "next must be a step id")
            nxt = None
        line, col = self.loaded.where(path)
        return Step(step_id, verb, nxt, line, col)


def parse(text: bytes | str, file: str = "<input>") -> Plan:
    """Load and validate; raise YamlError with every diagnostic (structure only: see check.py)."""
    loaded = load(text, file)
    p = _Parser(loaded, file)
    data = loaded.data
    if not isinstance(data, dict):
        raise YamlError(
            [Diagnostic(file, 1, 1, "error", "a dialplan is a mapping with id, version and steps")]
        )
    for key in data:
        if key not in TOP_FIELDS:
            p.error((str(key),), f"unknown field {key!r}{did_you_mean(str(key), TOP_FIELDS)}")
    for key in ("id", "version", "steps"):
        if key not in data:
            p.error((), f"missing required field {key!r}")
    settings = Settings()
    try:
        settings = Settings.model_validate(data.get("settings") or {})
    except ValidationError as exc:
        p.validation(("settings",), exc)
    handlers = Handlers()
    try:
        handlers = Handlers.model_validate(data.get("handlers") or {})
    except ValidationError as exc:
        p.validation(("handlers",), exc)
    steps: dict[str, Step] = {}
    raw_steps = data.get("steps")
    if raw_steps is not None and (not isinstance(raw_steps, dict) or not raw_steps):
        p.error(("steps",), "steps must be a non-empty mapping of step id -> step")
    elif isinstance(raw_steps, dict):
        for step_id, body in raw_steps.items():
            step = p.step(str(step_id), body)
            if step is not None:
                steps[str(step_id)] = step
    integrations: dict[str, Integration] = {}
    raw_integrations = data.get("integrations") or {}
    if not isinstance(raw_integrations, dict):
        p.error(("integrations",), "integrations must be a mapping of name -> {base_url, headers, ...}")
        raw_integrations = {}
    for name, spec in raw_integrations.items():
        try:
            integrations[str(name)] = Integration.model_validate(spec)
        except ValidationError as exc:
            p.validation(("integrations", str(name)), exc)
    for sid, step in list(steps.items()):
        if isinstance(step.verb, Say) and step.verb.audio:
            audio = (FilePath(file).parent / step.verb.audio).resolve()
            try:
                load_wav(audio, 8000)
            except ValueError as exc:
                p.error(("steps", sid, "say", "audio"), f"audio {step.verb.audio!r}: {exc}")
                continue
            steps[sid] = dataclasses.replace(step, verb=step.verb.model_copy(update={"audio": str(audio)}))
        if isinstance(step.verb, Agent):
            for name in step.verb.tools:
                if name not in raw_integrations:
                    p.error(
                        ("steps", sid, "agent"), f"agent tool {name!r} is not declared under `integrations`"
                    )
        if isinstance(step.verb, Tool) and step.verb.integration not in raw_integrations:
            p.error(
                ("steps", sid, "tool"),
                f"integration {step.verb.integration!r} is not declared under "
                f"`integrations`{did_you_mean(step.verb.integration, [str(k) for k in raw_integrations])}",
            )
    for name in ("agent", "no_input", "no_match", "error"):
        target = getattr(handlers, name)
        if target is not None and isinstance(raw_steps, dict) and target not in raw_steps:
            p.error(
                ("handlers", name),
                f"handler {name!r} goes to {target!r}, which does not exist"
                f"{did_you_mean(target, [str(k) for k in raw_steps])}",
            )
    version = data.get("version")
    if "version" in data and not (isinstance(version, int) and version >= 1):
        p.error(("version",), "version must be a whole number >= 1")
    queues = data.get("queues") or []
    if not isinstance(queues, list) or not all(isinstance(q, str) for q in queues):
        p.error(("queues",), "queues must be a list of queue names")
        queues = []
    start = str(
        data.get("start") or (next(iter(raw_steps)) if isinstance(raw_steps, dict) and raw_steps else "")
    )
    if p.errors:
        raise YamlError(p.errors)
    raw = text.encode() if isinstance(text, str) else text
    return Plan(
        id=str(data["id"]),
        version=int(version or 1),
        description=str(data.get("description") or ""),
        settings=settings,
        handlers=handlers,
        integrations=integrations,
        variables=dict(data.get("variables") or {}),
        queues=list(queues),
        start=start,
        steps=steps,
        content_hash=hashlib.sha256(raw).hexdigest()[:16],
        file=file,
        warnings=loaded.warnings,
    )
