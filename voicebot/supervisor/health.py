"""What `/healthz` and `/readyz` answer, from a snapshot of the supervisor's view (pure: no I/O).

* ``/healthz`` (liveness): the supervisor's loop is turning. A load balancer or Kubernetes restarts
  the node when it is not; a node that is merely full or draining is healthy.
* ``/readyz`` (readiness): a new call would be answered now: not starting, not draining, the edge
  up (when there is one), and at least one ready UA worker with a free call slot. A load balancer
  or the PBX's probe sends calls elsewhere while it is not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

LOOP_STALL_S = 5.0  # the supervisor's loop ticks every 0.25 s; this long without a tick is a hang


@dataclass(frozen=True)
class UAView:
    alive: bool
    ready: bool
    free_slots: int  # call slots it says are free (0 until it says otherwise)


@dataclass(frozen=True)
class Snapshot:
    now: float
    loop_tick: float  # when the supervisor's loop last ran
    draining: bool
    edge_required: bool
    edge_up: bool
    infer_required: bool = False  # a local speech service (inference.mode local)
    infer_ready: bool = False
    uas: list[UAView] = field(default_factory=list)


def liveness(s: Snapshot) -> tuple[int, dict[str, Any]]:
    stalled = s.now - s.loop_tick
    if stalled > LOOP_STALL_S:
        return 503, {"alive": False, "why": [f"the supervisor's loop has not run for {stalled:.1f} s"]}
    return 200, {"alive": True, "ua_workers_alive": sum(u.alive for u in s.uas), "ua_workers": len(s.uas)}


def readiness(s: Snapshot) -> tuple[int, dict[str, Any]]:
    ready = [u for u in s.uas if u.alive and u.ready]
    free = sum(u.free_slots for u in ready)
    why: list[str] = []
    if s.now - s.loop_tick > LOOP_STALL_S:
        why.append("the supervisor's loop is stalled")
    if s.draining:
        why.append("draining")
    if s.edge_required and not s.edge_up:
        why.append("the SIP edge is not up")
    if s.infer_required and not s.infer_ready:
        why.append("the speech service is not ready (loading models, restarting or stalled)")
    if not ready:
        why.append("no UA worker is ready (starting, restarting or draining)")
    elif free == 0:
        why.append("every call slot is taken")
    body: dict[str, Any] = {
        "ready": not why,
        "free_slots": free,
        "ua_workers_ready": len(ready),
        "ua_workers": len(s.uas),
    }
    if why:
        body["why"] = why
    return (503 if why else 200), body
