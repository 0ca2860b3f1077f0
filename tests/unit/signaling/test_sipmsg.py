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
