"""deploy/voicebot.example.yaml documents every setting, and only settings that exist.

Keys of list items that have no sensible default (trunks) may be documented in commented-out
examples (`#   registrar: ...`); every other key is written out with its default value.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, get_args, get_origin

import yaml
from pydantic import BaseModel

from voicebot.config import Settings

EXAMPLE = Path(__file__).resolve().parents[3] / "deploy" / "voicebot.example.yaml"


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The settings model inside ``annotation`` (itself, or the item of a list of them)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) is list:
        (item,) = get_args(annotation)
        return _model_of(item)
    return None


def _fields(model: type[BaseModel], prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        keys.add(key)
        inner = _model_of(field.annotation)
        if inner is not None:
            keys |= _fields(inner, f"{key}.")
    return keys


def _documented(node: Any, model: type[BaseModel] | None, prefix: str = "") -> set[str]:
    """Keys written in the file, followed into sub-settings (not into a mapping setting's own keys)."""
    keys: set[str] = set()
    if isinstance(node, list):
        for item in node:
            keys |= _documented(item, model, prefix)
    elif isinstance(node, dict) and model is not None:
        for name, value in node.items():
            keys.add(f"{prefix}{name}")
            field = model.model_fields.get(str(name))
            if field is not None:
                keys |= _documented(value, _model_of(field.annotation), f"{prefix}{name}.")
    return keys


def _commented_list_keys(text: str, section: str) -> set[str]:
    """Keys shown in the commented-out items of a top-level list (``#   key: value``)."""
    body = re.search(rf"^{section}:\n((?:[ #].*\n|\n)*)", text, re.M)
    assert body, f"no {section}: section"
    return {f"{section}.{k}" for k in re.findall(r"^\s*#\s*-?\s*([a-z_]+):", body.group(1), re.M)}


def _commented_nested_list_keys(text: str, group: str, key: str) -> set[str]:
    """Keys in the commented-out items under ``  key: []`` inside the top-level ``group``."""
    body = re.search(rf"^{group}:\n(?:(?:  .*|)\n)*?  {key}: \[\]\n((?:  +#.*\n)*)", text, re.M)
    assert body, f"no {group}.{key} section"
    return {f"{group}.{key}.{k}" for k in re.findall(r"^\s*#\s*-?\s*([a-z_]+):", body.group(1), re.M)}


def test_every_setting_is_documented_in_the_example_and_nothing_else() -> None:
    text = EXAMPLE.read_text()
    documented = (
        _documented(yaml.safe_load(text), Settings)
        | _commented_list_keys(text, "trunks")
        | _commented_nested_list_keys(text, "inference", "asr_providers")
        | _commented_nested_list_keys(text, "inference", "tts_providers")
        | _commented_nested_list_keys(text, "jobs", "webhooks")
        | _commented_nested_list_keys(text, "llm", "fallbacks")
    )
    fields = _fields(Settings)
    assert not fields - documented, f"settings missing from {EXAMPLE.name}: {sorted(fields - documented)}"
    assert not documented - fields, (
        f"keys in {EXAMPLE.name} that are no setting: {sorted(documented - fields)}"
    )
