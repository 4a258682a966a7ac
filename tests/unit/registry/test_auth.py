"""Authentication: bearer challenges and token caching, basic auth, Docker config files,
and the promise that no secret ever reaches a log line or an exception message."""

from __future__ import annotations

import base64
import json
import logging
import os
import stat
from pathlib import Path

import httpx
import pytest
from structlog.testing import capture_logs

from automator.errors import ConfigError, RegistryAuthError
from automator.images import ImageRef
from tests.unit.registry._fakes import FakeClock, Handler, make_settings, tags_response, write_file

from .conftest import ClientFor

PASSWORD = "hunter2-very-secret"
TOKEN = "tok-abcdef-secret"
REALM = "https://auth.example/token"
BEARER = f'Bearer realm="{REALM}",service="reg.example",scope="repository:team/app:pull"'
IMAGE = ImageRef.parse("reg.example/team/app")


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class BearerRegistry:
    """Registry + token server: tokens are numbered so tests can tell fetches apart."""

    def __init__(self, *, expires_in: int | None = 300, accept: str | None = None) -> None:
        self.issued = 0
        self.expires_in = expires_in
        self.accept = accept  # Authorization the token server demands, if any

    def __call__(self, req: httpx.Request) -> httpx.Response:
        if req.url.host == "auth.example":
            if self.accept is not None and req.headers.get("authorization") != self.accept:
                return httpx.Response(401, json={"details": "bad credentials"})
            self.issued += 1
            body: dict[str, object] = {"token": f"{TOKEN}-{self.issued}"}
            if self.expires_in is not None:
                body["expires_in"] = self.expires_in
            return httpx.Response(200, json=body)
        if req.headers.get("authorization", "").startswith(f"Bearer {TOKEN}-"):
            return tags_response("1.0")
        return httpx.Response(401, headers={"WWW-Authenticate": BEARER})


def test_a_bearer_challenge_fetches_a_scoped_token_and_retries_once(client_for: ClientFor) -> None:
    client, rec = client_for(BearerRegistry())

    assert client.list_tags(IMAGE) == ["1.0"]

    assert [r.url.host for r in rec.requests] == ["reg.example", "auth.example", "reg.example"]
    token_request = rec.requests[1]
    assert token_request.url.params["service"] == "reg.example"
    assert token_request.url.params.get_list("scope") == ["repository:team/app:pull"]
    assert "authorization" not in token_request.headers
    assert rec.requests[2].headers["authorization"] == f"Bearer {TOKEN}-1"


def test_a_token_is_reused_until_it_expires(client_for: ClientFor, clock: FakeClock) -> None:
    fake = BearerRegistry(expires_in=300)
    client, rec = client_for(fake)

    client.list_tags(IMAGE)
    client.list_tags(IMAGE)
    assert fake.issued == 1
    assert len(rec.requests) == 4  # challenge, token, list, list

    clock.now += 301
    client.list_tags(IMAGE)
    assert fake.issued == 2
    assert rec.requests[-1].headers["authorization"] == f"Bearer {TOKEN}-2"


def test_a_token_without_expires_in_lives_sixty_seconds(
    client_for: ClientFor, clock: FakeClock
) -> None:
    fake = BearerRegistry(expires_in=None)
    client, _ = client_for(fake)

    client.list_tags(IMAGE)
    clock.now += 30
    client.list_tags(IMAGE)
    assert fake.issued == 1
    clock.now += 31
    client.list_tags(IMAGE)
    assert fake.issued == 2


def test_a_known_bearer_registry_gets_tokens_for_new_repositories_up_front(
    client_for: ClientFor,
) -> None:
    client, rec = client_for(BearerRegistry())

    client.list_tags(IMAGE)
    client.list_tags(ImageRef.parse("reg.example/team/other"))

    scopes = [
        r.url.params.get_list("scope")[0] for r in rec.requests if r.url.host == "auth.example"
    ]
    assert scopes == ["repository:team/app:pull", "repository:team/other:pull"]
    assert [r.url.host for r in rec.requests[3:]] == ["auth.example", "reg.example"]


def test_configured_basic_credentials_are_sent_to_the_token_realm(
    client_for: ClientFor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REG_PASSWORD", PASSWORD)
    settings = make_settings(
        {"host": "reg.example", "username": "alice", "password_env": "REG_PASSWORD"}
    )
    client, rec = client_for(BearerRegistry(accept=_basic("alice", PASSWORD)), settings)

    assert client.list_tags(IMAGE) == ["1.0"]
    assert rec.to("/token")[0].headers["authorization"] == _basic("alice", PASSWORD)


def test_a_refused_token_request_is_an_auth_error_naming_the_config_key(
    client_for: ClientFor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REG_PASSWORD", "wrong")
    settings = make_settings(
        {"host": "reg.example", "username": "alice", "password_env": "REG_PASSWORD"}
    )
    client, _ = client_for(BearerRegistry(accept=_basic("alice", PASSWORD)), settings)

    with pytest.raises(RegistryAuthError, match=r"registries\[0\]\.username/password_env"):
        client.list_tags(IMAGE)


def test_a_token_the_registry_still_refuses_is_an_auth_error_after_one_retry(
    client_for: ClientFor,
) -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.host == "auth.example":
            return httpx.Response(200, json={"token": TOKEN})
        return httpx.Response(401, headers={"WWW-Authenticate": BEARER})

    client, rec = client_for(handler)

    with pytest.raises(RegistryAuthError, match="credentials for team/app are required"):
        client.list_tags(IMAGE)
    assert [r.url.host for r in rec.requests] == ["reg.example", "auth.example", "reg.example"]


def test_a_plain_http_realm_is_refused_for_an_https_registry(client_for: ClientFor) -> None:
    challenge = 'Bearer realm="http://auth.example/token",service="x"'
    client, rec = client_for(
        lambda req: httpx.Response(401, headers={"WWW-Authenticate": challenge})
    )

    with pytest.raises(RegistryAuthError, match="plain-http realm"):
        client.list_tags(IMAGE)
    assert all(r.url.host != "auth.example" for r in rec.requests)


def test_a_plain_http_realm_is_allowed_for_a_plain_http_registry(client_for: ClientFor) -> None:
    challenge = 'Bearer realm="http://auth.example/token",service="x"'

    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.host == "auth.example":
            return httpx.Response(200, json={"access_token": TOKEN})
        if req.headers.get("authorization") == f"Bearer {TOKEN}":
            return tags_response("ok")
        return httpx.Response(401, headers={"WWW-Authenticate": challenge})

    settings = make_settings({"host": "reg.example", "url": "http://reg.example"})
    client, _ = client_for(handler, settings)

    assert client.list_tags(IMAGE) == ["ok"]


def test_a_basic_challenge_is_answered_with_configured_credentials(
    client_for: ClientFor, tmp_path: Path
) -> None:
    secret = write_file(tmp_path / "pw", PASSWORD + "\n")
    settings = make_settings(
        {"host": "reg.example", "username": "alice", "password_file": str(secret)}
    )

    def handler(req: httpx.Request) -> httpx.Response:
        if req.headers.get("authorization") == _basic("alice", PASSWORD):
            return tags_response("1.0")
        return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="reg"'})

    client, rec = client_for(handler, settings)

    assert client.list_tags(IMAGE) == ["1.0"]
    assert client.list_tags(IMAGE) == ["1.0"]
    # The second call sends credentials up front: no second challenge round trip.
    assert [r.headers.get("authorization") is not None for r in rec.requests] == [
        False,
        True,
        True,
    ]


def test_a_basic_challenge_without_credentials_says_what_to_configure(
    client_for: ClientFor,
) -> None:
    client, _ = client_for(
        lambda req: httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="reg"'})
    )

    with pytest.raises(RegistryAuthError, match=r"add a registries entry for host reg\.example"):
        client.list_tags(IMAGE)


def test_wrong_basic_credentials_are_refused_with_the_config_key(
    client_for: ClientFor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REG_PASSWORD", PASSWORD)
    settings = make_settings(
        {"host": "other.example", "url": "https://other.example"},
        {"host": "reg.example", "username": "alice", "password_env": "REG_PASSWORD"},
    )
    client, _ = client_for(
        lambda req: httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="reg"'}),
        settings,
    )

    with pytest.raises(RegistryAuthError) as err:
        client.list_tags(IMAGE)
    assert str(err.value) == (
        "registry reg.example: credentials for team/app were refused (HTTP 401); "
        "check registries[1].username/password_env or docker_config"
    )


def test_forbidden_is_an_auth_error(client_for: ClientFor) -> None:
    client, _ = client_for(lambda req: httpx.Response(403))

    with pytest.raises(RegistryAuthError, match="HTTP 403"):
        client.list_tags(IMAGE)


def test_a_missing_password_variable_is_a_config_error(
    client_for: ClientFor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOPE_UNSET", raising=False)
    settings = make_settings({"host": "reg.example", "username": "a", "password_env": "NOPE_UNSET"})
    client, _ = client_for(
        lambda req: httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="r"'}), settings
    )

    with pytest.raises(ConfigError, match=r"registries\[0\]\.password_env"):
        client.list_tags(IMAGE)


def test_a_redirect_to_another_host_does_not_carry_credentials(
    client_for: ClientFor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REG_PASSWORD", PASSWORD)
    settings = make_settings(
        {"host": "reg.example", "username": "alice", "password_env": "REG_PASSWORD"}
    )

    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.host == "cdn.example":
            return tags_response("moved")
        if "authorization" not in req.headers:
            return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="r"'})
        return httpx.Response(307, headers={"Location": "https://cdn.example/tags"})

    client, rec = client_for(handler, settings)

    assert client.list_tags(IMAGE) == ["moved"]
    assert rec.requests[-1].url.host == "cdn.example"
    assert "authorization" not in rec.requests[-1].headers


# -- Docker config.json ------------------------------------------------------------------


def _docker_config(directory: Path, body: dict[str, object]) -> Path:
    return write_file(directory / "config.json", json.dumps(body))


def _basic_registry(user: str, password: str) -> Handler:
    def handler(req: httpx.Request) -> httpx.Response:
        if req.headers.get("authorization") == _basic(user, password):
            return tags_response("1.0")
        return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="r"'})

    return handler


def test_credentials_come_from_the_configured_docker_config_auths(
    client_for: ClientFor, tmp_path: Path
) -> None:
    auth = base64.b64encode(f"bob:{PASSWORD}".encode()).decode()
    path = _docker_config(tmp_path, {"auths": {"reg.example": {"auth": auth}}})
    settings = make_settings({"host": "reg.example", "docker_config": str(path)})
    client, _ = client_for(_basic_registry("bob", PASSWORD), settings)

    assert client.list_tags(IMAGE) == ["1.0"]


def test_credentials_come_from_docker_config_env_when_nothing_is_configured(
    client_for: ClientFor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    auth = base64.b64encode(f"bob:{PASSWORD}".encode()).decode()
    _docker_config(tmp_path, {"auths": {"https://reg.example/v1/": {"auth": auth}}})
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    client, _ = client_for(_basic_registry("bob", PASSWORD))

    assert client.list_tags(IMAGE) == ["1.0"]


def test_docker_hub_credentials_are_found_under_the_index_url(
    client_for: ClientFor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    auth = base64.b64encode(f"hubuser:{PASSWORD}".encode()).decode()
    _docker_config(tmp_path, {"auths": {"https://index.docker.io/v1/": {"auth": auth}}})
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    client, _ = client_for(_basic_registry("hubuser", PASSWORD))

    assert client.list_tags(ImageRef.parse("nginx")) == ["1.0"]


def test_a_cred_helper_on_path_supplies_credentials(
    client_for: ClientFor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    helper = write_file(
        bin_dir / "docker-credential-fake",
        "#!/bin/sh\n"
        'test "$1" = get || exit 1\n'
        "read server\n"
        f'printf \'{{"ServerURL":"%s","Username":"helper-user","Secret":"{PASSWORD}"}}\' '
        '"$server"\n',
    )
    helper.chmod(helper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    path = _docker_config(tmp_path, {"credHelpers": {"reg.example": "fake"}})
    settings = make_settings({"host": "reg.example", "docker_config": str(path)})
    client, _ = client_for(_basic_registry("helper-user", PASSWORD), settings)

    assert client.list_tags(IMAGE) == ["1.0"]


def test_a_missing_cred_helper_named_for_the_registry_is_an_auth_error(
    client_for: ClientFor, tmp_path: Path
) -> None:
    path = _docker_config(tmp_path, {"credHelpers": {"reg.example": "not-installed-xyz"}})
    settings = make_settings({"host": "reg.example", "docker_config": str(path)})
    client, _ = client_for(_basic_registry("u", "p"), settings)

    with pytest.raises(RegistryAuthError, match="docker-credential-not-installed-xyz"):
        client.list_tags(IMAGE)


def test_a_missing_global_creds_store_falls_back_to_auths(
    client_for: ClientFor, tmp_path: Path
) -> None:
    auth = base64.b64encode(f"bob:{PASSWORD}".encode()).decode()
    path = _docker_config(
        tmp_path, {"credsStore": "not-installed-xyz", "auths": {"reg.example": {"auth": auth}}}
    )
    settings = make_settings({"host": "reg.example", "docker_config": str(path)})
    client, _ = client_for(_basic_registry("bob", PASSWORD), settings)

    with capture_logs() as logs:
        assert client.list_tags(IMAGE) == ["1.0"]
    assert "registry_credential_helper_missing" in [e["event"] for e in logs]


def test_a_configured_docker_config_that_does_not_exist_is_a_config_error(
    client_for: ClientFor, tmp_path: Path
) -> None:
    settings = make_settings({"host": "reg.example", "docker_config": str(tmp_path / "nope.json")})
    client, _ = client_for(_basic_registry("u", "p"), settings)

    with pytest.raises(ConfigError, match=r"registries\[0\]\.docker_config"):
        client.list_tags(IMAGE)


def test_an_identity_token_is_exchanged_at_the_realm_by_post(
    client_for: ClientFor, tmp_path: Path
) -> None:
    path = _docker_config(
        tmp_path, {"auths": {"reg.example": {"identitytoken": "refresh-" + PASSWORD}}}
    )
    settings = make_settings({"host": "reg.example", "docker_config": str(path)})
    client, rec = client_for(BearerRegistry(), settings)

    assert client.list_tags(IMAGE) == ["1.0"]
    (token_request,) = rec.to("/token")
    assert token_request.method == "POST"
    form = dict(httpx.QueryParams(token_request.content.decode()))
    assert form["grant_type"] == "refresh_token"
    assert form["refresh_token"] == "refresh-" + PASSWORD
    assert form["scope"] == "repository:team/app:pull"


# -- secrets ----------------------------------------------------------------------------


def test_no_password_or_token_appears_in_logs_or_errors(
    client_for: ClientFor, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("REG_PASSWORD", PASSWORD)
    settings = make_settings(
        {"host": "reg.example", "username": "alice", "password_env": "REG_PASSWORD"}
    )
    calls = {"n": 0}

    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.host == "auth.example":
            return httpx.Response(200, json={"token": TOKEN, "expires_in": 60})
        calls["n"] += 1
        if calls["n"] == 2:  # one transient failure, to exercise the retry log line
            return httpx.Response(503, headers={"Retry-After": "1"})
        return httpx.Response(401, headers={"WWW-Authenticate": BEARER})

    client, _ = client_for(handler, settings)
    caplog.set_level(logging.DEBUG)

    with capture_logs() as logs, pytest.raises(RegistryAuthError) as err:
        client.list_tags(IMAGE)

    assert "registry_request_retry" in [e["event"] for e in logs]
    assert "registry_token_fetched" in [e["event"] for e in logs]
    everything = " ".join([repr(logs), caplog.text, str(err.value), repr(err.value)])
    for secret in (PASSWORD, TOKEN, base64.b64encode(f"alice:{PASSWORD}".encode()).decode()):
        assert secret not in everything
