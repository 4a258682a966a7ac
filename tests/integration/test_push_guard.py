"""With leader election on, the engine asks the lease before every push: a replica whose
lease is no longer valid long enough commits nothing to the remote (real git, real registry)."""

from __future__ import annotations

from pathlib import Path

import pytest

from automator.engine import Engine
from automator.leader import Attempt, Elector
from tests.integration.test_engine import make_world
from tests.support.git import git
from tests.support.lease import FakeClock, MemoryStore
from tests.support.registry import RegistryServer

pytestmark = pytest.mark.integration


def test_a_leader_that_could_not_renew_in_time_pushes_nothing_until_it_renews(
    tmp_path: Path, registry: RegistryServer
) -> None:
    settings, bare, _ = make_world(tmp_path, registry)
    clock = FakeClock()
    elector = Elector(
        MemoryStore(), "a", lease_duration=15, renew_deadline=10, retry_period=2, clock=clock
    )
    assert elector.attempt() is Attempt.LEADING
    engine = Engine.from_settings(settings, before_push=elector.check_may_write)
    before = git("rev-parse", "main", cwd=bare).strip()
    try:
        clock.advance(10)  # no renewal for renew_deadline: stop writing
        stale = engine.run_once()
        assert git("rev-parse", "main", cwd=bare).strip() == before
        assert stale.commit is None
        (failure,) = stale.failures
        assert failure.transient
        assert "does not hold the lease" in failure.message

        assert elector.attempt() is Attempt.LEADING
        fresh = engine.run_once()
    finally:
        engine.close()
    assert fresh.ok, fresh.failures
    assert fresh.commit == git("rev-parse", "main", cwd=bare).strip()
    assert git("rev-list", "--count", f"{before}..main", cwd=bare).strip() == "1"
