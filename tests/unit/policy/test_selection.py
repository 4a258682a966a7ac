"""Selecting a tag: ordering, ties, no downgrades, skipped and excluded tags, per strategy."""

from __future__ import annotations

import pytest

from automator.policy import Policy, Selection, parse_policy

REGISTRY = [
    "1.0.0",
    "1.2.0",
    "v1.3.0",
    "1.10.0",
    "2.0.0",
    "2.1.0-rc.1",
    "latest",
    "1.2",
    "sha-1a2b",
]


def _select(spec: str, tags: list[str], current: str | None = None) -> Selection:
    return parse_policy(spec).select(tags, current)


def _outcome(result: Selection) -> tuple[str | None, tuple[str, ...], bool]:
    return (result.selected, result.candidates, result.current_is_candidate)


def _reasons(result: Selection) -> list[tuple[str, str]]:
    return [(verdict.tag, verdict.reason) for verdict in result.verdicts]


# --- semver -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("semver:^1.0", "1.10.0"),
        ("semver:~1.2", "1.2.0"),
        ("semver:>=1.0.0 <1.5", "v1.3.0"),
        ("semver:*", "2.0.0"),
        ("semver:1.x || >=2.1.0-0", "2.1.0-rc.1"),
        ("semver:>=1.0.0-0", "2.1.0-rc.1"),
        ("semver:^3", None),
    ],
)
def test_semver_selects_the_highest_version_the_range_allows(
    spec: str, expected: str | None
) -> None:
    assert _select(spec, REGISTRY).selected == expected


def test_semver_orders_versions_numerically_not_lexically() -> None:
    assert _select("semver:*", ["1.9.0", "1.10.0", "1.2.0"]).candidates == (
        "1.10.0",
        "1.9.0",
        "1.2.0",
    )


def test_semver_lists_every_eligible_tag_best_first_once() -> None:
    result = _select("semver:^1", [*REGISTRY, "1.2.0"])
    assert result.candidates == ("1.10.0", "v1.3.0", "1.2.0", "1.0.0")


def test_tags_that_are_not_strict_semver_are_skipped_not_errors() -> None:
    tags = ["latest", "1.2", "20240101", "sha-1a2b", "01.2.3", "main"]
    result = _select("semver:*", tags)
    assert _outcome(result) == (None, (), False)
    assert _reasons(result) == [(tag, "not-a-version") for tag in sorted(tags)]


def test_a_prerelease_is_skipped_unless_the_range_asks_for_prereleases() -> None:
    tags = ["1.0.0", "1.1.0-rc.1"]
    assert _select("semver:^1", tags).selected == "1.0.0"
    assert _select("semver:^1.0.0-0", tags).selected == "1.1.0-rc.1"


def test_a_release_outranks_its_own_prereleases() -> None:
    assert _select("semver:>=1.0.0-0", ["1.0.0-rc.2", "1.0.0", "1.0.0-rc.10"]).candidates == (
        "1.0.0",
        "1.0.0-rc.10",
        "1.0.0-rc.2",
    )


def test_build_metadata_does_not_order_versions() -> None:
    assert _select("semver:*", ["1.2.4+aaa", "1.2.3+zzz"]).selected == "1.2.4+aaa"


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        (["1.2.3", "v1.2.3"], "v1.2.3"),
        (["v1.2.3", "1.2.3"], "v1.2.3"),
        (["1.2.3+b1", "1.2.3+b2"], "1.2.3+b2"),
        (["1.2.3+b2", "v1.2.3+b1", "1.2.3"], "v1.2.3+b1"),
    ],
)
def test_equal_versions_are_broken_by_the_lexically_greatest_tag(
    tags: list[str], expected: str
) -> None:
    assert _select("semver:*", tags).selected == expected


def test_the_current_tag_stays_when_the_registry_only_has_older_tags() -> None:
    result = _select("semver:^1", ["1.0.0", "1.1.0"], current="1.5.0")
    assert _outcome(result) == ("1.5.0", ("1.1.0", "1.0.0"), True)
    assert _reasons(result) == [("1.5.0", "current"), ("1.1.0", "lower"), ("1.0.0", "lower")]


def test_the_current_tag_stays_when_it_is_already_the_best() -> None:
    assert _select("semver:^1", ["1.0.0", "1.5.0"], current="1.5.0").selected == "1.5.0"


def test_a_newer_tag_replaces_an_eligible_current_tag() -> None:
    result = _select("semver:^1", ["1.0.0", "1.6.0"], current="1.5.0")
    assert (result.selected, result.current_is_candidate) == ("1.6.0", True)


def test_an_equal_version_never_replaces_the_current_tag_so_spellings_do_not_churn() -> None:
    assert _select("semver:*", ["1.2.3", "v1.2.3"], current="1.2.3").selected == "1.2.3"
    assert _select("semver:*", ["1.2.3", "v1.2.3"], current="v1.2.3").selected == "v1.2.3"
    assert _select("semver:*", ["1.2.3+b2"], current="1.2.3+b1").selected == "1.2.3+b1"


def test_the_tie_break_still_orders_equal_candidates_when_the_current_tag_is_not_one() -> None:
    result = _select("semver:*", ["1.2.3", "v1.2.3"], current="latest")
    assert result.selected == "v1.2.3"
    assert result.candidates == ("v1.2.3", "1.2.3")


@pytest.mark.parametrize("current", ["latest", "main", "1.2", "2.0.0", "1.1.0-rc.1", None])
def test_a_current_tag_the_policy_does_not_accept_is_replaced_by_the_best(
    current: str | None,
) -> None:
    result = _select("semver:^1", ["1.0.0", "1.1.0"], current=current)
    assert (result.selected, result.current_is_candidate) == ("1.1.0", False)


def test_no_candidate_means_no_selection_even_with_an_eligible_current_tag() -> None:
    result = _select("semver:^1", ["latest"], current="1.0.0")
    assert _outcome(result) == (None, (), True)
    assert _reasons(result) == [("1.0.0", "current"), ("latest", "not-a-version")]


def test_an_empty_tag_list_selects_nothing() -> None:
    assert _select("semver:*", []) == Selection(None, (), False, ())


def test_select_accepts_any_iterable_of_tags_including_a_generator() -> None:
    assert parse_policy("semver:*").select(t for t in ["1.0.0", "2.0.0"]).selected == "2.0.0"


# --- artefact tags (every strategy) ---------------------------------------------------------

ARTEFACTS = [
    "sha256-9f86d081.sig",
    "sha256-9f86d081.att",
    "sha256-9f86d081.sbom",
    "sha256-9f86d081",
]


@pytest.mark.parametrize("spec", ["alphabetical", "alphabetical:desc", "numerical", "semver:*"])
def test_signature_attestation_and_sbom_tags_are_never_candidates(spec: str) -> None:
    tags = [*ARTEFACTS, "zzz.sig", "999.att", "9.9.9.sbom", "0", "0.0.0", "a"]
    result = parse_policy(spec).select(tags)
    assert not set(result.candidates) & {*ARTEFACTS, "zzz.sig", "999.att", "9.9.9.sbom"}
    assert result.selected is not None


def test_an_artefact_tag_as_current_is_not_a_candidate() -> None:
    result = _select("alphabetical", ["a"], current="zzz.sig")
    assert (result.selected, result.current_is_candidate) == ("a", False)


# --- alphabetical ---------------------------------------------------------------------------

MINIO = [
    "RELEASE.2024-01-31T20-20-33Z",
    "RELEASE.2024-02-01T00-00-00Z",
    "RELEASE.2023-12-31T23-59-59Z",
]


@pytest.mark.parametrize(
    "spec", ["alphabetical", "alphabetical:asc", "alphabetical:ASC", " alphabetical "]
)
def test_alphabetical_ascending_selects_the_lexically_greatest_tag(spec: str) -> None:
    assert _select(spec, MINIO).selected == "RELEASE.2024-02-01T00-00-00Z"


def test_alphabetical_descending_selects_the_lexically_smallest_tag() -> None:
    result = _select("alphabetical:desc", MINIO)
    assert result.candidates == (
        "RELEASE.2023-12-31T23-59-59Z",
        "RELEASE.2024-01-31T20-20-33Z",
        "RELEASE.2024-02-01T00-00-00Z",
    )


def test_alphabetical_compares_by_code_point_so_uppercase_sorts_first() -> None:
    assert _select("alphabetical", ["b", "B", "a"]).candidates == ("b", "a", "B")


def test_alphabetical_never_downgrades_an_eligible_current_tag() -> None:
    assert _select("alphabetical", ["a", "b"], current="c").selected == "c"
    assert _select("alphabetical:desc", ["b", "c"], current="a").selected == "a"


# --- numerical ------------------------------------------------------------------------------


def test_numerical_ascending_selects_the_largest_number_not_the_lexically_greatest() -> None:
    assert _select("numerical", ["9", "10", "100", "11"]).selected == "100"


def test_numerical_descending_selects_the_smallest_number() -> None:
    assert _select("numerical:desc", ["9", "10", "-3", "0.5"]).candidates == (
        "-3",
        "0.5",
        "9",
        "10",
    )


@pytest.mark.parametrize(
    "tag",
    [
        "latest",
        "1.2.3",
        "v10",
        "inf",
        "nan",
        "NaN",
        "0x10",
        "1_000",
        "",
        " 1",
        "1e",
        "--1",
        "\uff11",
    ],
)
def test_numerical_skips_tags_that_are_not_plain_decimal_numbers(tag: str) -> None:
    result = _select("numerical", [tag, "1"])
    assert result.candidates == ("1",)


def test_numerical_understands_decimals_signs_and_exponents() -> None:
    assert _select("numerical", ["999", "1e3", "+998.5", "-1000", ".5"]).candidates == (
        "1e3",
        "999",
        "+998.5",
        ".5",
        "-1000",
    )


def test_numerical_keeps_long_timestamps_distinct_where_floats_would_not() -> None:
    assert _select("numerical", ["20240101123456789", "20240101123456790"]).selected == (
        "20240101123456790"
    )


def test_numerically_equal_tags_are_broken_by_the_lexically_greatest_tag() -> None:
    assert _select("numerical", ["1", "1.0", "01"]).candidates == ("1.0", "1", "01")
    assert _select("numerical:desc", ["1", "1.0", "2"]).candidates == ("1.0", "1", "2")


def test_numerical_never_downgrades_an_eligible_current_tag() -> None:
    result = _select("numerical", ["10", "11"], current="12")
    assert (result.selected, result.current_is_candidate) == ("12", True)


def test_every_policy_satisfies_the_policy_protocol_and_keeps_its_spec() -> None:
    for spec in ["semver:^1.2", "alphabetical:desc", "numerical"]:
        policy = parse_policy(spec)
        assert isinstance(policy, Policy)
        assert policy.spec == spec
