"""An in-memory Lease store with the apiserver's optimistic concurrency, and a fake clock,
for leader-election tests that need no cluster."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from automator.errors import ClusterError, ClusterUnavailable
from automator.leader import LeaseRecord

__all__ = ["FakeClock", "MemoryStore"]


class FakeClock:
    def __init__(self) -> None:
        self.mono = 1000.0
        self.wall = datetime(2026, 1, 1, tzinfo=UTC)

    def monotonic(self) -> float:
        return self.mono

    def now(self) -> datetime:
        return self.wall + timedelta(seconds=self.mono - 1000.0)

    def advance(self, seconds: float) -> None:
        self.mono += seconds


class MemoryStore:
    """One Lease, with the apiserver's optimistic concurrency."""

    def __init__(self) -> None:
        self.record: LeaseRecord | None = None
        self.down = False
        self.writes = 0
        self._version = 0

    def describe(self) -> str:
        return "Lease test/automator"

    def get(self) -> LeaseRecord | None:
        self._check()
        return self.record

    def create(self, record: LeaseRecord) -> LeaseRecord:
        self._check()
        if self.record is not None:
            raise ClusterError("already exists", status=409, reason="AlreadyExists")
        return self._store(record)

    def update(self, record: LeaseRecord) -> LeaseRecord:
        self._check()
        if self.record is None or record.version != self.record.version:
            raise ClusterError("the object has been modified", status=409, reason="Conflict")
        return self._store(record)

    def seed(self, record: LeaseRecord) -> None:
        """A record some other process wrote."""
        self._store(record)

    def _store(self, record: LeaseRecord) -> LeaseRecord:
        self._version += 1
        self.writes += 1
        self.record = replace(record, version=str(self._version))
        return self.record

    def _check(self) -> None:
        if self.down:
            raise ClusterUnavailable("apiserver unreachable")
