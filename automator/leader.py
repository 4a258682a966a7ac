"""Leader election through a Lease, so that of two ``automator run`` replicas only one writes.

The rules are client-go's ``leaderelection`` (also what controller-runtime uses), with the
Lease as the only lock:

* The Lease record holds ``holderIdentity``, ``leaseDurationSeconds``, ``acquireTime``,
  ``renewTime`` and ``leaseTransitions``. An empty holder means nobody leads.
* A candidate never trusts the times written in the record (another machine's clock):
  it notes on its *own* monotonic clock when it last saw the record change, and treats
  the lease as expired once it has seen no change for ``leaseDurationSeconds``. Every
  write is a compare-and-swap on ``resourceVersion``: of two candidates taking over at
  once, the apiserver accepts one and answers 409 Conflict to the other.
* The leader renews every ``retry_period``. It may write only while its last successful
  renewal *started* less than ``renew_deadline`` ago; since ``renew_deadline`` is shorter
  than ``lease_duration``, a leader that cannot renew stops writing at least
  ``lease_duration - renew_deadline`` before any follower may take over (that margin is
  what a push already under way has to finish in; the push is also a fast-forward push,
  so a stale leader's push is refused by the Git server).
* On shutdown the leader clears the holder (client-go's ``ReleaseOnCancel``), so the other
  replica takes over at its next poll instead of waiting out the lease.

:class:`Elector` is the decision logic for one candidate, with the clock and the Lease
store passed in (unit-tested with a fake clock and an in-memory store);
:class:`LeaderElection` runs it on a thread. The Kubernetes store is
:mod:`automator.kubelease`.
"""

from __future__ import annotations

import enum
import os
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol

import structlog

from automator.errors import AutomatorError, ClusterError, NotLeader

__all__ = [
    "Attempt",
    "Clock",
    "Elector",
    "LeaderElection",
    "LeaseRecord",
    "LeaseStore",
    "SystemClock",
    "default_identity",
]

log = structlog.get_logger(__name__)

_JITTER = 0.2
"""Followers poll every ``retry_period`` plus up to 20 % so candidates drift apart."""


@dataclass(frozen=True)
class LeaseRecord:
    """The election state a Lease's ``spec`` holds, plus its ``resourceVersion``."""

    holder: str
    duration: int
    acquire_time: datetime | None = None
    renew_time: datetime | None = None
    transitions: int = 0
    version: str = ""
    """The store's optimistic-concurrency token: an update carrying a stale one fails."""


class LeaseStore(Protocol):
    """Read and compare-and-swap one Lease. Writes that lose a race raise
    :class:`~automator.errors.ClusterError` with ``status`` 409."""

    def describe(self) -> str: ...

    def get(self) -> LeaseRecord | None: ...

    def create(self, record: LeaseRecord) -> LeaseRecord: ...

    def update(self, record: LeaseRecord) -> LeaseRecord: ...


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def now(self) -> datetime: ...


class SystemClock:
    """The real clocks: monotonic for every decision, wall time only for the record."""

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)


def default_identity() -> str:
    """``$POD_NAME`` (else the hostname), an underscore and the process id: unique per
    process, so two replicas on one machine (tests, laptops) are still two candidates."""
    return f"{os.environ.get('POD_NAME') or socket.gethostname()}_{os.getpid()}"


class Attempt(enum.Enum):
    """What one acquire-or-renew found."""

    LEADING = "leading"
    """We hold the lease (just acquired or renewed)."""
    FOLLOWING = "following"
    """Someone else holds a lease that has not expired."""
    FAILED = "failed"
    """The store could not be read or written (or a write lost a race): try again."""


class Elector:
    """One candidate's view of the election (not thread-safe: one thread drives it;
    :meth:`may_write` may be called from any thread)."""

    def __init__(
        self,
        store: LeaseStore,
        identity: str,
        *,
        lease_duration: float,
        renew_deadline: float,
        retry_period: float,
        clock: Clock | None = None,
    ) -> None:
        if not lease_duration > renew_deadline > retry_period > 0:
            raise ValueError("need lease_duration > renew_deadline > retry_period > 0")
        self.store = store
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.clock = clock or SystemClock()
        self.observed: LeaseRecord | None = None
        self._observed_at = 0.0
        # Monotonic start of our last successful acquire or renew; None while following.
        self._renewed_at: float | None = None
        self.last_error: str | None = None

    # ------------------------------------------------------------- pure timing rules

    def lease_expired(self, now: float) -> bool:
        """Whether the observed holder's lease has run out, measured on our own clock
        from when we last saw the record change (never from its renewTime)."""
        if self.observed is None:
            return True
        return now >= self._observed_at + self.observed.duration

    def may_write(self, now: float | None = None) -> bool:
        """Whether we lead with a lease valid long enough to push: our last successful
        renewal started less than ``renew_deadline`` ago."""
        renewed = self._renewed_at
        if renewed is None:
            return False
        now = self.clock.monotonic() if now is None else now
        return now - renewed < self.renew_deadline

    def check_may_write(self) -> None:
        """Raise :class:`~automator.errors.NotLeader` unless :meth:`may_write`."""
        if not self.may_write():
            raise NotLeader(
                f"{self.store.describe()}: this replica ({self.identity}) does not hold the "
                f"lease (or could not renew it within {self.renew_deadline:g}s); the leader "
                "pushes instead"
            )

    @property
    def leader(self) -> str:
        """The holder we last observed ("" when nobody)."""
        return self.observed.holder if self.observed is not None else ""

    # ------------------------------------------------------------------------- I/O

    def attempt(self) -> Attempt:
        """One client-go ``tryAcquireOrRenew``: create the Lease if missing, take it when
        free or expired, renew it when ours; never raises for store failures."""
        started = self.clock.monotonic()
        try:
            outcome = self._attempt(started)
        except AutomatorError as exc:
            self._note_error(str(exc))
            return Attempt.FAILED
        self.last_error = None
        if outcome is Attempt.LEADING:
            self._renewed_at = started
        elif outcome is Attempt.FOLLOWING:
            self._renewed_at = None
        return outcome

    def _attempt(self, started: float) -> Attempt:
        wall = self.clock.now()
        current = self.store.get()
        if current is None:
            mine = LeaseRecord(self.identity, int(self.lease_duration), wall, wall, 0)
            try:
                self._observe(self.store.create(mine), started)
            except ClusterError as exc:
                if exc.status == 409:  # another candidate created it first
                    return Attempt.FAILED
                raise
            return Attempt.LEADING
        if self.observed is None or current != self.observed:
            self._observe(current, self.clock.monotonic())
        ours = current.holder == self.identity
        if current.holder and not ours and not self.lease_expired(self.clock.monotonic()):
            return Attempt.FOLLOWING
        if ours:
            wanted = replace(current, duration=int(self.lease_duration), renew_time=wall)
        else:
            wanted = replace(
                current,
                holder=self.identity,
                duration=int(self.lease_duration),
                acquire_time=wall,
                renew_time=wall,
                transitions=current.transitions + 1,
            )
        try:
            self._observe(self.store.update(wanted), started)
        except ClusterError as exc:
            if exc.status == 409:  # someone wrote in between: look again next time
                return Attempt.FAILED
            raise
        return Attempt.LEADING

    def release(self) -> bool:
        """Clear the holder if we hold the lease, so a follower takes over at once
        (client-go's release: holder empty, duration 1s). Call only once nothing
        guarded by the lease is still running. True when released (or not ours)."""
        self._renewed_at = None
        observed = self.observed
        if observed is None or observed.holder != self.identity:
            return True
        wall = self.clock.now()
        freed = replace(observed, holder="", duration=1, acquire_time=wall, renew_time=wall)
        try:
            self._observe(self.store.update(freed), self.clock.monotonic())
        except AutomatorError as exc:
            self._note_error(str(exc))
            return False
        return True

    def _observe(self, record: LeaseRecord, at: float) -> None:
        self.observed, self._observed_at = record, at

    def _note_error(self, message: str) -> None:
        if message != self.last_error:  # once per distinct problem, not every retry
            log.warning("leader_election_failed", lease=self.store.describe(), error=message)
        self.last_error = message


class LeaderElection:
    """Drives an :class:`Elector` on a thread and tells the daemon when leadership starts
    and stops (``on_started``, ``on_stopped``); :attr:`leading` and :meth:`check_may_write`
    are safe from any thread."""

    def __init__(
        self,
        elector: Elector,
        *,
        on_started: Callable[[], None] = lambda: None,
        on_stopped: Callable[[], None] = lambda: None,
        on_observed: Callable[[], None] = lambda: None,
    ) -> None:
        self.elector = elector
        self._on_started, self._on_stopped, self._on_observed = on_started, on_stopped, on_observed
        self._stop = threading.Event()
        self._leading = False
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def leading(self) -> bool:
        """Whether this replica may write now (the elector's clock decides, not this
        thread: a renewal stuck in a slow request cannot extend it)."""
        return self.elector.may_write()

    def check_may_write(self) -> None:
        """The push guard: NotLeader unless we lead with a lease valid long enough."""
        self.elector.check_may_write()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="leader-election", daemon=True)
        self._thread.start()

    def step(self) -> Attempt:
        """One attempt and the transitions it causes (the thread's loop body)."""
        outcome = self.elector.attempt()
        if outcome is not Attempt.FAILED or self.elector.observed is not None:
            self._on_observed()
        if outcome is Attempt.LEADING:
            self._set_leading(True)
        elif outcome is Attempt.FOLLOWING or not self.elector.may_write():
            self._set_leading(False)
        return outcome

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.step()
            period = self.elector.retry_period
            if not self.leading:
                period *= 1 + random.random() * _JITTER
            self._stop.wait(period)

    def _set_leading(self, leading: bool) -> None:
        with self._lock:
            changed, self._leading = self._leading != leading, leading
        if not changed:
            return
        elector = self.elector
        if leading:
            record = elector.observed
            log.info(
                "leader_elected",
                lease=elector.store.describe(),
                identity=elector.identity,
                transitions=record.transitions if record else 0,
            )
            self._on_started()
        else:
            log.warning(
                "leader_lost",
                lease=elector.store.describe(),
                identity=elector.identity,
                leader=elector.leader or None,
            )
            self._on_stopped()

    def stop(self) -> None:
        """Stop the thread (after its current attempt), then release the lease if held.

        Call after every cycle has finished: releasing lets the other replica write."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            was_leading, self._leading = self._leading, False
        ours = was_leading or self.elector.leader == self.elector.identity
        if ours and self.elector.release():
            log.info(
                "leader_released",
                lease=self.elector.store.describe(),
                identity=self.elector.identity,
            )
