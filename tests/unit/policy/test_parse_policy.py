"""parse_policy: which SPECs build a policy, and how bad ones are reported."""

from __future__ import annotations

import pytest

from automator.errors import PermanentError, PolicyError
from automator.policy import parse_policy


@pytest.mark.parametrize(
    "spec",
    [
        "semver:^1.2",
        "semver: >=1.0.0 <2",
        " semver:1.x ",
        "SEMVER:*",
        "alphabetical",
        "alphabetical:asc",
        "alphabetical:desc",
        "numerical",
        "numerical:asc",
        "numerical: DESC ",
        "newest-build",
        "NEWEST-BUILD",
        "digest",
        "glob:1.*",
        "glob: main-* ",
        "regex:^v",
        "regexp:^v",
    ],
)
def test_a_supported_spec_builds_a_policy_that_remembers_the_spec_as_written(spec: str) -> None:
    assert parse_policy(spec).spec == spec


@pytest.mark.parametrize(
    ("spec", "needs_created", "follows_digest"),
    [
        ("semver:*", False, False),
        ("alphabetical", False, False),
        ("numerical:desc", False, False),
        ("newest-build", True, False),
        ("glob:main-*", True, False),
        ("regex:^main-", True, False),
        ("regexp:^main-", True, False),
        ("digest", False, True),
    ],
)
def test_a_policy_says_whether_the_engine_must_fetch_build_times_or_follow_digests(
    spec: str, needs_created: bool, follows_digest: bool
) -> None:
    policy = parse_policy(spec)
    assert (policy.needs_created, policy.follows_digest) == (needs_created, follows_digest)


@pytest.mark.parametrize("spec", ["", ":", "latest", "semverx:1", "semver-1", "numeric"])
def test_an_unknown_strategy_is_rejected_with_the_supported_ones(spec: str) -> None:
    with pytest.raises(PolicyError, match=r"is unknown\. Fix: use one of semver:RANGE") as caught:
        parse_policy(spec)
    assert "newest-build, digest, glob:PATTERN, regex:PATTERN" in str(caught.value)


@pytest.mark.parametrize("spec", ["semver", "semver:", "semver:   "])
def test_semver_without_a_range_asks_for_one(spec: str) -> None:
    with pytest.raises(PolicyError, match="semver needs a range"):
        parse_policy(spec)


@pytest.mark.parametrize("spec", ["alphabetical:", "alphabetical:up", "numerical:asc:desc"])
def test_an_order_other_than_asc_or_desc_is_rejected(spec: str) -> None:
    with pytest.raises(PolicyError, match="neither 'asc' nor 'desc'"):
        parse_policy(spec)


def test_a_range_error_quotes_the_whole_spec_and_the_offending_part() -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy("semver:>=1.2 <2.x.y")
    message = str(caught.value)
    assert message.startswith("policy 'semver:>=1.2 <2.x.y': semver range '>=1.2 <2.x.y'")
    assert "cannot parse '.y'" in message
    assert "Fix:" in message


def test_a_policy_error_is_a_permanent_error_chained_to_its_cause() -> None:
    with pytest.raises(PermanentError) as caught:
        parse_policy("semver:nonsense")
    assert isinstance(caught.value.__cause__, PolicyError)


def test_filter_and_extract_are_checked_even_for_a_spec_that_is_otherwise_fine() -> None:
    with pytest.raises(PolicyError, match="'missing'"):
        parse_policy("semver:^1", filter="(?P<v>.*)", extract="$missing")
