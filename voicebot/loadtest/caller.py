"""Scripted callers on one pjsua2 endpoint: each call has a media port that speaks the script's
words and listens for the bot's audio (energy per 20 ms frame), and a small state machine run from
the main loop: wait until the bot has spoken and gone quiet, do the next action, measure how long
the bot takes to answer it, and end as the bot ends the call (BYE, REFER) or after the script.

A REFER is the bot handing the caller over: its target is recorded and the REFER refused (603),
as a test caller has nobody to be transferred to; the call then ends, or, when the script says
transfers fail (a busy queue), the caller goes on with it.
"""

from __future__ import annotations

import collections
import contextlib
import time
from typing import Any

import numpy as np
import pjsua2 as pj

from voicebot.loadtest import voice
from voicebot.loadtest.results import CallResult
from voicebot.loadtest.script import CallerScript
from voicebot.media.frames import read_frame, write_frame

VOICED_RMS = 300.0  # a frame of the bot's audio louder than this is speech (its silence is ~0)
HANGOVER_S = 0.3  # quieter this long: the bot's utterance ended
QUIET_S = 1.5  # after the bot spoke and went quiet this long, the caller takes its turn (a pause
# between two sentences of one prompt can pass 0.8 s: a caller answering there barges in)
NO_SPEECH_S = 15.0  # the bot said nothing this long: the caller goes on anyway
FINAL_WAIT_S = 20.0  # after the script, wait this long for the bot to end the call
KEY_S = 0.16  # one RFC 4733 digit, about
BARGE_AFTER_S = 0.8  # a barge-in starts this long into the bot's words
BARGE_GIVE_UP_S = 5.0  # the bot still talking this long after the caller began: it did not stop


class ProbePort(pj.AudioMediaPort):  # type: ignore[misc]
    """Speaks queued caller audio and notes when the bot's audio starts and stops (media thread)."""

    def __init__(self, sample_rate: int) -> None:
        super().__init__()
        self.frame_len = sample_rate // 50 * 2
        self.silence = bytes(self.frame_len)
        self.outgoing: collections.deque[bytes] = collections.deque()
        self.onsets: list[float] = []  # appended by the media thread, read by the main thread
        self.last_voiced = 0.0
        self.speaking = False
        fmt = pj.MediaFormatAudio()
        fmt.init(pj.PJMEDIA_FORMAT_PCM, sample_rate, 1, 20000, 16)
        self.createPort("loadtest", fmt)

    def say(self, pcm: bytes) -> None:
        n = self.frame_len
        for i in range(0, len(pcm), n):
            chunk = pcm[i : i + n]
            self.outgoing.append(chunk + bytes(n - len(chunk)))

    def onFrameRequested(self, frame: Any) -> None:
        write_frame(frame, self.outgoing.popleft() if self.outgoing else self.silence)
        frame.type = pj.PJMEDIA_FRAME_TYPE_AUDIO  # else the bridge takes it for no frame at all

    def onFrameReceived(self, frame: Any) -> None:
        pcm = read_frame(frame)
        if not pcm:
            return
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
        rms = float(np.sqrt(np.mean(samples * samples)))
        now = time.monotonic()
        if rms >= VOICED_RMS:
            if not self.speaking:
                self.onsets.append(now)
                self.speaking = True
            self.last_voiced = now
        elif self.speaking and now - self.last_voiced > HANGOVER_S:
            self.speaking = False


class ScriptedCall(pj.Call):  # type: ignore[misc]
    def __init__(
        self, acc: pj.Account, script: CallerScript, sample_rate: int, max_call_s: float, voice: str
    ) -> None:
        super().__init__(acc)
        self.voice = voice
        self.script = script
        self.sample_rate = sample_rate
        self.max_call_s = max_call_s
        expected = script.expect.outcome + (f" {script.expect.target}" if script.expect.target else "")
        self.result = CallResult(script.name, expected=expected)
        self.port: ProbePort | None = None
        self.media: Any = None
        self.invited_at = time.monotonic()
        self.answered_at: float | None = None
        self.ended = False
        self.ended_at = 0.0
        self.by_us = False
        self.next_action = 0
        self.turn_from = 0.0  # the bot's audio after this counts as its answer to our last action
        self.gap_from: float | None = None  # when our last key / word ended (a turn gap is pending)
        self.refer = ""
        self.refer_handled = False
        self.script_done_at: float | None = None
        self.barge_at: float | None = None  # when our words over the bot's began (a stop is pending)

    # --- pjsua2 callbacks (main thread, inside libHandleEvents) ---------------------------------
    def onCallState(self, prm: Any) -> None:
        info = self.getInfo()
        now = time.monotonic()
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED and self.answered_at is None:
            self.answered_at = self.turn_from = now
            self.result.answered, self.result.sip_code = True, 200
            self.result.setup_ms = round((now - self.invited_at) * 1000, 1)
        elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED and not self.ended:
            self.ended, self.ended_at = True, now
            self.media = None  # pjsua2 has freed the call's audio media by now: never touch it again
            if self.answered_at is None:
                self.result.sip_code = int(info.lastStatusCode)
                self.result.outcome = "failed"
                self.result.why = f"not answered: {info.lastStatusCode} {info.lastReason}"
            elif not self.result.outcome:
                self.result.outcome = "hangup"  # the bot ended it
            self._finish()

    def onCallMediaState(self, prm: Any) -> None:
        if self.media is not None:
            return
        info = self.getInfo()
        for i, m in enumerate(info.media):
            if m.type == pj.PJMEDIA_TYPE_AUDIO and m.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                self.media = self.getAudioMedia(i)
                self.port = ProbePort(self.sample_rate)
                self.media.startTransmit(self.port)
                self.port.startTransmit(self.media)
                return

    def onCallTransferRequest(self, prm: Any) -> None:
        self.refer = str(prm.dstUri)
        prm.statusCode = 603  # nobody to be transferred to: refused, and noted

    # --- the script (main loop) --------------------------------------------------------------
    def tick(self, now: float) -> None:
        if self.ended:
            return
        if self.answered_at is None:
            if now - self.invited_at > 30.0:
                self._end("failed", "no answer in 30 s")
            return
        port = self.port
        if port is None:
            return
        self._measure(port, now)
        if self.refer and not self.refer_handled:
            self.refer_handled = True
            self.result.target = self.refer
            if not self.script.transfers_fail:
                self._end("transfer")
                return
        if now - self.answered_at > self.max_call_s:
            self._end("timeout", f"still up after {self.max_call_s:.0f} s")
            return
        actions = self.script.actions
        if self.next_action >= len(actions):
            self.script_done_at = self.script_done_at or now
            if now - self.script_done_at > FINAL_WAIT_S:
                self._end("timeout", f"the bot did not end the call {FINAL_WAIT_S:.0f} s after the script")
            return
        action = actions[self.next_action]
        if port.outgoing or not (
            self._barge_now(port, now) if action.barges_in else self._bot_done(port, now)
        ):
            return
        self.next_action += 1
        self.turn_from = now
        if action.kind == "keys":
            prm = pj.CallSendDtmfParam()
            prm.digits = action.value
            prm.method = pj.PJSUA_DTMF_METHOD_RFC2833
            with contextlib.suppress(pj.Error):
                self.sendDtmf(prm)
            # RFC 4733 tells the bot of a digit as it starts: measured from the last digit's start
            self.gap_from = now + KEY_S * (len(action.value) - 1)
        elif action.kind != "silence":
            pcm = voice.audio(
                action.kind, action.value, self.sample_rate, self.voice
            )  # made before the calls
            port.say(pcm)
            self.gap_from = now + len(pcm) / (2 * self.sample_rate) - 0.2  # less the trailing silence
            if action.barges_in and port.speaking:
                self.barge_at = now
                self.result.barge_ins += 1
        else:
            self.gap_from = None  # silence: the bot's next words answer no turn of ours

    def _bot_done(self, port: ProbePort, now: float) -> bool:
        """Has the bot spoken since our last action and gone quiet (or said nothing for long)?"""
        spoke = any(t >= self.turn_from for t in port.onsets)
        if spoke:
            return not port.speaking and now - port.last_voiced >= QUIET_S
        return now - self.turn_from >= NO_SPEECH_S

    def _barge_now(self, port: ProbePort, now: float) -> bool:
        """Time to talk over the bot: ``BARGE_AFTER_S`` into its words since our last action (or, when
        it has already finished them, as a plain turn: no stop to measure)."""
        onset = next((t for t in port.onsets if t >= self.turn_from), None)
        if onset is not None and port.speaking:
            return now - onset >= BARGE_AFTER_S
        return self._bot_done(port, now)

    def _measure(self, port: ProbePort, now: float) -> None:
        assert self.answered_at is not None
        if self.barge_at is not None:
            if not port.speaking:  # the bot's audio ended: its last voiced frame is when it stopped
                self.result.barge_stops_ms.append(round((port.last_voiced - self.barge_at) * 1000, 1))
                self.barge_at = None
            elif now - self.barge_at > BARGE_GIVE_UP_S:
                self.result.barge_missed += 1
                self.barge_at = None
        if self.result.greeting_ms is None and port.onsets:
            self.result.greeting_ms = round((port.onsets[0] - self.answered_at) * 1000, 1)
        if self.gap_from is not None:
            # The bot was quiet when we acted, so its first sound since is its answer; before the end
            # of our words (negative) it talked over the caller
            onset = next((t for t in port.onsets if t >= self.turn_from), None)
            if onset is not None:
                self.result.turn_gaps_ms.append(round((onset - self.gap_from) * 1000, 1))
                self.gap_from = None

    def _end(self, outcome: str, why: str = "") -> None:
        self.result.outcome = outcome
        if why:
            self.result.why = why
        self.by_us = True
        with contextlib.suppress(pj.Error):
            self.hangup(pj.CallOpParam(True))

    def _finish(self) -> None:
        r, expect = self.result, self.script.expect
        r.seconds = round(self.ended_at - self.invited_at, 2)
        if self.refer and not r.target:
            r.target = self.refer
        if not r.answered:
            r.ok = False
        elif expect.outcome == "transfer" and (r.outcome != "transfer" or expect.target not in r.target):
            r.ok = False
            r.why = r.why or f"expected a transfer to {expect.target!r}, got {r.outcome} {r.target}".strip()
        elif expect.outcome == "hangup" and r.outcome != "hangup":
            r.ok = False
            r.why = r.why or f"expected the bot to hang up, got {r.outcome}"
        else:
            # With no expected ending, the caller hanging up after the script is fine
            r.ok = r.outcome != "failed" and (expect.outcome == "any" or r.outcome != "timeout")

    def release_media(self) -> None:
        """Unhook and drop the port (before the library is destroyed)."""
        if self.port is not None and self.media is not None:  # still up
            with contextlib.suppress(pj.Error):
                self.media.stopTransmit(self.port)
                self.port.stopTransmit(self.media)
        self.port = self.media = None
