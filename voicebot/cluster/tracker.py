"""The edge's view of the nodes' UA workers (sans-I/O: rows, observed states and time go in, the
dispatcher changes to make come out).

A row is *fresh* while its ``beat`` keeps changing (seen on the edge's monotonic clock, so no clock
is compared across hosts) and *live* while fresh and ``ready``. A newly seen row is not live until its
beat has moved once: rows a dead node left behind never send a call into a timeout.

Taking a UA worker out is cheap and done at once; ending its calls (a BYE to both sides) is done
only when they are surely dead:

* its node says it is ``starting`` again after it was live: the UA worker died or hung and was
  restarted, and its calls died with it;
* its node stopped beating (killed, hung, host lost, or only cut off from the database) *and* the
  UA worker has not answered the edge's OPTIONS probes for ``end_grace_s`` since: a node that only
  lost the database keeps its calls (they are not live-ended on a guess).

After the table could not be read for a while, every known row gets a fresh start (the nodes may
not have written since): a database outage never looks like every node dying at once. Rows stale
for ``forget_after_s`` are deleted from the table and the dispatcher. Each update also reconciles the
dispatcher with what it reports (a failed ``dispatcher.add``, or a Kamailio restarted under us).
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
    node: str = ""
    ua_index: int = 0


@dataclass(frozen=True)
class Forget:
    uri: str
    beat: int  # only if the row still has this beat (its node did not come back meanwhile)


Action = Add | Remove | SetActive | EndCalls | Forget


@dataclass
class _Seen:
    row: BackendRow
    first_seen: float
    beat_changed: float | None = None  # None: its beat has not moved since we first saw it
    live: bool = False
    fresh: bool = False
    served: bool = False  # was live since its calls were last ended: it may have calls
    silent_since: float | None = None  # stale and served: since when no probe has answered


class BackendTracker:
    def __init__(
        self,
        stale_after_s: float,
        forget_after_s: float,
        end_grace_s: float = 3.0,
        outage_s: float | None = None,
    ) -> None:
        """``end_grace_s``: how long a silent node's UA worker must also fail the probes before its
        calls are ended (a probe interval and its timeout); ``outage_s``: a gap between two reads
        longer than this was the table being unreadable (default: half of ``stale_after_s``)."""
        if forget_after_s < stale_after_s:
            raise ValueError("forget_after_s must be >= stale_after_s")
        self.stale_after_s = stale_after_s
        self.forget_after_s = forget_after_s
        self.end_grace_s = end_grace_s
        self.outage_s = outage_s if outage_s is not None else stale_after_s / 2
        self.seen: dict[str, _Seen] = {}
        self.last_read: float | None = None

    def live(self) -> list[str]:
        return sorted(uri for uri, s in list(self.seen.items()) if s.live)

    def update(
        self, rows: Sequence[BackendRow], now: float, observed: Mapping[str, bool] | None = None
    ) -> list[Action]:
        """The changes that make the dispatcher follow ``rows`` (the whole table, read just now).
        ``observed``: uri -> active as the dispatcher has it (its probes change it too), None when
        it could not be read."""
        if self.last_read is not None and now - self.last_read > self.outage_s:
            for s in self.seen.values():  # the table was unreadable: nobody's silence is known
                if s.beat_changed is not None:
                    s.beat_changed = now
        self.last_read = now
        actions: list[Action] = []
        present = {r.uri for r in rows}
        gone = [u for u in self.seen if u not in present]  # withdrawn (the node stopped) or forgotten
        for uri in gone:
            del self.seen[uri]
            actions.append(Remove(uri))
        if observed is not None:  # in the dispatcher but in no row: a remove that failed
            actions += [Remove(uri) for uri in observed if uri not in present and uri not in gone]
        for row in rows:
            actions += self._follow(row, now, observed)
        return actions

    def _follow(self, row: BackendRow, now: float, observed: Mapping[str, bool] | None) -> list[Action]:
        out: list[Action] = []
        seen = self.seen.get(row.uri)
        if seen is not None and (seen.row.node, seen.row.ua_index, seen.row.max_calls) != (
            row.node,
            row.ua_index,
            row.max_calls,
        ):
            # another node (or the same one with other call slots) took this address: start over
            if seen.served:
                out.append(EndCalls(row.uri, "its address was taken by another UA worker", *_who(seen.row)))
            out.append(Remove(row.uri))
            seen = None
        if seen is None:
            seen = self.seen[row.uri] = _Seen(row=row, first_seen=now)
            out.append(Add(row.uri, _duid(row), row.max_calls))
        elif observed is not None and row.uri not in observed:  # an add that failed, or a new Kamailio
            out.append(Add(row.uri, _duid(row), row.max_calls))
            seen.live = False
        if row.beat != seen.row.beat:
            seen.beat_changed = now
        previous = seen.row
        seen.row = row
        fresh = seen.beat_changed is not None and now - seen.beat_changed <= self.stale_after_s
        live = fresh and row.state == "ready"
        answering = bool(observed and observed.get(row.uri))
        if live and not seen.live:
            out.append(SetActive(row.uri, True, "ready"))
            seen.served, seen.silent_since = True, None
        elif seen.live and not live:
            out.append(
                SetActive(row.uri, False, row.state if fresh else f"no beat for {self.stale_after_s:g} s")
            )
        elif not live and answering:
            # a probe answered: it is up, but its node does not offer it (or is silent)
            out.append(SetActive(row.uri, False, "not offered by its node"))
        if seen.served and fresh and row.state == "starting" and previous.state != "starting":
            out.append(
                EndCalls(row.uri, f"UA worker {row.ua_index} of node {row.node} restarted", *_who(row))
            )
            seen.served = False
        elif seen.served and not fresh:
            if seen.fresh or seen.silent_since is None:
                seen.silent_since = now
            if answering:
                seen.silent_since = now  # alive, only its node is silent (e.g. cut off from the database)
            elif now - seen.silent_since >= self.end_grace_s:
                out.append(
                    EndCalls(row.uri, f"node {row.node} stopped beating and does not answer", *_who(row))
                )
                seen.served, seen.silent_since = False, None
        seen.live, seen.fresh = live, fresh
        last_sign = seen.beat_changed if seen.beat_changed is not None else seen.first_seen
        if not fresh and now - last_sign > self.forget_after_s:
            out.append(Forget(row.uri, row.beat))
        return out


def _who(row: BackendRow) -> tuple[str, int]:
    return row.node, row.ua_index


def _duid(row: BackendRow) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in row.node)[:48]
    return f"{safe}.ua{row.ua_index}"
