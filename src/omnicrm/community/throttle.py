"""A sliding-window rate limit for the public walk-in page: so many attempts per key (a client address, a venue
code) per window, in this process. It keeps no state in the store, so a refused check-in still leaves it unchanged;
behind several server processes each keeps its own count."""

from __future__ import annotations

import threading
import time
from collections import deque

__all__ = ["Throttle"]


class Throttle:
    """At most ``limit`` attempts per key in any ``window`` seconds."""

    def __init__(self, limit: int, window: float, *, max_keys: int = 100_000) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def wait(self, key: str, now: float | None = None) -> float:
        """Count an attempt under ``key`` and return 0, or, when over the limit, the seconds to wait (not counted)."""
        at = time.monotonic() if now is None else now
        with self._lock:
            hits = self._hits.get(key)
            if hits is None:
                if len(self._hits) >= self.max_keys:
                    self._forget(at)
                hits = self._hits[key] = deque()
            while hits and hits[0] <= at - self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                return max(hits[0] + self.window - at, 0.001)
            hits.append(at)
            return 0.0

    def _forget(self, at: float) -> None:
        """Drop keys with no attempt in the window (and, if still full, the oldest half)."""
        for key in [k for k, h in self._hits.items() if not h or h[-1] <= at - self.window]:
            del self._hits[key]
        if len(self._hits) >= self.max_keys:
            for key in sorted(self._hits, key=lambda k: self._hits[k][-1])[: len(self._hits) // 2]:
                del self._hits[key]
