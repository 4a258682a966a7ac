"""Explanations: every tag gets one verdict with a precise reason and a sentence naming why."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from automator.policy import REASONS, Selection, Verdict, parse_policy

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _explain(
    spec: str,
    tags: list[str],
    current: str | None = None,
    *,
    filter: str | None = None,
    extract: str | None = None,
    ignore: tuple[str, ...] = (),
    created: dict[str, datetime] | None = None,
) -> Selection:
    policy = parse_policy(spec, filter=filter, extract=extract, ignore=ignore)
    return policy.select(tags, current, created=created)


def _verdict(result: Selection, tag: str) -> Verdict:
    verdict = result.verdict(tag)
    assert verdict is not None, f"no verdict for {tag!r}"
    return verdict


# (spec, tags, current, options, tag, reason, words in detail)
CASES: list[tuple[str, list[str], str | None, dict[str, object], str, str, tuple[str, ...]]] = [
    (
        "semver:^1.0",
        ["1.10.0", "1.2.0"],
        None,
        {},
        "1.10.0",
        "selected",
        ("1.10.0", "highest version", "^1.0"),
    ),
    (
        "semver:^1.0",
        ["1.10.0", "1.2.0"],
        "1.2.0",
        {},
        "1.10.0",
        "selected",
        ("replacing the current tag 1.2.0",),
    ),
    (
        "semver:^1.0",
        ["1.10.0", "1.2.0"],
        None,
        {},
        "1.2.0",
        "lower",
        ("1.2.0", "lower version than", "1.10.0"),
    ),
    (
        "semver:*",
        ["1.2.3", "v1.2.3"],
        None,
        {},
        "1.2.3",
        "lower",
        ("same version as v1.2.3", "wins the tie", "lexically greater"),
    ),
    ("semver:^1", ["1.0.0"], "1.5.0", {}, "1.5.0", "current", ("current tag", "never a downgrade")),
    (
        "semver:^1",
        ["1.0.0"],
        "1.5.0",
        {},
        "1.0.0",
        "lower",
        ("lower version than the current tag 1.5.0",),
    ),
    (
        "semver:*",
        ["1.2.3", "v1.2.3"],
        "1.2.3",
        {},
        "v1.2.3",
        "lower",
        ("same version as the current tag 1.2.3", "stays", "equal rank never replaces"),
    ),
    (
        "semver:^1",
        ["latest"],
        "1.0.0",
        {},
        "1.0.0",
        "current",
        ("no other tag is eligible", "stays"),
    ),
    (
        "semver:*",
        ["sha256-abc.sig", "1.0.0"],
        None,
        {},
        "sha256-abc.sig",
        "excluded",
        ("signature", "*.sig", "never a deployable image"),
    ),
    ("semver:*", ["sha256-abc", "1.0.0"], None, {}, "sha256-abc", "excluded", ("sha256-*",)),
    (
        "semver:*",
        ["1.0.0-dev", "1.0.0"],
        None,
        {"ignore": ("*-dev",)},
        "1.0.0-dev",
        "ignored",
        ("matches the ignore glob '*-dev'",),
    ),
    (
        "semver:*",
        ["v1.0.0", "1.0.0"],
        None,
        {"filter": "^v"},
        "1.0.0",
        "filtered",
        ("does not match the filter '^v'",),
    ),
    (
        "semver:*",
        ["1.2", "1.0.0"],
        None,
        {},
        "1.2",
        "not-a-version",
        ("1.2", "not a version X.Y.Z"),
    ),
    (
        "semver:*",
        ["app-1.2", "app-1.0.0"],
        None,
        {"filter": "^app-(?P<v>.+)$", "extract": "$v"},
        "app-1.2",
        "not-a-version",
        ("app-1.2 (compared as '1.2')", "not a version"),
    ),
    (
        "semver:^1.0",
        ["1.2.0-rc.1", "1.0.0"],
        None,
        {},
        "1.2.0-rc.1",
        "prerelease",
        ("1.2.0-rc.1 is a prerelease and the range ^1.0 has none", "add -0"),
    ),
    (
        "semver:<2.0.0",
        ["2.0.0-rc.1", "1.0.0"],
        None,
        {},
        "2.0.0-rc.1",
        "prerelease",
        ("prerelease", "<2.0.0", "add -0"),
    ),
    (
        "semver:>=1.0.0-0 <1.1 || ^2",
        ["2.1.0-rc.1", "1.0.0"],
        None,
        {},
        "2.1.0-rc.1",
        "prerelease",
        ("alternatives of the range", "name no prerelease", "add -0"),
    ),
    (
        "semver:^1.0",
        ["3.0.0", "1.0.0"],
        None,
        {},
        "3.0.0",
        "out-of-range",
        ("3.0.0 is outside the range ^1.0",),
    ),
    (
        "semver:^1.0",
        ["3.0.0-rc.1", "1.0.0"],
        None,
        {},
        "3.0.0-rc.1",
        "out-of-range",
        ("outside the range ^1.0",),
    ),
    ("numerical", ["latest", "7"], None, {}, "latest", "not-a-number", ("latest", "not a number")),
    ("numerical", ["7", "10"], None, {}, "7", "lower", ("smaller number than 10",)),
    ("numerical:desc", ["7", "10"], None, {}, "10", "lower", ("larger number than 7",)),
    ("numerical", ["7", "10"], None, {}, "10", "selected", ("largest number",)),
    ("alphabetical", ["a", "b"], None, {}, "a", "lower", ("a sorts before b",)),
    ("alphabetical:desc", ["a", "b"], None, {}, "b", "lower", ("b sorts after a",)),
    (
        "newest-build",
        ["a", "b"],
        None,
        {"created": {"a": T0}},
        "b",
        "no-build-time",
        ("b has no known build time",),
    ),
    (
        "newest-build",
        ["a", "b"],
        None,
        {"created": {"a": T0, "b": T0 + timedelta(hours=1)}},
        "b",
        "selected",
        ("newest build", "2024-01-01T01:00:00+00:00"),
    ),
    (
        "newest-build",
        ["a", "b"],
        None,
        {"created": {"a": T0, "b": T0 + timedelta(hours=1)}},
        "a",
        "lower",
        ("a was built before b",),
    ),
    (
        "glob:main-*",
        ["dev-1", "main-1"],
        None,
        {"created": {"main-1": T0}},
        "dev-1",
        "filtered",
        ("does not match the policy's glob 'main-*'",),
    ),
    (
        "regex:^main-",
        ["dev-1", "main-1"],
        None,
        {"created": {"main-1": T0}},
        "dev-1",
        "filtered",
        ("does not match the policy's regex '^main-'",),
    ),
    ("digest", ["latest"], "latest", {}, "latest", "current", ("digest behind it",)),
    ("digest", ["1.0.0"], "latest", {}, "latest", "current", ("does not list it",)),
]


@pytest.mark.parametrize(("spec", "tags", "current", "options", "tag", "reason", "words"), CASES)
def test_each_reason_is_given_with_a_sentence_that_says_why(
    spec: str,
    tags: list[str],
    current: str | None,
    options: dict[str, object],
    tag: str,
    reason: str,
    words: tuple[str, ...],
) -> None:
    result = _explain(spec, tags, current, **options)  # type: ignore[arg-type]
    verdict = _verdict(result, tag)
    assert verdict.reason == reason
    for word in words:
        assert word in verdict.detail
    assert verdict.detail.endswith(".")


def test_every_reason_code_is_covered_by_the_table() -> None:
    assert {case[5] for case in CASES} == set(REASONS)


def test_the_documented_prerelease_example_reads_exactly() -> None:
    verdict = _verdict(_explain("semver:^1.0", ["1.2.0-rc.1"]), "1.2.0-rc.1")
    assert verdict.detail == (
        "1.2.0-rc.1 is a prerelease and the range ^1.0 has none "
        "(add -0 to the range to allow them)."
    )


def test_verdicts_list_the_winner_then_the_losers_best_first_then_the_rejected_by_reason() -> None:
    tags = ["latest", "1.0.0", "x.sig", "2.0.0", "1.5.0", "1.1.0-rc.1", "1.2", "a.att"]
    result = _explain("semver:^1", tags, current="1.0.0")
    assert [(v.tag, v.reason) for v in result.verdicts] == [
        ("1.5.0", "selected"),
        ("1.0.0", "lower"),
        ("a.att", "excluded"),
        ("x.sig", "excluded"),
        ("1.2", "not-a-version"),
        ("latest", "not-a-version"),
        ("1.1.0-rc.1", "prerelease"),
        ("2.0.0", "out-of-range"),
    ]


def test_an_unlisted_current_tag_gets_a_verdict_too() -> None:
    result = _explain("semver:^1", ["1.0.0"], current="latest")
    assert [(v.tag, v.reason) for v in result.verdicts] == [
        ("1.0.0", "selected"),
        ("latest", "not-a-version"),
    ]
    replaced = _explain("semver:^1", ["1.6.0", "1.2.0"], current="1.5.0")
    assert [(v.tag, v.reason) for v in replaced.verdicts] == [
        ("1.6.0", "selected"),
        ("1.5.0", "lower"),
        ("1.2.0", "lower"),
    ]
    assert replaced.candidates == ("1.6.0", "1.2.0")


_tags = st.lists(
    st.sampled_from(
        ["1.0.0", "v1.0.0", "1.2.0-rc.1", "2.0.0", "latest", "7", "x.sig", "main-1", "1.2"]
    ),
    max_size=12,
)
_specs = st.sampled_from(
    ["semver:^1", "semver:>=0.0.0-0", "numerical", "alphabetical:desc", "newest-build", "digest"]
)
_created = st.dictionaries(
    st.sampled_from(["1.0.0", "2.0.0", "latest", "7", "main-1"]),
    st.integers(0, 3).map(lambda h: T0 + timedelta(hours=h)),
)


@given(_specs, _tags, st.none() | st.sampled_from(["1.0.0", "latest", "9.9.9"]), _created)
def test_there_is_exactly_one_verdict_per_distinct_tag_and_it_agrees_with_the_selection(
    spec: str, tags: list[str], current: str | None, created: dict[str, datetime]
) -> None:
    result = parse_policy(spec).select(tags, current, created=created)
    expected = {*tags, *([current] if current is not None else [])}
    assert sorted(v.tag for v in result.verdicts) == sorted(expected)
    assert all(v.reason in REASONS and v.detail for v in result.verdicts)
    winners = [v for v in result.verdicts if v.reason in ("selected", "current")]
    assert len(winners) <= 1
    if result.selected is not None:
        assert winners
        assert winners[0].tag == result.selected
        assert result.verdicts[0] == winners[0]
    losers = {v.tag for v in result.verdicts if v.reason in ("selected", "current", "lower")}
    assert set(result.candidates) <= losers


@given(_specs, _tags, st.none() | st.sampled_from(["1.0.0", "latest"]), st.randoms())
def test_verdicts_do_not_depend_on_the_order_tags_were_listed_in(
    spec: str, tags: list[str], current: str | None, rnd: random.Random
) -> None:
    created = {tag: T0 + timedelta(minutes=len(tag)) for tag in tags}
    shuffled = [*tags]
    rnd.shuffle(shuffled)
    policy = parse_policy(spec)
    assert policy.select(shuffled, current, created=created) == policy.select(
        tags, current, created=created
    )
