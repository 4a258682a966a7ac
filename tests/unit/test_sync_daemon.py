"""The sync daemon's triggering, with a stand-in synchronizer whose syncs the test holds
open: a push hook that arrives while a sync runs must make exactly one more sync, never
an overlapping one and never none."""

from __future__ import annotations

import threading
from typing import Any, cast

import httpx

from automator.config import settings_from_mapping
from automator.daemon import run_sync_daemon
from automator.sync import Synchronizer, SyncReport
from tests.support.process import free_port, wait_until


class _HeldSynchronizer:
    """Each run() blocks until the test releases it; counts runs and overlaps."""

    def __init__(self) -> None:
        self.runs = 0
        self.active = 0
        self.overlapped = False
        self.started = threading.Semaphore(0)
        self.release = threading.Semaphore(0)
        self._lock = threading.Lock()

    def run(self, *, dry_run: bool = False) -> SyncReport:
        with self._lock:
            self.runs += 1
            self.active += 1
            self.overlapped |= self.active > 1
        self.started.release()
        self.release.acquire(timeout=60)
        with self._lock:
            self.active -= 1
        return SyncReport(revision="abc", result="succeeded")

    def interrupt(self) -> None:
        self.release.release()


def _push(port: int, ref: str) -> httpx.Response:
    return httpx.post(f"http://127.0.0.1:{port}/hooks/git", json={"ref": ref}, timeout=10)


def test_a_push_during_a_sync_makes_exactly_one_more_sync_and_never_an_overlapping_one() -> None:
    port = free_port()
    settings = settings_from_mapping(
        {
            "git": {"url": "file:///dev/null", "branch": "main"},
            "sync": {"interval": "1h", "listen": f"127.0.0.1:{port}"},
        }
    )
    fake = _HeldSynchronizer()
    stop = threading.Event()
    daemon = threading.Thread(
        target=run_sync_daemon,
        args=(settings, cast(Synchronizer, cast(Any, fake))),
        kwargs={"stop": stop},
    )
    daemon.start()
    try:
        assert fake.started.acquire(timeout=60)  # the first, scheduled sync is running
        wait_until(lambda: _healthz(port), timeout=30, what="the sync daemon's endpoint")
        for _ in range(3):  # three pushes while it runs: one more sync, not three
            answer = _push(port, "refs/heads/main")
            assert answer.json() == {"sync": True, "branch": "main"}
        assert _push(port, "refs/heads/other").json() == {"sync": False, "branch": "other"}
        fake.release.release()
        assert fake.started.acquire(timeout=60)  # the hook's sync, without an interval
        fake.release.release()
        wait_until(lambda: fake.active == 0, timeout=30, what="the second sync to end")
        assert fake.runs == 2
        assert not fake.overlapped
    finally:
        stop.set()
        fake.release.release()
        daemon.join(timeout=60)


def _healthz(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False
