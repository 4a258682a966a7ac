"""Per-registry politeness: a token bucket that slows down when told to, and counters.

Why a bucket per registry (and not one for the client): registries have independent
limits, and one that throttles us must not slow the scan of the others. Why *reserve*
semantics (take a token now, possibly going negative, and return how long to wait): the
waiting happens outside the lock, each caller gets its own slot in the future, and the
arithmetic depends only on the injected clock, so tests assert exact waits.

Adaptive slowdown (AIMD, as TCP does it): a 429 halves the effective rate and pauses the
whole registry until its ``Retry-After``; each later success adds back a twentieth of the
ceiling (the configured rate, or the rate we were sending at when first throttled), so a
halving is recovered after twenty successes and a registry that keeps answering 429 is
approached from below instead of hammered.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["RateLimiter", "RegistryStats", "StatsCounter"]

MIN_RATE = 0.1
"""Requests per second the adaptive slowdown never goes below (one every ten seconds)."""
ASSUMED_RATE = 10.0
"""The rate assumed for an unlimited registry throttled before we could measure ours."""
RECOVERY_STEP = 0.05
"""Fraction of the ceiling a success adds back to a reduced rate."""
_WINDOW = 32


class RateLimiter:
    """Token bucket of ``rate`` requests per second (``None``: unlimited) and ``burst`` size.

    Thread-safe. ``reserve()`` before each request; ``throttled()`` on a 429;
    ``succeeded()`` after any answer that is neither a 429 nor a server error.
    """

    def __init__(self, rate: float | None, burst: int, clock: Callable[[], float]) -> None:
        self._configured = rate
        self._burst = float(max(1, burst))
        self._clock = clock
        self._lock = threading.Lock()
        self._limit: float | None = None  # reduced rate after a 429; None = not reduced
        self._ceiling: float | None = rate
        self._tokens = self._burst
        self._updated = clock()
        self._paused_until = 0.0
        self._sent: deque[float] = deque(maxlen=_WINDOW)

    @property
    def rate(self) -> float | None:
        """The rate in force now (reduced after throttling), or None when unlimited."""
        with self._lock:
            return self._rate()

    def _rate(self) -> float | None:
        return self._limit if self._limit is not None else self._configured

    def reserve(self) -> float:
        """Take a slot; seconds the caller must wait before sending (0 when none)."""
        with self._lock:
            now = self._clock()
            self._sent.append(now)
            wait = max(0.0, self._paused_until - now)
            rate = self._rate()
            if rate is None:
                return wait
            self._refill(now, rate)
            self._tokens -= 1.0
            if self._tokens < 0:
                wait = max(wait, -self._tokens / rate)
            return wait

    def paused_for(self) -> float:
        """Seconds until the registry-wide pause set by a 429 ends (0 when none)."""
        with self._lock:
            return max(0.0, self._paused_until - self._clock())

    def throttled(self, pause: float) -> None:
        """A 429: pause every request to this registry for ``pause`` s and halve the rate."""
        with self._lock:
            now = self._clock()
            self._paused_until = max(self._paused_until, now + pause)
            current = self._rate()
            if current is None:
                current = self._observed() or ASSUMED_RATE
                self._ceiling = current
                self._tokens = 0.0
            else:
                self._refill(now, current)  # what the old rate earned until now
            self._updated = now
            self._limit = max(MIN_RATE, current / 2)
            self._tokens = min(self._tokens, 0.0)

    def succeeded(self) -> None:
        """Recover a reduced rate gradually; back to the configured one at the ceiling."""
        with self._lock:
            if self._limit is None or self._ceiling is None:
                return
            self._refill(self._clock(), self._limit)
            self._limit += self._ceiling * RECOVERY_STEP
            if self._limit >= self._ceiling:
                self._limit = None
                if self._configured is None:
                    self._ceiling = None

    def _refill(self, now: float, rate: float) -> None:
        self._tokens = min(self._burst, self._tokens + (now - self._updated) * rate)
        self._updated = now

    def _observed(self) -> float | None:
        """Requests per second over the recent window, when it can be measured."""
        if len(self._sent) < 2:
            return None
        span = self._sent[-1] - self._sent[0]
        return (len(self._sent) - 1) / span if span > 0 else None


@dataclass(frozen=True)
class RegistryStats:
    """What the client did for one registry since it was built (a snapshot).

    ``requests`` counts HTTP exchanges sent (token fetches, redirects and retries
    included), ``retries`` the exchanges repeated after a failure, ``throttle_wait_seconds``
    the time spent waiting for the rate limit or a 429's pause, ``tags_seen`` the distinct
    tags received by ``list_tags`` (before any ``max_tags`` cut).
    """

    requests: int = 0
    retries: int = 0
    throttle_wait_seconds: float = 0.0
    tags_seen: int = 0


class StatsCounter:
    """Mutable, thread-safe counterpart of :class:`RegistryStats`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests = 0
        self._retries = 0
        self._throttle = 0.0
        self._tags = 0

    def add(
        self, *, requests: int = 0, retries: int = 0, throttle: float = 0.0, tags: int = 0
    ) -> None:
        with self._lock:
            self._requests += requests
            self._retries += retries
            self._throttle += throttle
            self._tags += tags

    def snapshot(self) -> RegistryStats:
        with self._lock:
            return RegistryStats(self._requests, self._retries, self._throttle, self._tags)
