"""Fault injection: what a flaky network or a broken proxy does to a scan. A failure is
always an exception (so the engine leaves the workloads alone), never a partial list."""

from __future__ import annotations

import httpx
import pytest

from automator.errors import RegistryUnavailable
from automator.images import ImageRef
from tests.unit.registry._fakes import make_settings, tags_response

from .conftest import ClientFor

IMAGE = ImageRef.parse("reg.example/team/app")
SETTINGS = make_settings({"host": "reg.example", "page_size": 2})


@pytest.mark.parametrize(
    "body",
    [b'{"name": "team/app", "tags": ["1.0", "1.', b"", b"\x00\xff", b'{"tags": ["a"]}}'],
    ids=["truncated", "empty", "binary", "trailing-garbage"],
)
def test_a_broken_second_page_fails_the_listing_instead_of_returning_half(
    client_for: ClientFor, body: bytes
) -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.params.get("last") is None:
            return tags_response("a", "b", link="</v2/team/app/tags/list?last=b&n=2>; rel=next")
        return httpx.Response(200, content=body)

    client, _ = client_for(handler, SETTINGS)

    with pytest.raises(RegistryUnavailable, match="not valid JSON"):
        client.list_tags(IMAGE)


@pytest.mark.parametrize(
    "fault",
    [
        httpx.RemoteProtocolError("peer closed connection without sending complete body"),
        httpx.ReadError("connection reset by peer"),
        httpx.ConnectError("connection refused"),
        httpx.ReadTimeout("timed out"),
        httpx.ConnectTimeout("timed out"),
        httpx.PoolTimeout("no connection available"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_reset_or_timeout_mid_scan_is_retried_on_that_page(
    client_for: ClientFor, fault: Exception
) -> None:
    failed: list[bool] = []

    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.params.get("last") is None:
            return tags_response("a", "b", link="</v2/team/app/tags/list?last=b&n=2>; rel=next")
        if not failed:
            failed.append(True)
            raise fault
        return tags_response("c")

    client, rec = client_for(handler, SETTINGS)

    assert client.list_tags(IMAGE) == ["a", "b", "c"]
    assert [r.url.params.get("last") for r in rec.requests] == [None, "b", "b"]


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_a_persistent_server_error_on_a_later_page_is_unavailable(
    client_for: ClientFor, status: int
) -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.params.get("last") is None:
            return tags_response("a", "b", link="</v2/team/app/tags/list?last=b&n=2>; rel=next")
        return httpx.Response(status)

    client, rec = client_for(handler, SETTINGS, retries=2)

    with pytest.raises(RegistryUnavailable, match=f"HTTP {status}"):
        client.list_tags(IMAGE)
    assert len(rec.requests) == 4


def test_a_garbled_token_response_is_unavailable(client_for: ClientFor) -> None:
    challenge = 'Bearer realm="https://auth.example/token"'

    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.host == "auth.example":
            return httpx.Response(200, content=b'{"token": "abc')
        return httpx.Response(401, headers={"WWW-Authenticate": challenge})

    client, _ = client_for(handler)

    with pytest.raises(RegistryUnavailable, match="token response"):
        client.list_tags(IMAGE)
