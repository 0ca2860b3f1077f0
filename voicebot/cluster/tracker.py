"""The edge's view of the nodes' UA workers (sans-I/O: rows, observed states and time go in, the
dispatcher changes to make come out).

A row is *fresh* while its ``beat`` keeps changing (seen on the edge's monotonic clock, so no clock
is compared across hosts) and *live* while fresh and ``ready``. A newly seen row is not live until its
beat has moved once: rows a dead node left behind never send a call into a timeout. A backend that
was live and goes stale (its node died, hangs, or lost the database) is taken out and its calls are
ended (its callers must not wait in silence for their PBX to time out); one that drains is only
taken out. Rows stale for ``forget_after_s`` are deleted from the table and the dispatcher.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from voicebot.cluster.registry import BackendRow


@dataclass(frozen=True)
class Add:
    uri: str
    duid: str  # keys the call-load table: node/index, stable across restarts of the node
    max_calls: int


@dataclass(frozen=True)
class Remove:
    uri: str


@dataclass(frozen=True)
class SetActive:
    uri: str
    active: bool
    why: str


@dataclass(frozen=True)
class EndCalls:
    uri: str
    why: str


@dataclass(frozen=True)
class Forget:
    uri: str


Action = Add | Remove | SetActive | EndCalls | Forget


@dataclass
class _Seen:
    row: BackendRow
    first_seen: float
    beat_changed: float | None = None  # None: its beat has not moved since we first saw it
    live: bool = False
    served: bool = False  # was live at some point: its calls may be ours


class BackendTracker:
    def __init__(self, stale_after_s: float, forget_after_s: float) -> None:
        if forget_after_s < stale_after_s:
            raise ValueError("forget_after_s must be >= stale_after_s")
        self.stale_after_s = stale_after_s
        self.forget_after_s = forget_after_s
        self.seen: dict[str, _Seen] = {}

    def live(self) -> list[str]:
        return sorted(uri for uri, s in self.seen.items() if s.live)

    def update(
        self, rows: Sequence[BackendRow], now: float, observed: Mapping[str, bool] | None = None
    ) -> list[Action]:
        """The changes that make the dispatcher follow ``rows`` (the whole table, read just now).
        ``observed``: uri -> active as the dispatcher has it (its probes change it too); a backend
        active there that should not be is taken out again."""
        actions: list[Action] = []
        present = {r.uri for r in rows}
        for uri in [u for u in self.seen if u not in present]:  # withdrawn (the node stopped) or forgotten
            del self.seen[uri]
            actions.append(Remove(uri))
        for row in rows:
            seen = self.seen.get(row.uri)
            if seen is None:
                seen = self.seen[row.uri] = _Seen(row=row, first_seen=now)
                actions.append(Add(row.uri, _duid(row), row.max_calls))
            elif row.beat != seen.row.beat:
                seen.beat_changed = now
            seen.row = row
            fresh = seen.beat_changed is not None and now - seen.beat_changed <= self.stale_after_s
            live = fresh and row.state == "ready"
            if live and not seen.live:
                actions.append(SetActive(row.uri, True, "ready"))
                seen.served = True
            elif seen.live and not live:
                why = row.state if fresh else f"no beat for {self.stale_after_s:g} s"
                actions.append(SetActive(row.uri, False, why))
                if not fresh:
                    actions.append(EndCalls(row.uri, f"node {row.node} stopped beating"))
            elif not live and observed is not None and observed.get(row.uri):
                # a probe answered: it is up, but its node does not offer it
                actions.append(SetActive(row.uri, False, "not offered by its node"))
            seen.live = live
            last_sign = seen.beat_changed if seen.beat_changed is not None else seen.first_seen
            if not fresh and now - last_sign > self.forget_after_s:
                actions.append(Forget(row.uri))
        return actions


def _duid(row: BackendRow) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in row.node)[:48]
    return f"{safe}.ua{row.ua_index}"
