"""JSON Schema of dialplan files, generated from the verb models (editors validate as admins type)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from voicebot.dialplan.plan import FORMAT_VERSION, PLAN_ID, Handlers, Settings
from voicebot.dialplan.verbs import VERBS
from voicebot.dialplan.verbs.tool import Integration


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a dialplan file; `voicebot dialplan schema` prints it."""
    defs: dict[str, Any] = {}
    step_variants = []
    for name, cls in sorted(VERBS.items()):
        params = _hoisted(cls, defs)
        if cls.shorthand:
            params = {"anyOf": [params, {"type": "string"}]}
        step_variants.append(
            {
                "type": "object",
                "properties": {name: params, "next": {"type": "string"}, "description": {"type": "string"}},
                "required": [name],
                "additionalProperties": False,
            }
        )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"voicebot dialplan (format version {FORMAT_VERSION})",
        "type": "object",
        "required": ["id", "version", "steps"],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string", "pattern": f"^{PLAN_ID.pattern}$"},
            "version": {"type": "integer", "minimum": 1},
            "format": {"const": FORMAT_VERSION},
            "description": {"type": "string"},
            "settings": _hoisted(Settings, defs),
            "handlers": _hoisted(Handlers, defs),
            "integrations": {"type": "object", "additionalProperties": _hoisted(Integration, defs)},
            "variables": {"type": "object"},
            "queues": {"type": "array", "items": {"type": "string"}},
            "start": {"type": "string"},
            "steps": {"type": "object", "additionalProperties": {"oneOf": step_variants}, "minProperties": 1},
        },
        "$defs": defs,
    }


def _hoisted(model: type[BaseModel], defs: dict[str, Any]) -> dict[str, Any]:
    """The model's schema with its nested definitions moved to the root, where `#/$defs/X` points."""
    schema = model.model_json_schema()
    defs.update(schema.pop("$defs", {}))
    return schema
