"""Failed resident queries per client: the brake on guessing ID numbers (API.md)."""

from __future__ import annotations

import math
import time

from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter


class FailureLimiter:
    """Counts failures per client in a moving one-minute window (per process)."""

    def __init__(self, per_minute: int) -> None:
        self.item = RateLimitItemPerMinute(per_minute)
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    def retry_after(self, client: str) -> int | None:
        """Seconds to wait when ``client`` has used up its failures, else None."""
        if self.limiter.test(self.item, client):
            return None
        reset_at, _ = self.limiter.get_window_stats(self.item, client)
        return max(1, math.ceil(reset_at - time.time()))

    def record_failure(self, client: str) -> None:
        self.limiter.hit(self.item, client)
