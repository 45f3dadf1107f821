"""Per-key token buckets and a short-lived cache of verified keys.

Both live in the server process: with several uvicorn workers each has its own buckets, so the
effective rate is workers x rate (run one worker per host, or set the rate accordingly).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from agrisat.store.keys import ApiKey


class TokenBuckets:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._state: dict[str, tuple[float, float]] = {}  # key_id -> (tokens, last refill time)

    def take(self, key_id: str, rate: float, burst: int) -> float:
        """Take one token; 0.0 if granted, else the seconds until one is available."""
        with self._lock:
            now = self._clock()
            tokens, last = self._state.get(key_id, (float(burst), now))
            tokens = min(float(burst), tokens + (now - last) * rate)
            if tokens >= 1.0:
                self._state[key_id] = (tokens - 1.0, now)
                return 0.0
            self._state[key_id] = (tokens, now)
            return (1.0 - tokens) / rate


class KeyCache:
    """Verified keys for ``ttl`` seconds, so a request costs one hash, not one query; a revoked
    key stops working within ``ttl``. Only valid keys are cached (bounded by the keys that exist)."""

    def __init__(self, ttl: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl, self._clock = ttl, clock
        self._lock = threading.Lock()
        self._keys: dict[str, tuple[ApiKey, float]] = {}

    def get(self, presented: str) -> ApiKey | None:
        with self._lock:
            hit = self._keys.get(presented)
            if hit and hit[1] > self._clock():
                return hit[0]
            self._keys.pop(presented, None)
            return None

    def put(self, presented: str, key: ApiKey) -> None:
        with self._lock:
            if len(self._keys) > 10_000:
                self._keys.clear()
            self._keys[presented] = (key, self._clock() + self.ttl)
