"""Ended calls' pjsua2 objects are dropped late, but never while a newer call holds their slot."""

from __future__ import annotations

from voicebot.signaling.call import VoiceCall
from voicebot.ua.worker import GRAVEYARD_S, buried


class EndedCall(VoiceCall):
    """A VoiceCall as the graveyard sees it (no pjsua endpoint needed): only its slot matters."""

    def __init__(self, slot: int) -> None:  # no super().__init__: nothing of pjsua is touched
        self.slot = slot

    def getId(self) -> int:
        return self.slot


def test_old_objects_go_and_a_call_whose_slot_was_taken_again_stays_until_it_is_free() -> None:
    port = object()  # a bridge port: dropped on time whatever the slots
    old, young = EndedCall(2), EndedCall(3)
    graveyard = [(0.0, port), (0.0, old), (GRAVEYARD_S - 0.5, young)]
    # slot 2 was taken by a new call: dropping the old object would cut that call off
    kept = buried(graveyard, GRAVEYARD_S + 0.1, live_ids={2})
    assert [obj for _, obj in kept] == [old, young]
    # the new call ended too: now the old one can go, the young one when its time is up
    assert [obj for _, obj in buried(kept, GRAVEYARD_S + 0.2, live_ids=set())] == [young]
    assert buried(kept, 2 * GRAVEYARD_S, live_ids=set()) == []
