"""filter and extract: which tags are considered, and what is compared for them."""

from __future__ import annotations

import pytest

from automator.errors import PolicyError
from automator.policy import parse_policy

BUILDS = ["main-9-abc1234", "main-10-def5678", "feature-99-0000000", "latest", "main-x-1111111"]


def test_a_filter_keeps_only_tags_it_matches() -> None:
    result = parse_policy("alphabetical", filter="^main-").select(BUILDS)
    assert set(result.candidates) == {"main-9-abc1234", "main-10-def5678", "main-x-1111111"}


def test_a_filter_searches_anywhere_in_the_tag_unless_anchored() -> None:
    result = parse_policy("semver:>=1.0.0-0", filter="rc").select(
        ["1.0.0", "1.1.0-rc.1", "1.0.1-rc.2"]
    )
    assert result.candidates == ("1.1.0-rc.1", "1.0.1-rc.2")


def test_a_current_tag_the_filter_rejects_is_not_a_candidate() -> None:
    result = parse_policy("alphabetical", filter="^main-").select(["main-1"], current="zzz")
    assert (result.selected, result.current_is_candidate) == ("main-1", False)


@pytest.mark.parametrize(
    ("filter_", "extract"),
    [
        (r"^main-(?P<ts>[0-9]+)-", "$ts"),
        (r"^main-(?P<ts>[0-9]+)-", "${ts}"),
        (r"^main-(?<ts>[0-9]+)-", "$ts"),
        (r"^main-([0-9]+)-", "$1"),
        (r"^main-([0-9]+)-", "${1}"),
        (r"^main-(?<ts>[0-9]+)-", "${1}"),
    ],
)
def test_extract_compares_the_expanded_groups_but_selects_the_original_tag(
    filter_: str, extract: str
) -> None:
    result = parse_policy("numerical", filter=filter_, extract=extract).select(BUILDS)
    assert result.selected == "main-10-def5678"
    assert result.candidates == ("main-10-def5678", "main-9-abc1234")


def test_extract_can_combine_groups_and_literals() -> None:
    policy = parse_policy(
        "semver:^1", filter=r"^(?<maj>\d+)-(?<min>\d+)-(?<pat>\d+)$", extract="${maj}.${min}.$pat"
    )
    assert policy.select(["1-2-3", "1-10-0", "2-0-0", "1.11.0"]).selected == "1-10-0"


def test_a_double_dollar_in_extract_is_a_literal_dollar() -> None:
    policy = parse_policy("alphabetical", filter="(?P<n>.+)", extract="$$$n")
    assert policy.select(["a", "b"]).selected == "b"


def test_an_optional_group_that_did_not_take_part_expands_to_nothing() -> None:
    policy = parse_policy("numerical", filter=r"^(?P<pre>x)?(?P<n>[0-9]+)$", extract="$pre$n")
    assert policy.select(["x5", "7"]).candidates == ("7",)


def test_extract_with_semver_compares_the_extracted_version() -> None:
    policy = parse_policy("semver:>=1.0", filter=r"^app-(?P<v>.+)$", extract="$v")
    result = policy.select(["app-1.2.0", "app-1.10.0", "app-latest", "1.99.0", "app-0.9.0"])
    assert result.candidates == ("app-1.10.0", "app-1.2.0")


def test_ties_between_equal_extracted_values_go_to_the_lexically_greatest_tag() -> None:
    policy = parse_policy("numerical", filter=r"-(?P<n>[0-9]+)$", extract="$n")
    assert policy.select(["a-5", "c-5", "b-5", "d-4"]).candidates == ("c-5", "b-5", "a-5", "d-4")


def test_go_lookbehind_and_escaped_parentheses_are_left_alone() -> None:
    lookbehind = parse_policy("numerical", filter="(?<=build-)[0-9]+$", extract="$0")
    assert lookbehind.select(["build-9", "build-10", "other-11"]).selected == "build-10"
    escaped = parse_policy("alphabetical", filter=r"^\(?<x>$")
    assert escaped.select(["<x>", "(<x>", "P<x>"]).candidates == ("<x>", "(<x>")


def test_go_named_group_syntax_inside_a_character_class_is_left_alone() -> None:
    policy = parse_policy("alphabetical", filter=r"^[(?<a>]+$")
    assert policy.select(["(?<a>", "a<?(", "b"]).candidates == ("a<?(", "(?<a>")


def test_an_empty_filter_matches_every_tag() -> None:
    assert parse_policy("numerical", filter="").select(["1", "2"]).selected == "2"


INVALID = [
    (None, "$ts", "without a filter"),
    ("(?P<ts>[0-9]+", None, "not a valid regular expression"),
    ("[", None, "not a valid regular expression"),
    ("(?P<ts>[0-9]+)", "$tz", "'tz'"),
    ("(?P<ts>[0-9]+)", "${tz}", "'tz'"),
    ("(?P<ts>[0-9]+)", "$2", "'2'"),
    ("([0-9]+)", "$1x", "'1x'"),
    ("([0-9]+)", "${}", "''"),
    ("([0-9]+)", "${1", "'$' that names no group"),
    ("([0-9]+)", "cost: $", "'$' that names no group"),
    ("([0-9]+)", "$-$1", "'$' that names no group"),
    ("([0-9]+)", "", "extract is empty"),
]


@pytest.mark.parametrize(("filter_", "extract", "hint"), INVALID)
def test_a_bad_filter_or_extract_is_rejected_when_the_policy_is_built(
    filter_: str | None, extract: str | None, hint: str
) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy("numerical", filter=filter_, extract=extract)
    message = str(caught.value)
    assert hint in message
    assert message.startswith("policy 'numerical': ")
    assert "Fix:" in message


def test_an_unknown_group_error_lists_the_groups_the_filter_has() -> None:
    with pytest.raises(PolicyError, match=r"named groups: \$ts, \$sha"):
        parse_policy("numerical", filter=r"(?P<ts>\d+)-(?P<sha>\w+)", extract="$build")
