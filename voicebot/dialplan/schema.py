"""JSON Schema of dialplan files, generated from the verb models (editors validate as admins type)."""

from __future__ import annotations

from typing import Any

from voicebot.dialplan.plan import Settings
from voicebot.dialplan.verbs import VERBS


def json_schema() -> dict[str, Any]:
    step_variants = []
    for name, cls in sorted(VERBS.items()):
        params = cls.model_json_schema()
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
        "title": "voicebot dialplan (format version 1)",
        "type": "object",
        "required": ["id", "version", "steps"],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string"},
            "version": {"type": "integer", "minimum": 1},
            "description": {"type": "string"},
            "settings": Settings.model_json_schema(),
            "variables": {"type": "object"},
            "queues": {"type": "array", "items": {"type": "string"}},
            "start": {"type": "string"},
            "steps": {"type": "object", "additionalProperties": {"oneOf": step_variants}, "minProperties": 1},
        },
    }
