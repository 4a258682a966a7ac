"""Reading the newest Automator-Update line per field back from ``git log`` output."""

from __future__ import annotations

import pytest

from automator.gitrepo._updates import parse_update, parse_updates


def commit(sha: str, body: str) -> str:
    return f"{sha}\0" + "2026-01-01T00:00:00+00:00\0" + body + "\0"


def test_a_line_splits_from_the_right_so_only_the_file_may_hold_spaces() -> None:
    assert parse_update(" my dir/web.yaml Deployment/-/web web r/web:1.0.0 -> r/web:1.1.0") == (
        "my dir/web.yaml",
        "Deployment/-/web",
        "web",
        "r/web:1.0.0",
        "r/web:1.1.0",
    )


@pytest.mark.parametrize("value", ["", "a b c", "f D/-/w c old to new", "f D/-/w c old -> "])
def test_a_malformed_line_is_skipped(value: str) -> None:
    assert parse_update(value) is None


def test_the_newest_commit_wins_for_each_field() -> None:
    out = commit(
        "new",
        "Update\n\nAutomator-Update: web.yaml Deployment/-/web web r:1.1.0 -> r:1.2.0\n",
    ) + commit(
        "old",
        "Update 2 images\n\n"
        "Automator-Update: web.yaml Deployment/-/web web r:1.0.0 -> r:1.1.0\n"
        "Automator-Update: web.yaml Deployment/-/web side r:1.0.0 -> r:1.1.0\n",
    )
    records = parse_updates(out, "Automator-Update")
    assert records["web.yaml", "Deployment/-/web", "web"].new == "r:1.2.0"
    assert records["web.yaml", "Deployment/-/web", "web"].commit == "new"
    assert records["web.yaml", "Deployment/-/web", "side"].commit == "old"


def test_a_squash_merge_body_counts_and_its_last_line_for_a_field_wins() -> None:
    body = (
        "Automation (#12)\n\n"
        "* Update web/web to 1.1.0\n\n"
        "Automator-Update: web.yaml Deployment/-/web web r:1.0.0 -> r:1.1.0\n\n"
        "* Update web/web to 1.2.0\n\n"
        "automator-update: web.yaml Deployment/-/web web r:1.1.0 -> r:1.2.0\n\n"
        "Co-authored-by: Bot <bot@example.com>\n"
    )
    records = parse_updates(commit("sq", body), "Automator-Update")
    assert records["web.yaml", "Deployment/-/web", "web"].new == "r:1.2.0"


def test_lines_that_only_mention_the_key_do_not_count() -> None:
    body = "Revert\n\nThis mentions Automator-Update: but in prose\n  Automator-Update: x\n"
    assert parse_updates(commit("r", body), "Automator-Update") == {}


def test_empty_output_means_no_records() -> None:
    assert parse_updates("", "Automator-Update") == {}
