"""The per-registry keys of ``registries[]``: defaults, durations, and errors that name
the key and the fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from automator.config import RegistrySettings, Settings, settings_from_mapping
from automator.errors import ConfigError


def _settings(**entry: Any) -> Settings:
    return settings_from_mapping(
        {"git": {"url": "file:///srv/config.git"}, "registries": [{"host": "r:5000", **entry}]}
    )


def test_defaults_are_gentle_and_unsurprising() -> None:
    reg = _settings().registries[0]

    assert reg.insecure is False
    assert reg.cert_file is None
    assert reg.key_file is None
    assert reg.credential_command is None
    assert reg.credential_ttl == 600.0
    assert reg.rate_limit is None
    assert reg.burst is None
    assert reg.max_concurrency is None
    assert reg.page_size == 1000
    assert reg.max_tags is None
    assert reg.timeout is None  # the client's default, 30 s


def test_every_new_key_is_read_with_its_type() -> None:
    reg = _settings(
        url="https://r:5000",
        insecure=True,
        cert_file="/etc/c.pem",
        key_file="/etc/k.pem",
        username="AWS",
        credential_command=["aws", "ecr", "get-login-password"],
        credential_ttl="5m",
        rate_limit=2.5,
        burst=4,
        max_concurrency=3,
        page_size=100,
        max_tags=500,
        timeout="10s",
    ).registries[0]

    assert reg.insecure is True
    assert reg.cert_file == Path("/etc/c.pem")
    assert reg.key_file == Path("/etc/k.pem")
    assert reg.credential_command == ("aws", "ecr", "get-login-password")
    assert reg.credential_ttl == 300.0
    assert reg.rate_limit == 2.5
    assert reg.effective_burst == 4
    assert reg.max_concurrency == 3
    assert reg.page_size == 100
    assert reg.max_tags == 500
    assert reg.timeout == 10.0


@pytest.mark.parametrize(("rate", "burst"), [(0.5, 1), (1, 1), (2.5, 3), (40, 40)])
def test_the_default_burst_is_one_second_of_the_rate(rate: float, burst: int) -> None:
    assert _settings(rate_limit=rate).registries[0].effective_burst == burst


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"cert_file": "/c.pem"}, "set both cert_file and key_file"),
        ({"key_file": "/k.pem"}, "set both cert_file and key_file"),
        ({"credential_command": []}, "registries[0].credential_command: must be a non-empty list"),
        ({"credential_command": [""]}, "must be a non-empty list"),
        ({"credential_command": "aws ecr get-login-password"}, "registries[0].credential_command"),
        (
            {"credential_command": ["x"], "password_env": "P"},
            "credential_command supplies the password",
        ),
        (
            {"credential_command": ["x"], "docker_config": "/d.json"},
            "credential_command supplies the password",
        ),
        ({"password_env": "A", "password_file": "/b"}, "password_env or password_file, not both"),
        ({"credential_ttl": "0s"}, "registries[0].credential_ttl: must be a positive duration"),
        ({"credential_ttl": "soon"}, "is not a duration"),
        ({"timeout": 0}, "registries[0].timeout: must be a positive duration"),
        ({"rate_limit": 0}, "registries[0].rate_limit: must be a number of requests per second"),
        ({"rate_limit": -1}, "requests per second"),
        ({"burst": 5}, "burst needs rate_limit"),
        ({"rate_limit": 1, "burst": 0}, "registries[0].burst: must be at least 1"),
        ({"max_concurrency": 0}, "registries[0].max_concurrency: must be at least 1"),
        ({"max_tags": 0}, "registries[0].max_tags: must be at least 1"),
        ({"page_size": 0}, "registries[0].page_size: must be between 1 and 100000"),
        ({"insecure": "maybe"}, "registries[0].insecure"),
        ({"rate_limt": 1}, "unknown key registries[0].rate_limt"),
    ],
)
def test_invalid_values_name_the_key_and_the_fix(entry: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        _settings(**entry)
    assert expected in str(err.value)


def test_settings_are_frozen() -> None:
    reg = _settings(rate_limit=1).registries[0]

    with pytest.raises(ValueError, match="frozen"):
        reg.rate_limit = 2  # type: ignore[misc]
    assert isinstance(reg, RegistrySettings)
