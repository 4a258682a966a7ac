"""Token realms are where we send credentials: a registry may not point them at cloud
metadata services or link-local addresses (by name, IP literal, or what a name resolves
to), nor at plain http for an https registry; redirects never carry credentials away."""

from __future__ import annotations

import socket
from typing import Any

import httpx
import pytest

from automator.errors import RegistryAuthError
from automator.images import ImageRef
from tests.unit.registry._fakes import make_settings, tags_response

from .conftest import ClientFor

IMAGE = ImageRef.parse("reg.example/team/app")


def _challenging(realm: str) -> tuple[Any, list[httpx.Request]]:
    token_requests: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.host != "reg.example":
            token_requests.append(req)
            return httpx.Response(200, json={"token": "t"})
        if req.headers.get("authorization") == "Bearer t":
            return tags_response("1")
        return httpx.Response(401, headers={"WWW-Authenticate": f'Bearer realm="{realm}"'})

    return handler, token_requests


@pytest.mark.parametrize(
    "realm",
    [
        "https://169.254.169.254/latest/meta-data/iam",
        "https://169.254.170.2/v2/credentials",
        "https://[fe80::1]/token",
        "https://[fd00:ec2::254]/latest",
        "https://[::ffff:169.254.169.254]/token",
        "https://100.100.100.200/latest/meta-data",
        "https://metadata.google.internal/computeMetadata/v1/token",
        "https://METADATA.GOOGLE.INTERNAL./token",
        "https://metadata.azure.com/metadata/identity",
    ],
)
def test_metadata_and_link_local_realms_are_refused(client_for: ClientFor, realm: str) -> None:
    handler, token_requests = _challenging(realm)
    settings = make_settings({"host": "reg.example", "username": "u", "password_env": "PW"})
    client, _ = client_for(handler, settings)

    with pytest.raises(RegistryAuthError, match="refusing its token realm"):
        client.list_tags(IMAGE)
    assert token_requests == []


def test_a_realm_name_resolving_to_a_metadata_address_is_refused(
    client_for: ClientFor, monkeypatch: pytest.MonkeyPatch
) -> None:
    def resolve(host: str, port: Any, *args: Any, **kwargs: Any) -> Any:
        address = "169.254.169.254" if host == "innocent.example" else "203.0.113.9"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    handler, token_requests = _challenging("https://innocent.example/token")
    client, _ = client_for(handler)

    with pytest.raises(RegistryAuthError, match=r"resolves to 169\.254\.169\.254"):
        client.list_tags(IMAGE)
    assert token_requests == []


def test_an_ordinary_realm_is_checked_once_and_used(
    client_for: ClientFor, monkeypatch: pytest.MonkeyPatch
) -> None:
    lookups: list[str] = []

    def resolve(host: str, port: Any, *args: Any, **kwargs: Any) -> Any:
        lookups.append(host)
        return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("2001:db8::5", port, 0, 0))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    handler, token_requests = _challenging("https://auth.example/token")
    client, _ = client_for(handler)

    assert client.list_tags(IMAGE) == ["1"]
    assert client.list_tags(ImageRef.parse("reg.example/team/other")) == ["1"]
    assert len(token_requests) == 2
    assert lookups == ["auth.example"]


def test_a_realm_that_does_not_resolve_is_left_to_fail_as_unreachable(
    client_for: ClientFor, monkeypatch: pytest.MonkeyPatch
) -> None:
    def resolve(host: str, port: Any, *args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    handler, token_requests = _challenging("https://auth.example/token")
    client, _ = client_for(handler)

    assert client.list_tags(IMAGE) == ["1"]  # (the mock transport needs no DNS)
    assert len(token_requests) == 1
