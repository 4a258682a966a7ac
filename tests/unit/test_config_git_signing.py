"""``git.signing`` and ``git.push_options``: what is accepted, and what is refused at start."""

from __future__ import annotations

from pathlib import Path

import pytest

from automator.config import Signing, load_settings, settings_from_mapping
from automator.errors import ConfigError


def git(**extra: object) -> dict[str, object]:
    return {"git": {"url": "file:///srv/config.git", **extra}}


def test_a_signing_section_and_push_options_are_read_as_written(tmp_path: Path) -> None:
    settings = settings_from_mapping(
        git(
            signing={"format": "openpgp", "key_file": "/k.asc", "passphrase_env": "P"},
            push_options=["merge_request.create", "ci.skip"],
        )
    )

    assert settings.git.signing == Signing(
        format="openpgp", key_file=Path("/k.asc"), passphrase_env="P"
    )
    assert settings.git.push_options == ("merge_request.create", "ci.skip")


def test_without_the_keys_nothing_is_signed_and_no_option_is_pushed() -> None:
    settings = settings_from_mapping(git())

    assert settings.git.signing is None
    assert settings.git.push_options == ()


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ({"signing": {"format": "x509", "key_file": "/k"}}, "key git.signing.format"),
        ({"signing": {"format": "ssh"}}, "required key git.signing.key_file is missing"),
        ({"signing": {"format": "ssh", "key_file": "/k", "passphrase": "x"}}, "unknown key"),
        (
            {
                "signing": {
                    "format": "ssh",
                    "key_file": "/k",
                    "passphrase_env": "P",
                    "passphrase_file": "/p",
                }
            },
            "passphrase_env or git.signing.passphrase_file, not both",
        ),
        ({"push_options": ["ok", ""]}, "key git.push_options"),
        ({"push_options": ["a\nb"]}, "one non-empty line per entry"),
        ({"push_options": "merge_request.create"}, "key git.push_options"),
    ],
)
def test_bad_signing_or_push_options_name_the_key_and_the_fix(
    extra: dict[str, object], fragment: str
) -> None:
    with pytest.raises(ConfigError) as info:
        settings_from_mapping(git(**extra))
    assert fragment in str(info.value)


def test_an_unreadable_key_file_fails_at_start_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "automator.yaml"
    config.write_text(
        "git:\n  url: file:///srv/config.git\n"
        f"  signing: {{format: ssh, key_file: {tmp_path / 'nope'}}}\n"
    )

    with pytest.raises(ConfigError, match=r"git\.signing\.key_file: cannot read .*nope"):
        load_settings(config)


def test_an_unset_passphrase_variable_fails_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("UNSET_SIGNING_PASSPHRASE", raising=False)
    key = tmp_path / "key"
    key.write_text("not checked here\n")
    config = tmp_path / "automator.yaml"
    config.write_text(
        "git:\n  url: file:///srv/config.git\n"
        f"  signing: {{format: ssh, key_file: {key}, passphrase_env: UNSET_SIGNING_PASSPHRASE}}\n"
    )

    with pytest.raises(ConfigError, match=r"git\.signing\.passphrase_env: .*UNSET_SIGNING"):
        load_settings(config)
