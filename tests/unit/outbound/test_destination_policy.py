"""The destination policy: the toll-fraud guard of callbacks and `voicebot call` (pure)."""

from __future__ import annotations

import pytest

from voicebot.logs import masked_number
from voicebot.outbound.policy import Allowed, Refused, check
from voicebot.outbound.settings import DestinationPolicy

HOME = DestinationPolicy(home_region="US")


@pytest.mark.parametrize(
    ("number", "e164"),
    [
        ("+12125550123", "+12125550123"),
        ("(212) 555-0123", "+12125550123"),
        ("1 212 555 0123", "+12125550123"),
    ],
)
def test_home_numbers_are_dialled_in_e164(number: str, e164: str) -> None:
    assert check(number, HOME) == Allowed(e164, "US")


@pytest.mark.parametrize(
    ("number", "why"),
    [
        ("+19005551234", "premium-rate"),
        ("+442079460000", "international"),
        ("+33612345678", "international"),
        ("911", "emergency"),
        ("112", "emergency"),
        ("+1212", "not a valid number"),
        ("sip:evil@example.com", "not a phone number"),
        ("+1 212 555 0123;transport=tcp", "not a phone number"),
        ("2125550123@10.0.0.1", "not a phone number"),
        ("", "not a phone number"),
        ("9" * 40, "not a phone number"),
    ],
)
def test_costly_foreign_emergency_and_malformed_numbers_are_refused(number: str, why: str) -> None:
    verdict = check(number, HOME)
    assert isinstance(verdict, Refused)
    assert why in verdict.reason


def test_settings_open_what_the_admin_allows_and_deny_wins() -> None:
    assert isinstance(check("+19005551234", HOME.model_copy(update={"allow_premium": True})), Allowed)
    intl = HOME.model_copy(update={"allow_international": True})
    assert check("+442079460000", intl) == Allowed("+442079460000", "GB")
    assert isinstance(check("+19005551234", intl), Refused)  # international on is not premium on
    prefix = HOME.model_copy(update={"allow": ["+4420"]})
    assert isinstance(check("+442079460000", prefix), Allowed)
    assert isinstance(check("+447911123456", prefix), Refused)
    both = HOME.model_copy(update={"allow": ["+1"], "deny": ["+1212"]})
    assert "denied" in check("+12125550123", both).reason  # type: ignore[union-attr]


def test_national_numbers_are_read_in_the_home_region() -> None:
    gb = DestinationPolicy(home_region="GB")
    assert check("020 7946 0000", gb) == Allowed("+442079460000", "GB")
    assert isinstance(check("+12125550123", gb), Refused)  # the US is abroad from GB
    assert "premium" in check("09098790000", gb).reason  # type: ignore[union-attr]


def test_a_shared_country_code_is_not_home_the_caribbean_and_canada_are_regions_of_their_own() -> None:
    for number, region in (("+18092221234", "DO"), ("+18765550123", "JM"), ("+14165550123", "CA")):
        verdict = check(number, HOME)
        assert isinstance(verdict, Refused) and region in verdict.reason, (number, verdict)
    with_canada = HOME.model_copy(update={"domestic_regions": ["CA"]})
    assert check("+14165550123", with_canada) == Allowed("+14165550123", "CA")
    assert isinstance(check("+18092221234", with_canada), Refused)
    with pytest.raises(ValueError, match="ISO 3166"):
        DestinationPolicy(domestic_regions=["Canada"])


def test_prefix_settings_are_checked_and_numbers_masked_in_logs() -> None:
    with pytest.raises(ValueError, match=r"E\.164"):
        DestinationPolicy(allow=["0044"])
    assert masked_number("+12125550123") == "********0123"
