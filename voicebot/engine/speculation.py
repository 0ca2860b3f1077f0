"""Which speculative decode may stand for a caller's turn (sans-I/O bookkeeping for the call worker).

The worker decodes the turn so far at every pause (voicebot/engine/listener.py) so that the transcript
is ready when the turn ends. A decode stands for the turn only if the caller has said nothing since
the pause it was cut at: they may go on while the decoder is busy ("sales, ... no, support"), and then
that decode is a guess about a sentence that is not finished. Turn numbers keep a slow decode of an
earlier turn from answering a later one, and ``take`` lets exactly one transcript answer each turn.
"""

from __future__ import annotations

from dataclasses import dataclass

from voicebot.asr.base import Transcript


@dataclass
class Speculation:
    turn: int = 0
    answered: bool = False
    covered: int | None = None  # bytes of turn audio at the newest pause; None while the caller speaks
    guess: tuple[int, Transcript] | None = None  # (bytes decoded, transcript) of this turn

    def started(self) -> int:
        """A new turn; returns its number."""
        self.turn += 1
        self.answered, self.covered, self.guess = False, None, None
        return self.turn

    def paused(self, audio_bytes: int) -> None:
        self.covered = audio_bytes

    def resumed(self) -> None:
        self.covered = None

    def segmented(self) -> None:
        """A long turn was cut (listener.TurnSegment): what was decoded so far is in that segment,
        and pauses count from the cut on."""
        self.covered, self.guess = None, None

    def current(self, turn: int) -> bool:
        """Is ``turn`` the open, unanswered turn?"""
        return turn == self.turn and not self.answered

    def guessed(self, turn: int, audio_bytes: int, result: Transcript) -> bool:
        """Keep a speculative decode of ``turn``; True if it covers everything the caller said so far
        (nothing since its pause), False if it is stale or of another turn."""
        if not self.current(turn):
            return False
        self.guess = (audio_bytes, result)
        return audio_bytes == self.covered

    def final(self) -> Transcript | None:
        """After the turn ended: the guess that covers the whole turn, if one was made."""
        if self.guess is not None and self.guess[0] == self.covered:
            return self.guess[1]
        return None

    def take(self, turn: int) -> bool:
        """Answer ``turn``; False if it is not the open turn or already has its answer."""
        if not self.current(turn):
            return False
        self.answered = True
        return True
