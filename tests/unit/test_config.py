"""The configuration file is validated once, with errors that name the key and the fix."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from automator.config import (
    config_path,
    load_settings,
    parse_duration,
    read_secret,
    settings_from_mapping,
)
from automator.errors import ConfigError

MINIMAL = {"git": {"url": "file:///srv/config.git"}}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "automator.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_design_example_is_accepted_with_its_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_TOKEN", "t")
    monkeypatch.setenv("REG_PASSWORD", "p")
    monkeypatch.setenv("HOOK_SECRET", "h")
    settings = load_settings(
        write(
            tmp_path,
            """
git:
  url: http://127.0.0.1:8081/config.git
  branch: main
  push_branch: auto
  paths: [clusters/prod]
  author: {name: Automator, email: automator@example.com}
  username: automator
  password_env: GIT_TOKEN
  ssh_key_file: /etc/automator/ssh/key
  known_hosts_file: /etc/automator/ssh/known_hosts
registries:
  - host: 127.0.0.1:5001
    url: http://127.0.0.1:5001
    username: alice
    password_env: REG_PASSWORD
    docker_config: ~/.docker/config.json
    ca_file: /etc/automator/registry-ca.pem
interval: 5m
http:
  listen: 127.0.0.1:8080
  webhook_secret_env: HOOK_SECRET
batch_window: 5s
""",
        )
    )
    assert settings.git.paths == ("clusters/prod",)
    assert settings.git.target_branch == "auto"
    assert settings.interval == 300.0
    assert settings.batch_window == 5.0
    reg = settings.registry_for("127.0.0.1:5001")
    assert reg is not None
    assert reg.base_url == "http://127.0.0.1:5001"
    assert settings.registry_for("ghcr.io") is None


def test_defaults_fill_everything_but_the_git_url() -> None:
    settings = settings_from_mapping(MINIMAL)
    assert settings.git.branch == "main"
    assert settings.git.target_branch == "main"
    assert settings.git.paths == ()
    assert settings.interval == 300.0
    assert settings.http.listen == "127.0.0.1:8080"


def test_settings_are_frozen() -> None:
    settings = settings_from_mapping(MINIMAL)
    with pytest.raises(Exception, match="frozen"):
        settings.interval = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"git": {"url": "file:///x", "brnach": "main"}}, "unknown key git.brnach"),
        (
            {**MINIMAL, "registries": [{"host": "a", "pasword_env": "X"}]},
            "unknown key registries[0].pasword_env",
        ),
        ({"interval": "5m"}, "required key git is missing"),
        ({"git": {"branch": "main"}}, "required key git.url is missing"),
        ({"git": {"url": "ftp://host/repo"}}, "key git.url: 'ftp://host/repo' is not a supported"),
        ({**MINIMAL, "interval": "5 minutes"}, "key interval: '5 minutes' is not a duration"),
        ({**MINIMAL, "interval": True}, "key interval"),
        ({"git": {"url": "file:///x", "paths": "clusters"}}, "key git.paths"),
        ({"git": {"url": "file:///x", "paths": ["../etc"]}}, "inside the repository"),
        ({**MINIMAL, "registries": [{"host": "r", "url": "r:5000"}]}, "registries[0].url"),
        ({**MINIMAL, "http": {"listen": "8080"}}, "key http.listen"),
        ({"git": {"url": "http://h/r.git", "password_env": "T"}}, "needs git.username"),
        (
            {
                "git": {
                    "url": "http://h/r.git",
                    "username": "u",
                    "password_env": "T",
                    "password_file": "/t",
                }
            },
            "not both",
        ),
    ],
)
def test_bad_configuration_names_the_key_and_the_fix(
    data: dict[str, object], fragment: str
) -> None:
    with pytest.raises(ConfigError) as info:
        settings_from_mapping(data)
    assert fragment in str(info.value)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        settings_from_mapping({"git": {"url": "ftp://x", "bogus": 1}, "interval": "x"})
    text = str(info.value)
    assert "git.url" in text
    assert "git.bogus" in text
    assert "interval" in text


def test_a_missing_file_names_the_ways_to_point_at_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--config FILE or set AUTOMATOR_CONFIG"):
        load_settings(tmp_path / "nope.yaml")


def test_invalid_yaml_and_non_mapping_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(write(tmp_path, "git: [unclosed"))
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_settings(write(tmp_path, "- just a list"))


def test_a_referenced_secret_that_is_not_set_fails_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOT_SET_TOKEN", raising=False)
    path = write(
        tmp_path, "git: {url: 'http://h/r.git', username: u, password_env: NOT_SET_TOKEN}\n"
    )
    with pytest.raises(ConfigError, match=r"git\.password_env: environment variable NOT_SET_TOKEN"):
        load_settings(path)


def test_secrets_are_read_from_env_or_file_and_never_kept_in_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_file = tmp_path / "token"
    secret_file.write_text("s3cr3t-from-file\n")
    monkeypatch.setenv("REG_PW", "s3cr3t-from-env")
    settings = settings_from_mapping(
        {
            **MINIMAL,
            "git": {"url": "http://h/r.git", "username": "u", "password_file": str(secret_file)},
            "registries": [{"host": "r:1", "password_env": "REG_PW"}],
        }
    )
    assert read_secret(settings.git.password, key="git.password") == "s3cr3t-from-file"
    assert read_secret(settings.registries[0].password, key="x") == "s3cr3t-from-env"
    dumped = repr(settings) + settings.model_dump_json()
    assert "s3cr3t" not in dumped


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("250ms", 0.25),
        (90, 90.0),
        (1.5, 1.5),
    ],
)
def test_durations_accept_go_style_units(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "5 m", "m5", "-1s", "1d", "5m junk"])
def test_bad_durations_are_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_config_path_prefers_the_flag_then_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AUTOMATOR_CONFIG", "/from/env.yaml")
    assert config_path("/from/flag.yaml") == Path("/from/flag.yaml")
    assert config_path(None) == Path("/from/env.yaml")
    monkeypatch.delenv("AUTOMATOR_CONFIG")
    assert config_path(None) == Path("automator.yaml")


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ({"interval": "0s"}, "key interval"),
        ({"interval": float("inf")}, "finite"),
        ({"interval": float("nan")}, "finite"),
        ({"interval": "9000h"}, "365 days"),
        ({"batch_window": "2h"}, "key batch_window"),
        ({"http": {"listen": "127.0.0.1:99999"}}, "port 1-65535"),
    ],
)
def test_daemon_timings_and_ports_that_cannot_work_are_rejected_at_load(
    extra: dict[str, object], fragment: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        settings_from_mapping({**MINIMAL, **extra})


def test_a_config_error_never_echoes_a_password_written_into_a_url() -> None:
    with pytest.raises(ConfigError) as info:
        settings_from_mapping({"git": {"url": "htps://bob:T0PSECRET@example.com/x.git"}})
    assert "T0PSECRET" not in str(info.value)
    assert "bob:***@" in str(info.value)
