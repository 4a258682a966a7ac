"""``credential_command``: short-lived registry credentials from an external program
(``aws ecr get-login-password``, ``gcloud auth print-access-token``, a Docker helper),
refreshed before they expire and once when refused; never leaked when the program fails."""

from __future__ import annotations

import base64
import json
import logging
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from structlog.testing import capture_logs

from automator.errors import RegistryAuthError
from automator.images import ImageRef
from tests.unit.registry._fakes import FakeClock, make_settings, tags_response, write_file

from .conftest import ClientFor

IMAGE = ImageRef.parse("reg.example/team/app")
SECRET = "s3cr3t-from-the-command"


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def command(tmp_path: Path, body: str) -> list[str]:
    """A Python script printing what ``body`` computes; it counts its runs in ``runs``."""
    script = write_file(
        tmp_path / "helper.py",
        "import json, sys, pathlib, datetime\n"
        f"runs = pathlib.Path({str(tmp_path / 'runs')!r})\n"
        "n = int(runs.read_text()) + 1 if runs.exists() else 1\n"
        "runs.write_text(str(n))\n" + body,
    )
    return [sys.executable, str(script)]


def runs(tmp_path: Path) -> int:
    path = tmp_path / "runs"
    return int(path.read_text()) if path.exists() else 0


class BasicRegistry:
    """Accepts any of ``accepted`` Authorization values; challenges Basic otherwise."""

    def __init__(self, *accepted: str) -> None:
        self.accepted = set(accepted)

    def __call__(self, req: httpx.Request) -> httpx.Response:
        if req.headers.get("authorization") in self.accepted:
            return tags_response("1.0")
        return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="reg"'})


def test_a_bare_secret_is_the_password_of_the_configured_user(
    client_for: ClientFor, tmp_path: Path
) -> None:
    argv = command(tmp_path, f"print({SECRET!r})\nprint('ignored second line')\n")
    settings = make_settings({"host": "reg.example", "username": "AWS", "credential_command": argv})
    client, rec = client_for(BasicRegistry(_basic("AWS", SECRET)), settings)

    assert client.list_tags(IMAGE) == ["1.0"]
    assert rec.requests[-1].headers["authorization"] == _basic("AWS", SECRET)


def test_docker_credential_helper_json_gives_user_and_secret(
    client_for: ClientFor, tmp_path: Path
) -> None:
    argv = command(
        tmp_path,
        "print(json.dumps({'ServerURL': 'reg.example', 'Username': 'bot',"
        f" 'Secret': {SECRET!r}}}))\n",
    )
    settings = make_settings(
        {"host": "reg.example", "username": "ignored", "credential_command": argv}
    )
    client, _ = client_for(BasicRegistry(_basic("bot", SECRET)), settings)

    assert client.list_tags(IMAGE) == ["1.0"]


def test_an_expiring_answer_is_refreshed_shortly_before_it_expires(
    client_for: ClientFor, tmp_path: Path, clock: FakeClock
) -> None:
    argv = command(
        tmp_path,
        "exp = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=600)\n"
        "print(json.dumps({'username': 'u', 'password': f'pw-{n}',"
        " 'expires_at': exp.isoformat().replace('+00:00', 'Z')}))\n",
    )
    settings = make_settings({"host": "reg.example", "credential_command": argv})
    client, rec = client_for(BasicRegistry(_basic("u", "pw-1"), _basic("u", "pw-2")), settings)

    client.list_tags(IMAGE)
    clock.now += 500
    client.list_tags(IMAGE)
    assert runs(tmp_path) == 1
    # 600 s lifetime: refreshed 60 s (10%, at least 60 s) before expires_at.
    clock.now += 45
    client.list_tags(IMAGE)
    assert runs(tmp_path) == 2
    assert rec.requests[-1].headers["authorization"] == _basic("u", "pw-2")


def test_an_answer_without_expiry_lives_credential_ttl(
    client_for: ClientFor, tmp_path: Path, clock: FakeClock
) -> None:
    argv = command(tmp_path, "print(f'pw-{n}')\n")
    settings = make_settings(
        {
            "host": "reg.example",
            "username": "u",
            "credential_command": argv,
            "credential_ttl": "2m",
        }
    )
    client, _ = client_for(BasicRegistry(_basic("u", "pw-1"), _basic("u", "pw-2")), settings)

    client.list_tags(IMAGE)
    clock.now += 119
    client.list_tags(IMAGE)
    assert runs(tmp_path) == 1
    clock.now += 2
    client.list_tags(IMAGE)
    assert runs(tmp_path) == 2


def test_refused_credentials_run_the_command_again_once(
    client_for: ClientFor, tmp_path: Path
) -> None:
    argv = command(tmp_path, "print(f'pw-{n}')\n")
    settings = make_settings({"host": "reg.example", "username": "u", "credential_command": argv})
    client, rec = client_for(BasicRegistry(_basic("u", "pw-2")), settings)

    assert client.list_tags(IMAGE) == ["1.0"]
    assert runs(tmp_path) == 2
    assert [r.headers.get("authorization") for r in rec.requests] == [
        None,
        _basic("u", "pw-1"),
        _basic("u", "pw-2"),
    ]


def test_credentials_still_refused_after_a_refresh_are_an_auth_error(
    client_for: ClientFor, tmp_path: Path
) -> None:
    argv = command(tmp_path, "print(f'pw-{n}')\n")
    settings = make_settings({"host": "reg.example", "username": "u", "credential_command": argv})
    client, _ = client_for(BasicRegistry(), settings)

    with pytest.raises(RegistryAuthError, match=r"registries\[0\]\.credential_command"):
        client.list_tags(IMAGE)
    assert runs(tmp_path) == 2


def test_a_token_service_refusing_command_credentials_gets_fresh_ones_once(
    client_for: ClientFor, tmp_path: Path
) -> None:
    argv = command(tmp_path, "print(f'pw-{n}')\n")
    settings = make_settings({"host": "reg.example", "username": "u", "credential_command": argv})
    challenge = 'Bearer realm="https://auth.example/token",service="reg"'

    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.host == "auth.example":
            if req.headers.get("authorization") == _basic("u", "pw-2"):
                return httpx.Response(200, json={"token": "tok"})
            return httpx.Response(401)
        if req.headers.get("authorization") == "Bearer tok":
            return tags_response("1.0")
        return httpx.Response(401, headers={"WWW-Authenticate": challenge})

    client, _ = client_for(handler, settings)

    assert client.list_tags(IMAGE) == ["1.0"]
    assert runs(tmp_path) == 2


def test_a_failing_command_names_the_key_and_exit_code_but_never_its_output(
    client_for: ClientFor, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    argv = command(
        tmp_path, f"print({SECRET!r})\nprint({SECRET!r}, file=sys.stderr)\nsys.exit(3)\n"
    )
    settings = make_settings({"host": "reg.example", "username": "u", "credential_command": argv})
    client, _ = client_for(BasicRegistry(), settings)
    caplog.set_level(logging.DEBUG)

    with capture_logs() as logs, pytest.raises(RegistryAuthError) as err:
        client.list_tags(IMAGE)

    message = str(err.value)
    assert "registries[0].credential_command" in message
    assert "exit code 3" in message
    everything = " ".join([repr(logs), caplog.text, message, repr(err.value.__cause__)])
    assert SECRET not in everything


def test_a_command_that_does_not_exist_is_an_auth_error_naming_it(
    client_for: ClientFor, tmp_path: Path
) -> None:
    settings = make_settings(
        {
            "host": "reg.example",
            "username": "u",
            "credential_command": [str(tmp_path / "no-such-helper")],
        }
    )
    client, _ = client_for(BasicRegistry(), settings)

    with pytest.raises(RegistryAuthError, match=r"cannot run .*no-such-helper"):
        client.list_tags(IMAGE)


@pytest.mark.parametrize("output", ["", "\n\n", '{"Username": "u"}', '{"password": ""}'])
def test_a_command_printing_no_secret_is_an_auth_error(
    client_for: ClientFor, tmp_path: Path, output: str
) -> None:
    argv = command(tmp_path, f"sys.stdout.write({output!r})\n")
    settings = make_settings({"host": "reg.example", "username": "u", "credential_command": argv})
    client, _ = client_for(BasicRegistry(), settings)

    with pytest.raises(RegistryAuthError, match="printed no secret"):
        client.list_tags(IMAGE)


def test_a_secret_without_any_user_name_asks_for_username(
    client_for: ClientFor, tmp_path: Path
) -> None:
    argv = command(tmp_path, f"print({SECRET!r})\n")
    settings = make_settings({"host": "reg.example", "credential_command": argv})
    client, _ = client_for(BasicRegistry(), settings)

    with pytest.raises(RegistryAuthError, match=r"set registries\[0\]\.username") as err:
        client.list_tags(IMAGE)
    assert SECRET not in str(err.value)


def test_an_already_expired_answer_is_reused_only_for_seconds(
    client_for: ClientFor, tmp_path: Path, clock: FakeClock
) -> None:
    past = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    argv = command(
        tmp_path,
        f"print(json.dumps({{'username': 'u', 'password': 'p', 'expires_at': {past!r}}}))\n",
    )
    settings = make_settings({"host": "reg.example", "credential_command": argv})
    client, _ = client_for(BasicRegistry(_basic("u", "p")), settings)

    client.list_tags(IMAGE)
    client.list_tags(IMAGE)
    assert runs(tmp_path) == 1
    clock.now += 6
    client.list_tags(IMAGE)
    assert runs(tmp_path) == 2


def test_docker_helper_output_is_parsed_without_running_anything() -> None:
    from automator.registry._auth import _parse_command_output

    assert _parse_command_output(json.dumps({"Username": "a", "Secret": "b"})) == ("a", "b", None)
    assert _parse_command_output("tok\n") == (None, "tok", None)
    assert _parse_command_output("{not json") == (None, "{not json", None)
    user, secret, expires = _parse_command_output(
        '{"username": "x", "password": "y", "expires_at": "2030-01-02T03:04:05.123456789Z"}'
    ) or (None, "", None)
    assert (user, secret) == ("x", "y")
    assert expires == datetime(2030, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
