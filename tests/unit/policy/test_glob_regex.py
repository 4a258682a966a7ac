"""glob: and regex: (Flux v1): keep the tags the pattern matches, then the newest build."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from automator.errors import PolicyError
from automator.policy import parse_policy

T0 = datetime(2024, 1, 1, tzinfo=UTC)

# Flux v1 matches `glob:` with ryanuber/go-glob (only `*` is special); these rows are its
# semantics and hold here unchanged. The `?`, `[...]` and `\` rows follow Go's
# filepath.Match, which Argo CD Image Updater uses for ignore-tags.
GLOB_CASES = [
    ("*", "", True),
    ("*", "anything-1.2.3", True),
    ("latest", "latest", True),
    ("latest", "latest2", False),
    ("latest", "xlatest", False),
    ("master-*", "master-a4b5c6", True),
    ("master-*", "master-", True),
    ("master-*", "feature-master-1", False),
    ("*-prod", "v1-prod", True),
    ("*-prod", "v1-prod-2", False),
    ("v1.*", "v1.2.3", True),
    ("v1.*", "v1", False),
    ("v1.*", "v10.0", False),
    ("1.*", "1x2", False),  # '.' is literal, not a regex dot
    ("*foo*", "foo", True),
    ("*foo*", "afoob", True),
    ("*foo*", "fo", False),
    ("a*b*c", "abc", True),
    ("a*b*c", "axxbyyc", True),
    ("a*b*c", "acb", False),
    ("**", "x", True),
    ("a/*", "a/b/c", True),  # no special meaning for '/'
    ("release+*", "release+1", True),  # '+' is literal
    ("v(1)", "v(1)", True),
    ("?", "a", True),
    ("?", "", False),
    ("?", "ab", False),
    ("v?.0", "v1.0", True),
    ("v?.0", "v10.0", False),
    ("[abc]-1", "b-1", True),
    ("[abc]-1", "d-1", False),
    ("v[0-9].*", "v7.1", True),
    ("v[0-9].*", "vx.1", False),
    ("[!0-9]*", "a1", True),
    ("[!0-9]*", "1a", False),
    ("[^0-9]*", "a1", True),
    ("[a-cx]", "x", True),
    ("[a\\-]", "-", True),
    ("[\\]]", "]", True),
    ("a]", "a]", True),
    ("\\*", "*", True),
    ("\\*", "x", False),
    ("\\?", "?", True),
    ("LATEST", "latest", False),  # case-sensitive
]


@pytest.mark.parametrize(("pattern", "tag", "matches"), GLOB_CASES)
def test_glob_conformance(pattern: str, tag: str, matches: bool) -> None:
    policy = parse_policy(f"glob:{pattern}")
    assert policy.eligible([tag]) == ([tag] if matches else [])
    result = policy.select([tag], created={tag: T0})
    assert result.selected == (tag if matches else None)
    if not matches:
        assert result.verdicts[0].reason == "filtered"
        assert f"glob {pattern!r}" in result.verdicts[0].detail


REGEX_CASES = [
    ("^main-", "main-abc", True),
    ("^main-", "feature-main-abc", False),
    ("main", "feature-main-abc", True),  # unanchored search
    ("^[0-9a-f]{7}$", "1a2b3c4", True),
    ("^[0-9a-f]{7}$", "1a2b3c4d", False),
    ("^v1\\.", "v1.2", True),
    ("^v1\\.", "v12", False),
    ("-rc\\.[0-9]+$", "1.0.0-rc.10", True),
    ("^(?<branch>main|dev)-[0-9]+$", "dev-12", True),  # Go named group
    ("^(?P<branch>main|dev)-[0-9]+$", "feat-12", False),
    ("(?i)^LATEST$", "latest", True),
    ("^$", "", True),
    (".", "", False),
]


@pytest.mark.parametrize("prefix", ["regex", "regexp", "REGEX"])
@pytest.mark.parametrize(("pattern", "tag", "matches"), REGEX_CASES)
def test_regex_conformance(prefix: str, pattern: str, tag: str, matches: bool) -> None:
    policy = parse_policy(f"{prefix}:{pattern}")
    assert policy.select([tag], created={tag: T0}).selected == (tag if matches else None)


@pytest.mark.parametrize("spec", ["glob:main-*", "regex:^main-", "regexp:^main-"])
def test_a_pattern_policy_picks_the_newest_matching_build(spec: str) -> None:
    created = {
        "main-1": T0,
        "main-2": T0 + timedelta(hours=2),
        "main-3": T0 + timedelta(hours=1),
        "feature-9": T0 + timedelta(hours=9),
        "main-4": T0 + timedelta(hours=5),  # listed below without a time
    }
    tags = ["main-1", "main-2", "main-3", "feature-9", "main-5"]
    result = parse_policy(spec).select(tags, "main-1", created=created)
    assert (result.selected, result.candidates) == ("main-2", ("main-2", "main-3", "main-1"))
    reasons = {v.tag: v.reason for v in result.verdicts}
    assert reasons == {
        "main-2": "selected",
        "main-3": "lower",
        "main-1": "lower",
        "feature-9": "filtered",
        "main-5": "no-build-time",
    }


def test_a_pattern_policy_never_downgrades_the_current_build() -> None:
    created = {"main-1": T0 + timedelta(hours=1), "main-2": T0}
    assert parse_policy("glob:main-*").select(["main-2"], "main-1", created=created).selected == (
        "main-1"
    )


def test_a_pattern_policy_combines_with_filter_and_ignore() -> None:
    policy = parse_policy("glob:*-1*", filter="^main-", ignore=["*-13"])
    tags = ["main-11", "main-12", "main-13", "dev-14", "main-2"]
    created = {tag: T0 + timedelta(minutes=i) for i, tag in enumerate(tags)}
    assert policy.select(tags, created=created).candidates == ("main-12", "main-11")


INVALID_GLOBS = [
    ("glob:", "glob needs a pattern"),
    ("glob:   ", "glob needs a pattern"),
    ("glob", "glob needs a pattern"),
    ("glob:v[0-9", "'[' at position 1 that is never closed"),
    ("glob:v[", "never closed"),
    ("glob:[]", "empty class at position 0"),
    ("glob:[!]", "empty class"),
    ("glob:[z-a]", "reversed range 'z-a'"),
    ("glob:[a-]", "'-' at position 2 that starts no range"),
    ("glob:[-a]", "starts no range"),
    ("glob:v1\\", "lone '\\'"),
    ("glob:[a\\", "lone '\\'"),
]


@pytest.mark.parametrize(("spec", "hint"), INVALID_GLOBS)
def test_a_malformed_glob_is_rejected_quoting_the_spec_and_the_fix(spec: str, hint: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(spec)
    message = str(caught.value)
    assert message.startswith(f"policy {spec!r}: ")
    assert hint in message
    assert "Fix:" in message


INVALID_REGEXES = [
    ("regex:", "regex needs a pattern"),
    ("regexp: ", "regex needs a pattern"),
    ("regex:^main-(", "regex '^main-(' is not a valid regular expression"),
    ("regex:[a-", "not a valid regular expression"),
    ("regexp:(?<1x>a)", "not a valid regular expression"),
]


@pytest.mark.parametrize(("spec", "hint"), INVALID_REGEXES)
def test_a_malformed_regex_is_rejected_quoting_the_spec_and_the_fix(spec: str, hint: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(spec)
    message = str(caught.value)
    assert message.startswith(f"policy {spec!r}: ")
    assert hint in message
    assert "Fix:" in message


@pytest.mark.parametrize("spec", ["newest-build:asc", "digest:latest", "newest-build:"])
def test_strategies_without_an_argument_reject_one(spec: str) -> None:
    with pytest.raises(PolicyError, match="takes no argument") as caught:
        parse_policy(spec)
    assert "Fix:" in str(caught.value)
