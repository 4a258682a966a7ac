"""newest-build: rank by image creation time; ties, no downgrade, tags without a build time."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from automator.policy import parse_policy

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


CET = timezone(timedelta(hours=1))

# (tags, created minutes per tag (absent: no build time), current, selected, candidates)
CASES = [
    pytest.param(
        ["a", "b", "c"], {"a": 1, "b": 3, "c": 2}, None, "b", ("b", "c", "a"), id="newest-wins"
    ),
    pytest.param(
        ["1.0.0", "0.9.0"],
        {"1.0.0": 1, "0.9.0": 2},
        None,
        "0.9.0",
        ("0.9.0", "1.0.0"),
        id="time-not-version",
    ),
    pytest.param(
        ["a", "c", "b"],
        {"a": 5, "b": 5, "c": 5},
        None,
        "c",
        ("c", "b", "a"),
        id="tie-lexically-greatest",
    ),
    pytest.param(
        ["main-9", "main-10"],
        {"main-9": 5, "main-10": 5},
        None,
        "main-9",
        ("main-9", "main-10"),
        id="tie-is-lexical-not-numeric",
    ),
    pytest.param(["a", "b"], {"a": 1}, None, "a", ("a",), id="missing-time-skipped"),
    pytest.param(["a", "b"], {}, None, None, (), id="no-times-no-selection"),
    pytest.param([], {}, None, None, (), id="no-tags"),
    pytest.param(
        ["old", "cur"],
        {"old": 1, "cur": 2},
        "cur",
        "cur",
        ("cur", "old"),
        id="current-is-newest-stays",
    ),
    pytest.param(
        ["new", "cur"],
        {"new": 3, "cur": 2},
        "cur",
        "new",
        ("new", "cur"),
        id="strictly-newer-replaces",
    ),
    pytest.param(
        ["z", "cur"],
        {"z": 2, "cur": 2},
        "cur",
        "cur",
        ("z", "cur"),
        id="same-time-never-replaces-current",
    ),
    pytest.param(
        ["old"], {"old": 1, "cur": 2}, "cur", "cur", ("old",), id="unlisted-current-newer-stays"
    ),
    pytest.param(
        ["new"], {"new": 3, "cur": 2}, "cur", "new", ("new",), id="unlisted-current-older-replaced"
    ),
    pytest.param(["a"], {"a": 1}, "cur", "a", ("a",), id="current-without-time-replaced"),
    pytest.param(
        ["a", "latest"],
        {"a": 1, "latest": 9},
        "a",
        "latest",
        ("latest", "a"),
        id="any-tag-name-counts",
    ),
    pytest.param(
        ["a", "x.sig", "sha256-1"],
        {"a": 1, "x.sig": 9, "sha256-1": 9},
        None,
        "a",
        ("a",),
        id="artefacts-excluded",
    ),
]


@pytest.mark.parametrize(("tags", "times", "current", "selected", "candidates"), CASES)
def test_newest_build_conformance(
    tags: list[str],
    times: dict[str, int],
    current: str | None,
    selected: str | None,
    candidates: tuple[str, ...],
) -> None:
    created = {tag: _at(minutes) for tag, minutes in times.items()}
    result = parse_policy("newest-build").select(tags, current, created=created)
    assert (result.selected, result.candidates) == (selected, candidates)


def test_creation_times_in_different_zones_compare_as_instants() -> None:
    created = {
        "utc": datetime(2024, 1, 1, 12, 0, tzinfo=UTC),
        "cet": datetime(2024, 1, 1, 12, 30, tzinfo=CET),
    }  # 11:30 UTC
    assert parse_policy("newest-build").select(["utc", "cet"], created=created).selected == "utc"


def test_the_same_instant_in_different_zones_is_a_tie_broken_lexically() -> None:
    created = {
        "a": datetime(2024, 1, 1, 12, tzinfo=UTC),
        "b": datetime(2024, 1, 1, 13, tzinfo=CET),
    }
    assert parse_policy("newest-build").select(["a", "b"], created=created).candidates == ("b", "a")


def test_a_naive_creation_time_is_a_caller_bug_not_data() -> None:
    with pytest.raises(ValueError, match="not timezone-aware"):
        parse_policy("newest-build").select(["a"], created={"a": datetime(2024, 1, 1)})


def test_without_created_every_tag_lacks_a_build_time_and_nothing_is_selected() -> None:
    result = parse_policy("newest-build").select(["a", "b"], "a")
    assert (result.selected, result.candidates, result.current_is_candidate) == (None, (), False)
    assert {v.reason for v in result.verdicts} == {"no-build-time"}


def test_eligible_lists_the_tags_that_only_lack_a_build_time_once_in_first_seen_order() -> None:
    policy = parse_policy("newest-build", filter="^main-", ignore=["*-dev"])
    tags = ["main-2", "x.sig", "main-1", "other", "main-3-dev", "main-2"]
    assert policy.eligible(tags) == ["main-2", "main-1"]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("semver:^1", ["1.0.0", "v1.2.0"]),
        ("numerical", ["7"]),
        ("alphabetical", ["1.0.0", "v1.2.0", "2.0.0", "7", "latest"]),
        ("glob:*.0", ["1.0.0", "v1.2.0", "2.0.0"]),
        ("regex:^v", ["v1.2.0"]),
        ("digest", ["1.0.0", "v1.2.0", "2.0.0", "7", "latest"]),
    ],
)
def test_eligible_applies_each_strategys_own_parse_and_range(
    spec: str, expected: list[str]
) -> None:
    tags = ["1.0.0", "v1.2.0", "2.0.0", "7", "latest", "1.0.0.sig"]
    assert parse_policy(spec).eligible(tags) == expected


# --- properties -----------------------------------------------------------------------------

_tag = st.sampled_from(["a", "b", "c", "main-1", "main-10", "1.0.0", "latest", "x.sig", "z"])
_times = st.dictionaries(_tag, st.integers(min_value=0, max_value=5).map(_at), max_size=9)


@given(st.lists(_tag, max_size=12), _times, st.none() | _tag, st.randoms(use_true_random=False))
def test_newest_build_selection_does_not_depend_on_tag_order(
    tags: list[str], created: dict[str, datetime], current: str | None, rnd: random.Random
) -> None:
    policy = parse_policy("newest-build")
    shuffled = [*tags, *tags]
    rnd.shuffle(shuffled)
    assert policy.select(shuffled, current, created=created) == policy.select(
        tags, current, created=created
    )


@given(st.lists(_tag, max_size=12), _times, _tag)
def test_newest_build_never_selects_a_build_older_than_an_eligible_current_tag(
    tags: list[str], created: dict[str, datetime], current: str
) -> None:
    result = parse_policy("newest-build").select(tags, current, created=created)
    if result.current_is_candidate and result.candidates:
        assert result.selected is not None
        assert created[result.selected] >= created[current]
        if result.selected != current:
            assert created[result.selected] > created[current]
    elif result.candidates:
        assert result.selected == result.candidates[0]


@given(st.lists(_tag, max_size=12), _times)
def test_newest_build_selects_the_latest_time_then_the_greatest_tag(
    tags: list[str], created: dict[str, datetime]
) -> None:
    known = [t for t in tags if t in created and not t.endswith(".sig")]
    expected = max(known, key=lambda t: (created[t], t)) if known else None
    assert parse_policy("newest-build").select(tags, created=created).selected == expected
