from __future__ import annotations

from voicebot.signaling import sipmsg

INVITE = (
    "INVITE sip:+15551234@pbx.example.com;user=phone SIP/2.0\r\n"
    'f: "Alice" <sip:alice@10.0.0.2>;tag=1\r\n'
    "To: <sip:other@pbx.example.com>\r\n"
    "i: abc@10.0.0.2\r\n"
    "X-Voicebot-Source: 10.0.0.2\r\n"
    "Content-Type: application/sdp\r\n\r\n"
    "v=0\r\nm=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:xyz\r\n"
)


def test_split_and_compact_headers() -> None:
    start, headers, body = sipmsg.split_message(INVITE)
    assert start.startswith("INVITE ")
    assert headers["from"].startswith('"Alice"')
    assert headers["call-id"] == "abc@10.0.0.2"
    assert headers["x-voicebot-source"] == "10.0.0.2"
    assert sipmsg.called_number(start, headers) == "+15551234"
    assert sipmsg.uri_user(headers["from"]) == "alice"
    assert sipmsg.sdp_offers_srtp(body) == (True, False)


def test_called_number_falls_back_to_to_header_and_plain_rtp() -> None:
    start, headers, body = sipmsg.split_message(
        "INVITE sip:pbx.example.com SIP/2.0\r\nTo: <sip:200@x>\r\n\r\nm=audio 1 RTP/AVP 0\r\n"
    )
    assert sipmsg.called_number(start, headers) == "200"
    assert sipmsg.sdp_offers_srtp(body) == (False, True)


def test_garbage_never_raises() -> None:
    for raw in ["", "\r\n\r\n", "no colon here\nnor here", "\x00\x01"]:
        start, headers, _ = sipmsg.split_message(raw)
        assert sipmsg.called_number(start, headers) == ""


def test_transfer_target_carries_context_and_cannot_be_used_to_inject_headers() -> None:
    import urllib.parse

    from voicebot.signaling.call import transfer_target

    target = transfer_target(
        "sip:billing@10.0.0.5",
        "c1",
        "asked\r\nX-Evil: 1",
        {"Account": "47192", "Call-ID": "forged", "Note": "a" * 500 + "\n"},
    )
    assert target.startswith("<sip:billing@10.0.0.5?") and target.endswith(">")
    query = urllib.parse.parse_qs(target[1:-1].split("?", 1)[1])
    assert query["X-Voicebot-Call-ID"] == ["c1"]  # the bot's own header is not overridden
    assert query["X-Voicebot-Reason"] == ["asked X-Evil: 1"]  # no CR/LF survives
    assert query["X-Voicebot-Account"] == ["47192"]
    assert query["X-Voicebot-Note"] == ["a" * 200]
