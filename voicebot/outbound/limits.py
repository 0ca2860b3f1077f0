"""Per-trunk outbound limits (pure): concurrent calls and calls per second, the other toll-fraud
guard. The dialer asks before each call; the answer is "go" or how long to wait."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TrunkLimit:
    max_calls: int
    cps: float
    _tokens: float = field(default=1.0, init=False)
    _at: float = field(default=0.0, init=False)

    def wait_s(self, active: int, now: float) -> float:
        """0 when a call may start now (and it is counted), else seconds to wait before asking again."""
        if active >= self.max_calls:
            return 1.0  # a slot frees when a call ends
        self._tokens = min(1.0, self._tokens + (now - self._at) * self.cps) if self._at else 1.0
        self._at = now
        if self._tokens < 1.0:
            return (1.0 - self._tokens) / self.cps
        self._tokens -= 1.0
        return 0.0
