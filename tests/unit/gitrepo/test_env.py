"""The per-command git environment: credentials scoped to the remote, prompts off."""

from __future__ import annotations

import base64
import shlex
from pathlib import Path

from automator.gitrepo._env import build_git_env, ssh_command
from automator.gitrepo._urls import parse_remote_url


def _config(env: dict[str, str] | object) -> dict[str, str]:
    assert isinstance(env, dict)
    count = int(env["GIT_CONFIG_COUNT"])
    return {env[f"GIT_CONFIG_KEY_{i}"]: env[f"GIT_CONFIG_VALUE_{i}"] for i in range(count)}


def test_http_credentials_become_an_auth_header_scoped_to_the_remote_origin() -> None:
    remote = parse_remote_url("http://127.0.0.1:8081/config.git")

    genv = build_git_env(remote, username="bot", password="pw")

    config = _config(dict(genv.env))
    token = base64.b64encode(b"bot:pw").decode()
    assert config["http.http://127.0.0.1:8081/.extraHeader"] == f"Authorization: Basic {token}"
    assert set(genv.secrets) == {"pw", token}


def test_no_password_means_no_auth_header_and_no_secrets() -> None:
    genv = build_git_env(parse_remote_url("https://h/r.git"), username="bot", password=None)

    assert not any("extraHeader" in k for k in _config(dict(genv.env)))
    assert genv.secrets == ()


def test_every_command_runs_with_prompts_off_and_without_credential_helpers() -> None:
    genv = build_git_env(parse_remote_url("file:///r.git"), username=None, password=None)

    assert genv.env["GIT_TERMINAL_PROMPT"] == "0"
    assert genv.env["GIT_ASKPASS"] == ""
    config = _config(dict(genv.env))
    assert config["credential.helper"] == ""
    assert config["core.autocrlf"] == "false"


def test_the_password_is_never_passed_as_a_plain_value_in_the_environment() -> None:
    genv = build_git_env(parse_remote_url("https://h/r.git"), username="u", password="hunter2")

    assert not any("hunter2" in v for v in genv.env.values())


def test_ssh_remotes_get_a_strict_batch_mode_ssh_command() -> None:
    genv = build_git_env(
        parse_remote_url("ssh://git@h/r.git"),
        username=None,
        password=None,
        ssh_key_file=Path("/keys/id ed25519"),
        known_hosts_file=Path("/keys/known_hosts"),
    )

    argv = shlex.split(genv.env["GIT_SSH_COMMAND"])
    assert argv[:3] == ["ssh", "-i", "/keys/id ed25519"]
    assert "IdentitiesOnly=yes" in argv
    assert "UserKnownHostsFile=/keys/known_hosts" in argv
    assert "StrictHostKeyChecking=yes" in argv
    assert "BatchMode=yes" in argv


def test_ssh_without_a_known_hosts_file_still_checks_host_keys_strictly() -> None:
    argv = shlex.split(ssh_command(None, None))

    assert "StrictHostKeyChecking=yes" in argv
    assert not any(a.startswith("UserKnownHostsFile") for a in argv)
    assert "-i" not in argv


def test_non_ssh_remotes_get_no_ssh_command() -> None:
    genv = build_git_env(parse_remote_url("git://h/r.git"), username=None, password=None)

    assert "GIT_SSH_COMMAND" not in genv.env
