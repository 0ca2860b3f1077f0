"""Small, defensive readers for the raw INVITE text pjsua2 hands us (``SipRxData.wholeMsg``).

pjsip has already parsed and validated the message; these helpers only pull out the few values the
admission policy needs (called number, caller, X- headers, whether the SDP offers SRTP).
"""

from __future__ import annotations

import re

_COMPACT = {
    "f": "from",
    "t": "to",
    "i": "call-id",
    "m": "contact",
    "c": "content-type",
    "l": "content-length",
}
_URI_USER = re.compile(r"sips?:([^@;>\s]+)@", re.IGNORECASE)


def split_message(raw: str) -> tuple[str, dict[str, str], str]:
    """Return (start line, headers lower-cased by name (first value wins), body)."""
    head, _, body = raw.replace("\r\n", "\n").partition("\n\n")
    lines = head.split("\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            continue
        key = name.strip().lower()
        key = _COMPACT.get(key, key)
        headers.setdefault(key, value.strip())
    return lines[0].strip() if lines else "", headers, body


def uri_user(value: str) -> str:
    """The user part of the first SIP URI in a header value or request line ('' if none)."""
    match = _URI_USER.search(value)
    return match.group(1) if match else ""


def called_number(start_line: str, headers: dict[str, str]) -> str:
    """Request-URI user, else the To user."""
    parts = start_line.split(" ")
    user = uri_user(parts[1]) if len(parts) > 1 else ""
    return user or uri_user(headers.get("to", ""))


def sdp_offers_srtp(body: str) -> tuple[bool, bool]:
    """(offers SDES crypto, offers plain RTP) for the audio m-lines of an SDP body."""
    crypto = "a=crypto:" in body
    plain = bool(re.search(r"^m=audio \d+ RTP/AVP\b", body, re.MULTILINE))
    return crypto, plain or not crypto
