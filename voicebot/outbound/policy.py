"""Which numbers the bot may dial (pure): the toll-fraud guard of callbacks and `voicebot call`.

A number is parsed with libphonenumber (the phonenumbers package): invalid numbers, emergency
numbers and anything that is not digits are refused always; numbers outside the home region (and
``domestic_regions``) unless ``allow_international``, decided by the number's region, not its
country code, because +1 also reaches the Caribbean at international rates; premium-rate,
shared-cost and personal numbers unless ``allow_premium``. ``deny`` prefixes win over everything,
``allow`` prefixes over the region and premium rules. What is dialled is the E.164 form, never the
caller's text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import phonenumbers
from phonenumbers import PhoneNumberType

from voicebot.outbound.settings import DestinationPolicy

_DIALLABLE = re.compile(r"^\+?[0-9 ().-]{3,24}$")
_COSTLY = {
    PhoneNumberType.PREMIUM_RATE: "a premium-rate number",
    PhoneNumberType.SHARED_COST: "a shared-cost number",
    PhoneNumberType.PERSONAL_NUMBER: "a personal (forwarding) number",
    PhoneNumberType.UAN: "a universal access number",
}


@dataclass(frozen=True)
class Allowed:
    e164: str  # "+12125550123"
    region: str


@dataclass(frozen=True)
class Refused:
    reason: str


def check(number: str, policy: DestinationPolicy) -> Allowed | Refused:
    """May the bot dial ``number``? Allowed carries the E.164 form to dial."""
    text = number.strip()
    if not _DIALLABLE.match(text):
        return Refused("not a phone number (digits only, optionally + and a country code)")
    if phonenumbers.is_emergency_number(text, policy.home_region):
        return Refused("an emergency number")
    try:
        parsed = phonenumbers.parse(text, policy.home_region)
    except phonenumbers.NumberParseException:
        return Refused("not a phone number")
    if not phonenumbers.is_valid_number(parsed):
        return Refused("not a valid number")
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    region = phonenumbers.region_code_for_number(parsed) or "?"
    if any(e164.startswith(p) for p in policy.deny):
        return Refused("a denied prefix (outbound.policy.deny)")
    if any(e164.startswith(p) for p in policy.allow):
        return Allowed(e164, region)
    costly = _COSTLY.get(phonenumbers.number_type(parsed))
    if costly and not policy.allow_premium:
        return Refused(f"{costly} (outbound.policy.allow_premium is off)")
    if region not in (policy.home_region, *policy.domestic_regions) and not policy.allow_international:
        return Refused(f"an international number ({region}; outbound.policy.allow_international is off)")
    return Allowed(e164, region)
