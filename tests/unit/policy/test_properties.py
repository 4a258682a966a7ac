"""Properties that must hold for any tag list: determinism, totality, no downgrades."""

from __future__ import annotations

import random
from decimal import Decimal

import semver
from hypothesis import assume, given
from hypothesis import strategies as st

from automator.policy import parse_policy
from automator.policy._tags import is_artefact_tag
from automator.policy.semver_range import Range, parse_tag, version_key

_num = st.integers(min_value=0, max_value=12)
_pre = st.none() | st.lists(
    st.sampled_from(["0", "1", "2", "10", "rc", "alpha", "beta", "x-1"]), min_size=1, max_size=3
).map(".".join)
_build = st.none() | st.sampled_from(["b1", "b2", "build.7", "001"])


@st.composite
def _semver_tags(draw: st.DrawFn) -> str:
    tag = f"{draw(st.sampled_from(['', 'v']))}{draw(_num)}.{draw(_num)}.{draw(_num)}"
    if (pre := draw(_pre)) is not None:
        tag += f"-{pre}"
    if (build := draw(_build)) is not None:
        tag += f"+{build}"
    return tag


_noise = st.sampled_from(
    [
        "latest",
        "main",
        "1.2",
        "20240101",
        "sha-1a2b",
        "sha256-ab.sig",
        "1.2.3.att",
        "10",
        "-3",
        "2.5",
    ]
)
_tags = st.lists(_semver_tags() | _noise | st.text(max_size=8), max_size=25)
_specs = st.sampled_from(
    [
        "semver:*",
        "semver:^1",
        "semver:~1.2 || >=3.0.0-0",
        "semver:>=0.0.0-0",
        "semver:1.x, !=1.2.x",
        "semver:2 - 5.5",
        "alphabetical",
        "alphabetical:desc",
        "numerical",
        "numerical:desc",
    ]
)
_current = st.none() | _semver_tags() | _noise


@given(_specs, _tags, _current, st.randoms(use_true_random=False))
def test_the_selection_does_not_depend_on_the_order_or_repetition_of_tags(
    spec: str, tags: list[str], current: str | None, rnd: random.Random
) -> None:
    policy = parse_policy(spec)
    shuffled = [*tags, *tags]
    rnd.shuffle(shuffled)
    assert policy.select(shuffled, current) == policy.select(tags, current)


@given(_specs, _tags, _current)
def test_the_selection_is_an_input_tag_the_current_tag_or_nothing(
    spec: str, tags: list[str], current: str | None
) -> None:
    result = parse_policy(spec).select(tags, current)
    assert result.selected is None or result.selected in {*tags, current}
    if current is None or current in tags:
        assert result.selected is None or result.selected in tags
    assert (result.selected is None) == (not result.candidates)
    assert set(result.candidates) <= set(tags)
    assert len(set(result.candidates)) == len(result.candidates)
    assert not any(is_artefact_tag(tag) for tag in result.candidates)


@given(_specs, _tags, _current)
def test_an_eligible_current_tag_is_never_replaced_by_a_tag_ranked_below_it(
    spec: str, tags: list[str], current: str | None
) -> None:
    policy = parse_policy(spec)
    result = policy.select(tags, current)
    if current is None or not (result.current_is_candidate and result.candidates):
        # Nothing to protect: the best candidate (or nothing) is selected.
        assert result.selected == (result.candidates[0] if result.candidates else None)
        return
    # Rank everything together: the selection must sit at or above the current tag.
    ranking = policy.select([*tags, current]).candidates
    assert current in ranking
    assert result.selected is not None
    assert ranking.index(result.selected) <= ranking.index(current)
    assert result.selected in (ranking[0], current)


@given(_specs, _tags)
def test_without_a_current_tag_the_best_candidate_is_selected(spec: str, tags: list[str]) -> None:
    result = parse_policy(spec).select(tags)
    assert result.selected == (result.candidates[0] if result.candidates else None)
    assert result.current_is_candidate is False


@given(_tags)
def test_semver_candidates_are_in_strictly_descending_total_order(tags: list[str]) -> None:
    candidates = parse_policy("semver:>=0.0.0-0").select(tags).candidates
    keys = []
    for tag in candidates:
        version = parse_tag(tag)
        assert version is not None
        keys.append((version_key(version), tag))
    assert keys == sorted(keys, reverse=True)
    assert len(set(keys)) == len(keys)


@given(_tags)
def test_semver_candidates_are_exactly_the_parseable_tags_the_range_allows(tags: list[str]) -> None:
    spec_range = Range.parse("~1.2 || >=3.0.0-0")
    expected = {
        tag
        for tag in tags
        if not is_artefact_tag(tag) and (v := parse_tag(tag)) is not None and spec_range.allows(v)
    }
    assert set(parse_policy("semver:~1.2 || >=3.0.0-0").select(tags).candidates) == expected


@given(st.lists(st.integers(min_value=-(10**20), max_value=10**20).map(str), min_size=1))
def test_numerical_selects_the_numeric_maximum(tags: list[str]) -> None:
    assert parse_policy("numerical").select(tags).selected == max(
        tags, key=lambda t: (Decimal(t), t)
    )


@given(st.lists(st.text(max_size=6), min_size=1))
def test_alphabetical_selects_the_greatest_string_that_is_not_an_artefact(tags: list[str]) -> None:
    eligible = [tag for tag in tags if not is_artefact_tag(tag)]
    assert parse_policy("alphabetical").select(tags).selected == (
        max(eligible) if eligible else None
    )


_versions = st.builds(
    semver.Version,
    _num,
    _num,
    _num,
    prerelease=st.none() | st.sampled_from(["rc.1", "0", "alpha", "beta.2"]),
    build=_build,
)
_full = st.builds("{}.{}.{}".format, _num, _num, _num)


@given(_full, _versions)
def test_caret_on_a_nonzero_major_means_at_least_that_version_within_the_major(
    base: str, version: semver.Version
) -> None:
    floor = parse_tag(base)
    assert floor is not None
    assume(floor.major > 0)
    expected = (
        not version.prerelease
        and version_key(version) >= version_key(floor)
        and version.major == floor.major
    )
    assert Range.parse(f"^{base}").allows(version) is expected


@given(_full, _versions)
def test_tilde_on_a_full_version_means_at_least_that_version_within_the_minor(
    base: str, version: semver.Version
) -> None:
    floor = parse_tag(base)
    assert floor is not None
    expected = (
        not version.prerelease
        and version_key(version) >= version_key(floor)
        and (version.major, version.minor) == (floor.major, floor.minor)
    )
    assume(base != "0.0.0")  # "~0.0.0" admits everything upstream
    assert Range.parse(f"~{base}").allows(version) is expected


@given(_full, _full, _versions)
def test_a_hyphen_range_of_full_versions_is_an_inclusive_interval(
    low: str, high: str, version: semver.Version
) -> None:
    assert Range.parse(f"{low} - {high}").allows(version) is Range.parse(
        f">={low} <={high}"
    ).allows(version)


_terms = st.sampled_from(
    ["*", ">=1.2", "<3", "!=1.2.x", "^1", "~2.1", "1.x", ">0.5.0-0", "<=2", "=1.2.3", "2.0.0-rc.1"]
)


@given(_terms, _terms, _versions)
def test_comma_and_space_both_mean_and_and_double_bar_means_or(
    left: str, right: str, version: semver.Version
) -> None:
    spaced = Range.parse(f"{left} {right}").allows(version)
    assert Range.parse(f"{left}, {right}").allows(version) is spaced
    assert Range.parse(f"{left},{right}").allows(version) is spaced
    either = Range.parse(f"{left} || {right}").allows(version)
    assert either is (Range.parse(left).allows(version) or Range.parse(right).allows(version))


@given(_versions, st.sampled_from(["", "v"]))
def test_a_rendered_version_parses_back_to_itself(version: semver.Version, prefix: str) -> None:
    parsed = parse_tag(prefix + str(version))
    assert parsed is not None
    assert parsed.to_tuple() == version.to_tuple()
