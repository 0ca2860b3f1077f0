from __future__ import annotations

import pytest

from voicebot.errors import ProtocolError
from voicebot.ipc import proto


def test_control_round_trip() -> None:
    msg = proto.TransferRequest(queue="sales", reason="caller asked")
    assert proto.decode(proto.encode_control(msg)) == msg


def test_audio_round_trip() -> None:
    pcm = bytes(range(200)) * 2
    assert proto.decode(proto.encode_audio(pcm)) == pcm


@pytest.mark.parametrize(
    "data, why",
    [
        (b"", "empty"),
        (b"Z123", "unknown IPC message kind"),
        (b"A\x00", "odd length"),
        (b"C{not json", "invalid control"),
        (b'C{"type": "transfer", "queue": ""}', "invalid control"),
        (b'C{"type": "dtmf", "digit": "12"}', "invalid control"),
        (b'C{"type": "exec", "cmd": "rm -rf /"}', "invalid control"),
        (b'C{"type": "hangup", "reason": "x", "extra": 1}', "invalid control"),
        (b"A" + b"\x00" * (proto.MAX_MESSAGE + 2), "exceeds"),
    ],
)
def test_bad_messages_raise_protocol_error(data: bytes, why: str) -> None:
    with pytest.raises(ProtocolError, match=why):
        proto.decode(data)


def test_transfer_context_is_bounded_whatever_the_dialplan_rendered() -> None:
    msg = proto.TransferRequest(queue="billing", reason="r" * 5000, headers={"Note": "x" * 100_000})
    assert len(msg.reason) == 200 and len(msg.headers["Note"]) == proto.HEADER_VALUE_MAX
    assert len(proto.encode_control(msg)) < proto.MAX_MESSAGE
