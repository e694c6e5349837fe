"""Per-connection rate limits for the live websocket (`dashboard.consumers.LiveConsumer`).

A subscribe or resume makes the server build a full snapshot, so a client looping on them costs the
server far more than it costs the client (3,000 subscribes once made 109 snapshots in 20 s). Each
connection gets token buckets: one for every frame, a smaller one for subscribe/resume, and one for
"strikes" (frames refused by the other two); a client that runs out of strikes is closed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

# A legitimate page sends subscribe (+ resume after a reconnect) once, then a ping every few seconds.
FRAMES_PER_WINDOW = 30
SUBSCRIBES_PER_WINDOW = 5
WINDOW_SECONDS = 10.0
# Refused frames a client may send before it is closed; they are forgiven at this many per minute.
STRIKES = 10
STRIKE_WINDOW_SECONDS = 60.0
# 4000-4999 is the application's range (RFC 6455); 4008 mirrors 1008 "policy violation".
CLOSE_CODE_RATE_LIMITED = 4008


@dataclass
class TokenBucket:
    """`capacity` tokens, refilled continuously at `capacity` per `per_seconds`."""

    capacity: float
    per_seconds: float
    clock: Callable[[], float] = time.monotonic
    tokens: float = field(init=False)
    updated_at: float = field(init=False)

    def __post_init__(self):
        self.tokens = self.capacity
        self.updated_at = self.clock()

    def take(self) -> bool:
        now = self.clock()
        elapsed = max(0.0, now - self.updated_at)
        self.tokens = min(self.capacity, self.tokens + elapsed * self.capacity / self.per_seconds)
        self.updated_at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class ConnectionThrottle:
    """Says whether one connection's next frame may be handled, and when the connection must go."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.frames = TokenBucket(FRAMES_PER_WINDOW, WINDOW_SECONDS, clock)
        self.subscribes = TokenBucket(SUBSCRIBES_PER_WINDOW, WINDOW_SECONDS, clock)
        self.strikes = TokenBucket(STRIKES, STRIKE_WINDOW_SECONDS, clock)

    def admit_frame(self) -> bool:
        return self.frames.take()

    def admit_subscribe(self) -> bool:
        return self.subscribes.take()

    def strike(self) -> bool:
        """Record a refused frame; False when the client has used up its strikes."""
        return self.strikes.take()
