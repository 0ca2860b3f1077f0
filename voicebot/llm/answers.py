"""Answers to repeated first questions, shared by the node's call workers (a file per answer).

An FAQ assistant hears "when do you close on Sunday?" from caller after caller; the answer does not
change between them. When ``llm.answer_cache_ttl_s`` is set, the spoken reply to a conversation's
*first* question is kept for that long and said at once to the next caller who asks the same
(after lower-casing and dropping punctuation). Only where it is safe: the agent step offers no tools
(nothing is done for the caller, so nothing can be claimed falsely), the instructions are part of the
key (a plan that renders caller data into them never shares an answer between callers), and a reply
that failed, was cut short or asked for a tool is never kept.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_WORDS = re.compile(r"[^\w]+")


def key(
    model: str, instructions: str, messages: Sequence[tuple[str, str]], tools: Sequence[Any]
) -> str | None:
    """The cache key of this request, or None when its answer must not be shared."""
    if tools:
        return None
    users = [text for role, text in messages if role == "user"]
    if len(users) != 1 or any(role.startswith("tool") for role, _ in messages) or users[0].startswith("("):
        return None  # not a first question ("(pressed 5)", "(the caller said nothing)" are not questions)
    question = " ".join(_WORDS.sub(" ", users[0].lower()).split())
    if not question:
        return None
    return hashlib.sha256(json.dumps([model, instructions, question]).encode()).hexdigest()[:32]


class AnswerCache:
    def __init__(self, directory: Path, ttl_s: float, clock: Any = time.time) -> None:
        self.directory = directory
        self.ttl_s = ttl_s
        self.clock = clock

    def get(self, k: str) -> list[str] | None:
        path = self.directory / k
        try:
            stored = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(stored, dict) or self.clock() - float(stored.get("at", 0)) > self.ttl_s:
            with contextlib.suppress(OSError):
                path.unlink()
            return None
        sentences = stored.get("sentences")
        return [str(s) for s in sentences] if isinstance(sentences, list) and sentences else None

    def put(self, k: str, sentences: list[str]) -> None:
        if not sentences:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".answer-")
        with os.fdopen(fd, "w") as fh:
            json.dump({"at": self.clock(), "sentences": sentences}, fh)
        os.replace(tmp, self.directory / k)
