"""Settings of outbound calls (settings `outbound`): a model of its own, because call workers read it
(a callback step checks the number before it promises anything) and they do not load node settings."""

from __future__ import annotations

import re
import zoneinfo

from pydantic import BaseModel, ConfigDict, Field, field_validator

_PREFIX = re.compile(r"^\+[0-9]{1,15}$")
_HOURS = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-4]):([0-5][0-9])$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DestinationPolicy(_Model):
    """Which numbers the bot may dial: toll-fraud guards, checked when a callback is offered and
    again when the call is placed."""

    # Numbers without a country code are read as numbers of this region (ISO 3166, e.g. US, GB, DE).
    home_region: str = Field("US", pattern=r"^[A-Z]{2}$")
    # Other regions dialled as if at home. A shared country code is not enough: +1 is the US, Canada
    # and twenty Caribbean countries billed as international, so each region is listed ("CA").
    domestic_regions: list[str] = Field(default_factory=list)
    allow_international: bool = False  # numbers outside home_region and domestic_regions
    allow_premium: bool = False  # premium-rate, shared-cost and personal numbers (1-900, 09xx...)
    allow: list[str] = Field(default_factory=list)  # E.164 prefixes allowed anyway ("+4420")
    deny: list[str] = Field(default_factory=list)  # E.164 prefixes never dialled (wins over allow)

    @field_validator("domestic_regions")
    @classmethod
    def _regions(cls, value: list[str]) -> list[str]:
        bad = [r for r in value if not re.fullmatch(r"[A-Z]{2}", r)]
        if bad:
            raise ValueError(f"regions are ISO 3166 codes such as CA or GB, not {bad[0]!r}")
        return value

    @field_validator("allow", "deny")
    @classmethod
    def _prefixes(cls, value: list[str]) -> list[str]:
        bad = [p for p in value if not _PREFIX.match(p)]
        if bad:
            raise ValueError(f"prefixes must be + and digits (E.164), not {bad[0]!r}")
        return value


class OutboundSettings(_Model):
    """Callbacks and `voicebot call`: off unless a trunk can dial (trunks[].dial) and this is on."""

    enabled: bool = False
    policy: DestinationPolicy = Field(default_factory=DestinationPolicy)
    # Local time (timezone below) in which calls may ring; a due call outside it waits for the next.
    calling_hours: str = "08:00-21:00"
    timezone: str = ""  # IANA zone of calling hours and callback times ("" = this machine's)
    max_attempts: int = Field(3, ge=1, le=10)  # no answer, busy, failed: tried again after retry_s
    retry_s: float = Field(300.0, gt=0)  # then doubled per attempt (300 s, 600 s, ...)
    ring_timeout_s: float = Field(30.0, ge=5, le=120)  # unanswered this long: a failed attempt
    # A call this long past its promised time (not counting the retries' own waits) is not placed:
    # waiting for calling hours or a busy trunk must not turn "at 3 pm" into tomorrow morning.
    max_late_s: float = Field(3600.0, ge=60)
    max_days_ahead: int = Field(14, ge=0, le=90)  # the latest day a callback may be booked for

    @field_validator("calling_hours")
    @classmethod
    def _hours(cls, value: str) -> str:
        if not _HOURS.match(value):
            raise ValueError(f"calling_hours must be HH:MM-HH:MM (e.g. 08:00-21:00), not {value!r}")
        start, end = value.split("-")
        if start >= end:
            raise ValueError(f"calling_hours must start before they end (same day), not {value!r}")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        if value:
            try:
                zoneinfo.ZoneInfo(value)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown timezone {value!r} (an IANA name such as Europe/London)") from None
        return value


CLAIM_WAIT_S = 20.0  # no UA worker had a free slot this long: the request is withdrawn, tried later
ANSWER_MARGIN_S = 15.0  # the UA worker's report after the ring timeout


def outbound_wait_s(ring_timeout_s: float) -> float:
    """The longest a dialer waits for one placed call's answer (or failure)."""
    return CLAIM_WAIT_S + ring_timeout_s + ANSWER_MARGIN_S


class DialTrunk(_Model):
    """A trunk that can place calls (settings trunks[] with `dial`), as the dialer needs it."""

    name: str
    dial: str  # "sip:{number}@carrier.example.net:5060": the E.164 number goes in, nothing else
    caller_id: str = ""
    max_calls: int = 2
    cps: float = 1.0
