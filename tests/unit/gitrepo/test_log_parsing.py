"""Parsing ``git log -z`` output and trailers back into CommitInfo."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from automator.gitrepo._log import parse_log, parse_trailers

UPDATE = "clusters/a.yaml Deployment/prod/app app ghcr.io/o/app:1.0.0 -> ghcr.io/o/app:1.1.0"


def test_trailer_values_keep_spaces_colons_and_arrows() -> None:
    text = f"Automator-Update: {UPDATE}\nSigned-off-by: A B <a@b>\nSee-Also: http://x:1/y\n"

    assert parse_trailers(text) == (
        ("Automator-Update", UPDATE),
        ("Signed-off-by", "A B <a@b>"),
        ("See-Also", "http://x:1/y"),
    )


def test_lines_that_are_not_trailers_are_ignored() -> None:
    assert parse_trailers("not a trailer\nTwo words: no\n\n") == ()


def test_parse_log_reads_every_field_of_each_commit_in_order() -> None:
    out = (
        "a" * 40 + "\0Automator\0bot@x\0" + "2024-05-01T10:00:00+02:00\0"
        f"Automator-Update: {UPDATE}\n\0Update\n\nAutomator-Update: {UPDATE}\n\0"
        "\n" + "b" * 40 + "\0Human\0h@x\0" + "2024-04-01T00:00:00Z\0\0Initial\n\0"
    )

    first, second = parse_log(out)

    assert first.sha == "a" * 40
    assert second.sha == "b" * 40
    assert first.author_name == "Automator"
    assert first.author_email == "bot@x"
    assert first.date == datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
    assert first.message == f"Update\n\nAutomator-Update: {UPDATE}"
    assert first.trailers == (("Automator-Update", UPDATE),)
    assert second.trailers == ()
    assert second.message == "Initial"


def test_parse_log_of_no_commits_is_empty() -> None:
    assert parse_log("") == []


def test_parse_log_refuses_truncated_output() -> None:
    with pytest.raises(ValueError, match="unexpected git log output"):
        parse_log("abc\0name\0")
