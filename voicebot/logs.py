"""structlog configured once per process.

Event names are constants (``call.answered``); per-call context (call_id, sip_call_id, dialplan) is
bound with :func:`structlog.contextvars.bind_contextvars` or a bound logger. Caller data (numbers,
DTMF, transcripts) goes only in keys listed in :data:`PII_KEYS`, which are masked when redaction is on.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

PII_KEYS = frozenset({"caller", "callee", "from_uri", "to_uri", "digit", "digits", "transcript", "text"})
SECRET_KEYS = frozenset({"password", "secret", "authorization", "token", "api_key"})


def masked_number(number: str) -> str:
    """A phone number for logs, records and people who may not see it: all but the last four digits
    hidden."""
    return "*" * max(0, len(number) - 4) + number[-4:]


def _redactor(redact_pii: bool) -> structlog.types.Processor:
    def redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        for key in list(event):
            if key in SECRET_KEYS or (redact_pii and key in PII_KEYS):
                event[key] = "***"
        return event

    return redact


def configure(level: str = "info", fmt: str = "console", redact_pii: bool = False, process: str = "") -> None:
    """Configure structlog (and stdlib logging) for this process; call once at process start."""
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redactor(redact_pii),
    ]
    if process:
        structlog.contextvars.bind_contextvars(proc=process)
    renderer: structlog.types.Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=level.upper(), stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
    # httpx logs every request at INFO (URLs included): our own events say what matters
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level.upper())))


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A logger tagged with the module name."""
    return structlog.get_logger(name)  # type: ignore[no-any-return]
