"""The pure parts of manifest handling: platforms, index selection, ``created`` parsing and
the thread-safe cache helpers."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from automator.errors import PolicyError
from automator.registry._manifests import (
    Entry,
    LRUCache,
    Platform,
    SingleFlight,
    index_entries,
    parse_created,
    select_entry,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("linux/amd64", ("linux", "amd64", "v1")),
        ("linux/x86_64", ("linux", "amd64", "v1")),
        ("linux/amd64/v3", ("linux", "amd64", "v3")),
        ("linux/arm64", ("linux", "arm64", "v8")),
        ("linux/aarch64", ("linux", "arm64", "v8")),
        ("linux/arm64/8", ("linux", "arm64", "v8")),
        ("linux/arm", ("linux", "arm", "v7")),
        ("linux/armhf", ("linux", "arm", "v7")),
        ("linux/armel", ("linux", "arm", "v6")),
        ("linux/arm/v6", ("linux", "arm", "v6")),
        ("linux/i386", ("linux", "386", None)),
        ("linux/s390x", ("linux", "s390x", None)),
        ("windows/amd64", ("windows", "amd64", "v1")),
        (" LINUX/ARM64/V8 ", ("linux", "arm64", "v8")),
    ],
)
def test_platforms_are_normalised_like_containerd(
    text: str, expected: tuple[str, str, str | None]
) -> None:
    assert Platform.parse(text) == Platform(*expected)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("linux/amd64", "linux/amd64"),
        ("linux/arm64/v8", "linux/arm64"),
        ("linux/arm/v6", "linux/arm/v6"),
    ],
)
def test_platforms_print_without_their_default_variant(text: str, shown: str) -> None:
    assert str(Platform.parse(text)) == shown


@pytest.mark.parametrize("text", ["", "linux", "a/b/c/d", "linux//v7", "linux/amd 64", "linux/ä"])
def test_malformed_platforms_are_policy_errors(text: str) -> None:
    with pytest.raises(PolicyError, match=r"is not os/arch\[/variant\]"):
        Platform.parse(text)


def _entry(platform: str | None, *, attestation: bool = False, digest: str = "d") -> Entry:
    return Entry(
        digest=digest,
        media_type="",
        platform=Platform.parse(platform) if platform else None,
        attestation=attestation,
    )


def test_selection_prefers_an_exact_platform_and_never_an_attestation() -> None:
    entries = [
        _entry("linux/arm64", attestation=True, digest="att"),
        _entry("linux/arm/v6", digest="v6"),
        _entry("linux/arm/v7", digest="v7"),
        _entry("linux/arm64", digest="arm64"),
    ]
    assert select_entry(entries, Platform.parse("linux/arm")) == entries[2]
    assert select_entry(entries, Platform.parse("linux/arm64")) == entries[3]
    assert select_entry(entries, None) == entries[1]
    assert select_entry(entries, Platform.parse("linux/riscv64")) == (
        "has no linux/riscv64 image (it has linux/arm/v6, linux/arm/v7, linux/arm64)"
    )


def test_index_entries_mark_buildx_attestations() -> None:
    entries = index_entries(
        {
            "manifests": [
                {"digest": "a", "platform": {"os": "linux", "architecture": "amd64"}},
                {"digest": "b", "platform": {"os": "unknown", "architecture": "unknown"}},
                {
                    "digest": "c",
                    "annotations": {"vnd.docker.reference.type": "attestation-manifest"},
                },
                {"digest": "d"},
            ]
        }
    )
    assert entries is not None
    assert [e.attestation for e in entries] == [False, True, True, False]
    assert index_entries({"manifests": "nope"}) is None
    assert index_entries({"manifests": [{"no": "digest"}]}) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-01-02T03:04:05Z", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2024-01-02t03:04:05z", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2024-01-02T03:04:05.5Z", datetime(2024, 1, 2, 3, 4, 5, 500000, tzinfo=UTC)),
        ("2024-01-02T03:04:05.123456789Z", datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)),
        ("2024-01-02T03:04:05-05:30", datetime(2024, 1, 2, 8, 34, 5, tzinfo=UTC)),
        ("2024-01-02 03:04:05+00:00", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2024-01-02T03:04:05", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),  # no offset: UTC
        ("1970-01-01T00:00:00Z", datetime(1970, 1, 1, tzinfo=UTC)),  # reproducible builds
    ],
)
def test_created_parses_rfc3339_into_aware_utc(value: str, expected: datetime) -> None:
    parsed = parse_created(value)
    assert parsed == expected
    assert isinstance(parsed, datetime)
    assert parsed.utcoffset() == timedelta(0)
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "value", [None, 5, "", "2024-01-02", "2024-02-30T00:00:00Z", "0001-01-01T00:00:00Z"]
)
def test_unusable_created_values_give_a_reason(value: object) -> None:
    assert isinstance(parse_created(value), str)


def test_the_lru_cache_evicts_the_least_recently_used() -> None:
    cache: LRUCache[str, int] = LRUCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # a is now the most recent
    cache.put("c", 3)
    assert cache.get("b") is None
    assert (cache.get("a"), cache.get("c"), len(cache)) == (1, 3, 2)


def test_single_flight_runs_once_for_concurrent_callers_and_shares_errors() -> None:
    flight = SingleFlight()
    started, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def work() -> int:
        calls.append(1)
        started.set()
        release.wait(5)
        return 42

    results: list[int] = []
    leader = threading.Thread(target=lambda: results.append(flight.do("k", work)))
    leader.start()
    started.wait(5)
    followers = [
        threading.Thread(target=lambda: results.append(flight.do("k", work))) for _ in range(4)
    ]
    for t in followers:
        t.start()
    time.sleep(0.2)  # let the followers reach the flight before the leader finishes
    release.set()
    for t in [leader, *followers]:
        t.join(5)
    assert results == [42] * 5
    assert len(calls) == 1
    assert flight.do("k", lambda: 7) == 7  # nothing stays in flight

    def boom() -> int:
        raise ValueError("x")

    with pytest.raises(ValueError, match="x"):
        flight.do("e", boom)
