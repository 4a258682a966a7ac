"""digest (follow the digest behind the current tag) and ignore globs (never candidates)."""

from __future__ import annotations

import pytest

from automator.errors import PolicyError
from automator.policy import Selection, parse_policy


def _core(result: Selection) -> tuple[str | None, tuple[str, ...], bool]:
    return (result.selected, result.candidates, result.current_is_candidate)


# --- digest ---------------------------------------------------------------------------------

# (tags, current, filter, ignore, selected, candidates, current_is_candidate, current reason)
DIGEST_CASES = [
    pytest.param(
        ["latest", "1.0.0"], "latest", None, (), "latest", ("latest",), True, "current", id="listed"
    ),
    pytest.param(
        ["main", "main"], "main", None, (), "main", ("main",), True, "current", id="listed-twice"
    ),
    pytest.param(["1.0.0"], "latest", None, (), None, (), False, "current", id="not-listed"),
    pytest.param([], "latest", None, (), None, (), False, "current", id="empty-registry"),
    pytest.param(["latest"], None, None, (), None, (), False, None, id="no-current"),
    pytest.param(
        ["1.2.3", "9.9.9"],
        "1.2.3",
        None,
        (),
        "1.2.3",
        ("1.2.3",),
        True,
        "current",
        id="never-moves-to-another-tag",
    ),
    pytest.param(["x.sig"], "x.sig", None, (), None, (), False, "excluded", id="artefact-current"),
    pytest.param(
        ["edge"], "edge", None, ("ed*",), None, (), False, "ignored", id="ignored-current"
    ),
    pytest.param(
        ["edge"], "edge", "^main$", (), None, (), False, "filtered", id="filtered-current"
    ),
    pytest.param(
        ["main"], "main", "^main$", (), "main", ("main",), True, "current", id="filter-passes"
    ),
]


@pytest.mark.parametrize(
    ("tags", "current", "filter_", "ignore", "selected", "candidates", "is_candidate", "reason"),
    DIGEST_CASES,
)
def test_digest_conformance(
    tags: list[str],
    current: str | None,
    filter_: str | None,
    ignore: tuple[str, ...],
    selected: str | None,
    candidates: tuple[str, ...],
    is_candidate: bool,
    reason: str | None,
) -> None:
    policy = parse_policy("digest", filter=filter_, ignore=ignore)
    assert policy.follows_digest
    assert not policy.needs_created
    result = policy.select(tags, current)
    assert _core(result) == (selected, candidates, is_candidate)
    assert len(result.verdicts) == len({*tags, *([current] if current else [])})
    if current is not None:
        verdict = result.verdict(current)
        assert verdict is not None
        assert verdict.reason == reason
        if reason == "current" and selected is None:
            assert "does not list it" in verdict.detail


def test_digest_explains_that_other_tags_are_not_followed() -> None:
    result = parse_policy("digest").select(["latest", "1.0.0", "a.sig"], "latest")
    assert [(v.tag, v.reason) for v in result.verdicts] == [
        ("latest", "current"),
        ("a.sig", "excluded"),
        ("1.0.0", "filtered"),
    ]
    other = result.verdict("1.0.0")
    assert other is not None
    assert "follows only the current tag latest" in other.detail


# --- ignore globs ---------------------------------------------------------------------------

IGNORE_CASES = [
    pytest.param(
        ["latest"], ["1.0.0", "latest", "2.0.0"], "alphabetical", ("2.0.0", "1.0.0"), id="exact"
    ),
    pytest.param(["*-dev"], ["a-dev", "b", "a-dev2"], "alphabetical", ("b", "a-dev2"), id="suffix"),
    pytest.param(
        ["pr-*", "*-dev"], ["pr-1", "x-dev", "main"], "alphabetical", ("main",), id="several"
    ),
    pytest.param(
        [" latest ", "dev"], ["latest", "dev", "x"], "alphabetical", ("x",), id="whitespace-trimmed"
    ),
    pytest.param(
        ["2.*"], ["1.0.0", "2.0.0", "2.1.0-rc.1"], "semver:>=0.0.0-0", ("1.0.0",), id="semver"
    ),
    pytest.param(
        ["1?"], ["10", "11", "9", "100"], "numerical", ("100", "9"), id="numerical-question-mark"
    ),
    pytest.param(["v[0-9]"], ["v1", "v12", "vx"], "alphabetical", ("vx", "v12"), id="class"),
    pytest.param(["*"], ["a", "b"], "alphabetical", (), id="everything"),
    pytest.param([], ["a", "b"], "alphabetical", ("b", "a"), id="none"),
]


@pytest.mark.parametrize(("ignore", "tags", "spec", "candidates"), IGNORE_CASES)
def test_ignore_conformance(
    ignore: list[str], tags: list[str], spec: str, candidates: tuple[str, ...]
) -> None:
    result = parse_policy(spec, ignore=ignore).select(tags)
    assert result.candidates == candidates
    for tag in set(tags) - set(candidates):
        verdict = result.verdict(tag)
        assert verdict is not None
        if verdict.reason == "ignored":
            assert "matches the ignore glob" in verdict.detail


def test_ignore_matches_the_original_tag_not_the_extracted_value() -> None:
    policy = parse_policy("numerical", filter=r"^build-(?P<n>\d+)$", extract="$n", ignore=["7"])
    assert policy.select(["build-7", "build-5"]).selected == "build-7"
    policy = parse_policy("numerical", filter=r"^build-(?P<n>\d+)$", extract="$n", ignore=["*-7"])
    assert policy.select(["build-7", "build-5"]).selected == "build-5"


def test_an_ignored_current_tag_is_not_a_candidate_and_is_replaced() -> None:
    result = parse_policy("semver:*", ignore=["1.5.0"]).select(["1.0.0", "1.5.0"], "1.5.0")
    assert _core(result) == ("1.0.0", ("1.0.0",), False)


def test_the_verdict_names_the_first_ignore_glob_that_matched() -> None:
    result = parse_policy("alphabetical", ignore=["*-dev", "a*"]).select(["a-dev"])
    assert result.verdicts[0].detail == "a-dev matches the ignore glob '*-dev'."


@pytest.mark.parametrize(
    ("ignore", "hint"),
    [
        ([""], "ignore glob 1 of 1 is empty"),
        (["latest", "  "], "ignore glob 2 of 2 is empty"),
        (["v[0-9"], "ignore glob 'v[0-9' has a '[' at position 1 that is never closed"),
        (["[]"], "ignore glob '[]' has an empty class"),
    ],
)
def test_an_empty_or_malformed_ignore_glob_is_rejected(ignore: list[str], hint: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy("semver:^1", ignore=ignore)
    message = str(caught.value)
    assert message.startswith("policy 'semver:^1': ")
    assert hint in message
    assert "Fix:" in message


def test_ignore_must_be_a_list_of_globs_not_the_raw_annotation() -> None:
    with pytest.raises(TypeError, match="sequence of globs"):
        parse_policy("semver:^1", ignore="latest,dev")
