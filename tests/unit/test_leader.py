"""Leader election's rules (client-go's), on a fake clock and an in-memory Lease store that
does what the apiserver does: compare-and-swap on resourceVersion, 409 to the loser."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from structlog.testing import capture_logs

from automator.config import LeaderElectionSettings, settings_from_mapping
from automator.errors import ConfigError, NotLeader
from automator.leader import Attempt, Elector, LeaderElection, LeaseRecord
from tests.support.lease import FakeClock, MemoryStore

_LEASE, _RENEW, _RETRY = 15.0, 10.0, 2.0


def _elector(store: MemoryStore, clock: FakeClock, identity: str) -> Elector:
    return Elector(
        store,
        identity,
        lease_duration=_LEASE,
        renew_deadline=_RENEW,
        retry_period=_RETRY,
        clock=clock,
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


def test_the_first_candidate_creates_the_lease_and_leads(
    store: MemoryStore, clock: FakeClock
) -> None:
    a = _elector(store, clock, "a")
    assert a.attempt() is Attempt.LEADING
    assert store.record is not None
    assert store.record.holder == "a"
    assert store.record.duration == 15
    assert store.record.transitions == 0
    assert store.record.acquire_time == store.record.renew_time == clock.now()
    assert a.may_write()


def test_a_second_candidate_follows_while_the_leader_keeps_renewing(
    store: MemoryStore, clock: FakeClock
) -> None:
    a, b = _elector(store, clock, "a"), _elector(store, clock, "b")
    a.attempt()
    for _ in range(20):  # 40 s, far beyond the lease duration, renewed every 2 s
        assert b.attempt() is Attempt.FOLLOWING
        clock.advance(_RETRY)
        assert a.attempt() is Attempt.LEADING
    assert not b.may_write()
    assert b.leader == "a"
    assert store.record is not None
    assert store.record.transitions == 0


def test_a_follower_takes_over_once_it_has_seen_no_renewal_for_the_lease_duration(
    store: MemoryStore, clock: FakeClock
) -> None:
    a, b = _elector(store, clock, "a"), _elector(store, clock, "b")
    a.attempt()
    first_acquired = store.record.acquire_time if store.record else None
    assert b.attempt() is Attempt.FOLLOWING  # b first sees a's record now
    # a dies; b measures from when *it* saw the record, on its own clock
    clock.advance(_LEASE - 0.1)
    assert b.attempt() is Attempt.FOLLOWING
    clock.advance(0.1)
    assert b.attempt() is Attempt.LEADING
    assert store.record is not None
    assert store.record.holder == "b"
    assert store.record.transitions == 1
    assert store.record.acquire_time == clock.now() != first_acquired
    assert b.may_write()


def test_the_times_written_in_the_record_do_not_decide_expiry(
    store: MemoryStore, clock: FakeClock
) -> None:
    # A holder whose clock is a day ahead (or behind) writes odd renewTimes; a follower
    # still waits one lease duration from when it saw the record, no more, no less.
    skewed = datetime(2026, 1, 2, tzinfo=UTC)
    store.seed(LeaseRecord("a", 15, skewed, skewed, 3))
    b = _elector(store, clock, "b")
    assert b.attempt() is Attempt.FOLLOWING
    clock.advance(14.9)
    assert b.attempt() is Attempt.FOLLOWING
    clock.advance(0.1)
    assert b.attempt() is Attempt.LEADING
    assert store.record is not None
    assert store.record.transitions == 4


def test_the_leader_stops_writing_when_it_cannot_renew_within_the_renew_deadline(
    store: MemoryStore, clock: FakeClock
) -> None:
    a = _elector(store, clock, "a")
    a.attempt()
    store.down = True
    clock.advance(_RETRY)
    assert a.attempt() is Attempt.FAILED
    assert a.may_write()  # a failed renewal is retried until the deadline
    clock.advance(_RENEW - _RETRY - 0.01)
    assert a.may_write()
    a.check_may_write()
    clock.advance(0.01)
    assert not a.may_write()
    with pytest.raises(NotLeader, match=r"Lease test/automator.*could not renew it within 10s"):
        a.check_may_write()
    # and it stops writing before any follower could take over
    assert _RENEW < _LEASE


def test_the_write_window_counts_from_the_start_of_the_renewal_not_its_answer(
    clock: FakeClock,
) -> None:
    class SlowStore(MemoryStore):
        def update(self, record: LeaseRecord) -> LeaseRecord:
            clock.advance(3.0)  # a slow apiserver: the answer comes 3 s later
            return super().update(record)

    store = SlowStore()
    a = _elector(store, clock, "a")
    a.attempt()  # create (fast)
    clock.advance(_RETRY)
    started = clock.monotonic()
    assert a.attempt() is Attempt.LEADING
    clock.advance(started + _RENEW - clock.monotonic() - 0.01)
    assert a.may_write()
    clock.advance(0.01)
    assert not a.may_write()


def test_of_two_candidates_taking_over_at_once_exactly_one_wins(
    store: MemoryStore, clock: FakeClock
) -> None:
    store.seed(LeaseRecord("dead", 15, clock.now(), clock.now(), 0))
    b, c = _elector(store, clock, "b"), _elector(store, clock, "c")
    assert b.attempt() is Attempt.FOLLOWING
    assert c.attempt() is Attempt.FOLLOWING
    clock.advance(_LEASE)
    # both read the same expired record before either writes: interleave by hand
    seen = store.get()
    assert seen is not None
    b_read, c_read = b.store.get, c.store.get
    b.store.get = lambda: seen  # type: ignore[method-assign]
    c.store.get = lambda: seen  # type: ignore[method-assign]
    outcomes = {b.attempt(), c.attempt()}
    b.store.get, c.store.get = b_read, c_read  # type: ignore[method-assign]
    assert outcomes == {Attempt.LEADING, Attempt.FAILED}
    assert store.record is not None
    assert store.record.holder == "b"
    assert b.may_write()
    assert not c.may_write()
    assert c.attempt() is Attempt.FOLLOWING


def test_a_released_lease_is_taken_over_at_the_next_attempt_without_waiting(
    store: MemoryStore, clock: FakeClock
) -> None:
    a, b = _elector(store, clock, "a"), _elector(store, clock, "b")
    a.attempt()
    assert b.attempt() is Attempt.FOLLOWING
    assert a.release()
    assert not a.may_write()
    assert store.record is not None
    assert store.record.holder == ""
    assert store.record.duration == 1
    clock.advance(_RETRY)
    assert b.attempt() is Attempt.LEADING
    assert store.record.holder == "b"
    assert store.record.transitions == 1


def test_releasing_a_lease_someone_else_holds_writes_nothing(
    store: MemoryStore, clock: FakeClock
) -> None:
    a, b = _elector(store, clock, "a"), _elector(store, clock, "b")
    a.attempt()
    b.attempt()
    writes = store.writes
    assert b.release()
    assert store.writes == writes
    assert store.record is not None
    assert store.record.holder == "a"


def test_a_leader_that_finds_the_lease_taken_follows_at_once(
    store: MemoryStore, clock: FakeClock
) -> None:
    a, b = _elector(store, clock, "a"), _elector(store, clock, "b")
    a.attempt()
    b.attempt()
    store.down = True  # a is cut off; b's view of the record stops changing too
    clock.advance(_LEASE)
    store.down = False
    assert not a.may_write()  # a gave up writing well before this point
    assert b.attempt() is Attempt.LEADING
    assert a.attempt() is Attempt.FOLLOWING
    assert not a.may_write()
    assert a.leader == "b"


def test_a_restarted_process_with_the_same_identity_renews_its_own_lease(
    store: MemoryStore, clock: FakeClock
) -> None:
    _elector(store, clock, "pod-0_7").attempt()
    again = _elector(store, clock, "pod-0_7")
    assert again.attempt() is Attempt.LEADING
    assert store.record is not None
    assert store.record.transitions == 0


def test_the_election_reports_each_change_of_leadership_once(
    store: MemoryStore, clock: FakeClock
) -> None:
    calls: list[str] = []
    election = LeaderElection(
        _elector(store, clock, "a"),
        on_started=lambda: calls.append("started"),
        on_stopped=lambda: calls.append("stopped"),
        on_observed=lambda: calls.append("observed"),
    )
    with capture_logs() as logs:
        election.step()
        clock.advance(_RETRY)
        election.step()
        store.down = True
        for _ in range(4):
            clock.advance(_RETRY)
            election.step()
        assert election.leading  # 8 s without renewal: still inside the deadline
        clock.advance(_RETRY)
        election.step()
        assert not election.leading
        store.down = False
        # no longer leading, but the Lease still names it: give it back so the other
        # replica need not wait out the lease
        election.stop()
    assert [c for c in calls if c != "observed"] == ["started", "stopped"]
    events = [e["event"] for e in logs]
    assert events.count("leader_elected") == 1
    assert events.count("leader_lost") == 1
    assert events.count("leader_election_failed") == 1  # the same problem, logged once
    assert events[-1] == "leader_released"
    assert store.record is not None
    assert store.record.holder == ""


def test_stopping_the_leader_releases_the_lease(store: MemoryStore, clock: FakeClock) -> None:
    election = LeaderElection(_elector(store, clock, "a"))
    election.step()
    with capture_logs() as logs:
        election.stop()
    assert store.record is not None
    assert store.record.holder == ""
    assert [e["event"] for e in logs] == ["leader_released"]
    assert not election.leading


# ------------------------------------------------------------------------- configuration


def _config(**le: Any) -> LeaderElectionSettings:
    settings = settings_from_mapping(
        {"git": {"url": "file:///srv/config.git"}, "leader_election": le}
    )
    assert settings.leader_election is not None
    return settings.leader_election


def test_the_contract_keys_alone_give_client_go_default_timings() -> None:
    le = _config(lease="automator-config", namespace="automator")
    assert (le.lease, le.namespace) == ("automator-config", "automator")
    assert (le.lease_duration, le.renew_deadline, le.retry_period) == (15.0, 10.0, 2.0)
    assert le.kubeconfig is None
    assert le.context is None
    assert le.identity is None


def test_leader_election_is_off_unless_configured() -> None:
    assert settings_from_mapping({"git": {"url": "file:///x"}}).leader_election is None


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        (
            {"lease_duration": "10s"},
            r"renew_deadline \(10s\) must be shorter than .*lease_duration",
        ),
        ({"retry_period": "9s"}, r"renew_deadline \(10s\) must exceed 1.2 x .*retry_period"),
        ({"lease_duration": "15.5s"}, r"leader_election.lease_duration: must be a whole number"),
        ({"retry_period": "0s"}, r"leader_election.retry_period: must be a positive duration"),
        ({"lease": "Automator_Config"}, r"leader_election.lease: .*not a valid Lease name"),
        ({"identity": " "}, r"leader_election.identity: must not be empty"),
        ({"leese": "x"}, r"unknown key leader_election.leese"),
    ],
)
def test_a_bad_leader_election_value_names_the_key_and_the_fix(
    keys: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        _config(**{"lease": "automator-config", **keys})


def test_the_lease_name_is_required() -> None:
    with pytest.raises(ConfigError, match=r"required key leader_election.lease is missing"):
        _config(namespace="automator")
