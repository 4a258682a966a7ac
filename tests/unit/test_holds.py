"""The rollback-hold rule (automator.holds): pure, with real policies from parse_policy."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from automator.holds import Hold, Rejection, held, rejection, release_hint
from automator.policy import Policy, parse_policy

IMG = "reg.example/team/web"
D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
D3 = "sha256:" + "3" * 64


def judge(spec: str, current: str, written: str, tags: list[str], part: str = "image") -> bool:
    """Whether a field reading ``current``, last written ``written`` by us, is held."""
    policy = parse_policy(spec)
    rej = rejection(current, written, part)
    assert rej is not None
    assert rej.tag is not None
    above = policy.select(tags, rej.tag)
    return held(rej, policy, above, None, part)


def test_a_field_that_still_says_what_the_automator_wrote_is_not_rejected() -> None:
    assert rejection(f"{IMG}:1.1.0", f"{IMG}:1.1.0", "image") is None


def test_a_value_in_another_repository_is_a_different_image_not_a_rollback() -> None:
    assert rejection("other.example/web:1.0.0", f"{IMG}:1.1.0", "image") is None


def test_a_name_field_is_never_held() -> None:
    assert rejection("reg.example/old", "reg.example/new", "name") is None


def test_an_unparsable_value_is_never_held() -> None:
    assert rejection("not an image::", f"{IMG}:1.1.0", "image") is None


def test_a_reverted_tag_is_rejected_with_its_tag_and_the_persons_tag() -> None:
    assert rejection(f"{IMG}:1.0.0", f"{IMG}:1.1.0@{D1}", "image") == Rejection(
        f"{IMG}:1.1.0@{D1}", "1.1.0", D1, "1.0.0"
    )


def test_the_rejected_tag_itself_and_anything_older_stay_held() -> None:
    assert judge("semver:^1.0", f"{IMG}:1.0.0", f"{IMG}:1.1.0", ["1.0.0", "1.1.0"])
    assert judge("semver:^1.0", f"{IMG}:1.0.0", f"{IMG}:1.1.0", ["1.0.0", "1.0.5"])


def test_a_tag_strictly_newer_than_the_rejected_one_ends_the_hold() -> None:
    assert not judge("semver:^1.0", f"{IMG}:1.0.0", f"{IMG}:1.1.0", ["1.0.0", "1.1.0", "1.2.0"])


def test_a_tag_of_the_same_version_with_another_spelling_does_not_end_the_hold() -> None:
    assert judge("semver:^1.0", f"{IMG}:1.0.0", f"{IMG}:1.1.0", ["1.1.0", "v1.1.0"])


def test_the_hold_still_applies_when_the_registry_no_longer_lists_the_rejected_tag() -> None:
    assert judge("semver:^1.0", f"{IMG}:1.0.0", f"{IMG}:1.1.0", ["1.0.0"])


def test_a_person_who_moved_forward_is_not_held() -> None:
    assert not judge("semver:^1.0", f"{IMG}:1.3.0", f"{IMG}:1.1.0", ["1.1.0", "1.3.0"])
    # Even to a tag the registry does not list yet.
    assert not judge("semver:^1.0", f"{IMG}:1.3.0", f"{IMG}:1.1.0", ["1.1.0"])


def test_a_policy_that_no_longer_admits_the_rejected_tag_ends_the_hold() -> None:
    # The person narrowed the range to 1.0.x: their new policy is the newer decision.
    assert not judge("semver:~1.0.0", f"{IMG}:1.0.0", f"{IMG}:1.1.0", ["1.0.0", "1.0.3", "1.1.0"])


def test_a_current_tag_the_policy_does_not_rank_is_held_below_the_rejected_one() -> None:
    assert judge("semver:^1.0", f"{IMG}:latest", f"{IMG}:1.1.0", ["latest", "1.1.0"])


@pytest.mark.parametrize(
    ("spec", "current", "written", "tags", "expected"),
    [
        ("numerical", "5", "7", ["5", "7"], True),
        ("numerical", "5", "7", ["5", "7", "8"], False),
        ("alphabetical", "a", "c", ["b", "c"], True),
        ("alphabetical", "a", "c", ["c", "d"], False),
        # desc: the smallest wins; "b" was written, "c" put back; only "a" is newer.
        ("alphabetical:desc", "c", "b", ["b", "c"], True),
        ("alphabetical:desc", "c", "b", ["a", "c"], False),
    ],
)
def test_other_orders_compare_with_the_policys_own_direction(
    spec: str, current: str, written: str, tags: list[str], expected: bool
) -> None:
    assert judge(spec, f"{IMG}:{current}", f"{IMG}:{written}", tags) is expected


def test_a_tag_only_marker_field_is_judged_on_its_tags() -> None:
    assert judge("semver:^1.0", "1.0.0", "1.1.0", ["1.0.0", "1.1.0"], part="tag")
    assert not judge("semver:^1.0", "1.0.0", "1.1.0", ["1.1.0", "1.2.0"], part="tag")


def test_newest_build_holds_while_the_rejected_tag_has_no_build_time() -> None:
    policy = parse_policy("newest-build")
    rej = rejection(f"{IMG}:a", f"{IMG}:b", "image")
    assert rej is not None
    t = datetime(2026, 1, 1, tzinfo=UTC)
    # "b" was deleted from the registry: its build time is unknown, order undecidable.
    above = policy.select(["a", "c"], "b", created={"a": t, "c": t.replace(day=2)})
    assert held(rej, policy, above, None, "image")
    # Known and older than "c": "c" is newer, the hold ends.
    above = policy.select(
        ["a", "b", "c"], "b", created={"a": t, "b": t.replace(day=2), "c": t.replace(day=3)}
    )
    assert not held(rej, policy, above, None, "image")


def test_a_digest_policy_never_writes_the_rejected_digest_again() -> None:
    policy = parse_policy("digest")
    rej = rejection(f"{IMG}:latest@{D1}", f"{IMG}:latest@{D2}", "image")
    assert rej is not None
    assert held(rej, policy, None, f"{IMG}:latest@{D2}", "image")
    assert not held(rej, policy, None, f"{IMG}:latest@{D3}", "image")
    assert not held(rej, policy, None, None, "image")


def test_a_digest_marker_field_never_writes_the_rejected_digest_again() -> None:
    policy: Policy = parse_policy("semver:^1.0")
    rej = rejection(D1, D2, "digest")
    assert rej is not None
    assert rej.tag is None
    assert held(rej, policy, None, D2, "digest")
    assert not held(rej, policy, None, D3, "digest")


def test_the_same_tag_with_a_digest_changed_by_hand_is_not_held() -> None:
    policy = parse_policy("semver:^1.0")
    rej = rejection(f"{IMG}:1.1.0@{D1}", f"{IMG}:1.1.0@{D2}", "image")
    assert rej is not None
    assert not held(rej, policy, policy.select(["1.1.0"], "1.1.0"), None, "image")


def test_the_release_hint_names_the_newer_tag_the_value_and_the_switch() -> None:
    rej = rejection(f"{IMG}:1.0.0", f"{IMG}:1.1.0", "image")
    assert rej is not None
    hint = release_hint(rej, "web", None)
    assert "a tag newer than 1.1.0 ends the hold" in hint
    assert f"set the value to {IMG}:1.1.0 yourself" in hint
    assert 'automator.gitops.io/rollback-hold.web: "false"' in hint
    by_digest = release_hint(rej, "web", None, by_digest=True)
    assert by_digest.startswith(f"a digest other than {IMG}:1.1.0 ends the hold")
    marker = release_hint(rej, "spec.image", "team:web")
    assert "spec.rollbackHold: false in the ImagePolicy the marker 'team:web' names" in marker


def test_the_reason_says_what_was_rejected_who_changed_it_and_where() -> None:
    hold = Hold(
        current=f"{IMG}:1.0.0",
        rejected=f"{IMG}:1.1.0",
        commit="a" * 40,
        date="2026-01-01T00:00:00+00:00",
        changed_in="b" * 40,
        changed_by="Ann <ann@example.com>",
        subject="Revert web",
        release="x",
    )
    assert hold.reason == (
        f"{IMG}:1.1.0 was written by aaaaaaaaaa and changed back to {IMG}:1.0.0 by "
        "Ann <ann@example.com> in bbbbbbbbbb ('Revert web'); the automator keeps the "
        "person's choice"
    )
    assert hold.as_dict()["release"] == "x"
