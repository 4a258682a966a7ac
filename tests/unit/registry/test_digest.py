"""Manifest digests via HEAD, with every manifest media type accepted."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from automator.errors import RegistryNotFound, RegistryUnavailable
from automator.images import ImageRef
from automator.registry import MANIFEST_MEDIA_TYPES

from .conftest import ClientFor

IMAGE = ImageRef.parse("reg.example/team/app")
DIGEST = "sha256:" + "a" * 64


def test_digest_comes_from_a_head_request_with_all_four_manifest_types(
    client_for: ClientFor,
) -> None:
    client, rec = client_for(
        lambda req: httpx.Response(200, headers={"Docker-Content-Digest": DIGEST})
    )

    assert client.digest(IMAGE, "1.0") == DIGEST

    (request,) = rec.requests
    assert request.method == "HEAD"
    assert request.url.path == "/v2/team/app/manifests/1.0"
    accepted = {part.strip() for part in request.headers["accept"].split(",")}
    assert accepted == {
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    }
    assert set(MANIFEST_MEDIA_TYPES) == accepted


def test_without_the_digest_header_the_manifest_body_is_hashed(client_for: ClientFor) -> None:
    body = b'{"schemaVersion": 2}'

    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"" if req.method == "HEAD" else body)

    client, rec = client_for(handler)

    assert client.digest(IMAGE, "1.0") == "sha256:" + hashlib.sha256(body).hexdigest()
    assert [r.method for r in rec.requests] == ["HEAD", "GET"]
    assert "application/vnd.oci.image.index.v1+json" in rec.requests[1].headers["accept"]


def test_a_missing_tag_is_not_found_and_named(client_for: ClientFor) -> None:
    client, _ = client_for(lambda req: httpx.Response(404))

    with pytest.raises(RegistryNotFound, match=r"image reg\.example/team/app:9\.9 not found"):
        client.digest(IMAGE, "9.9")


def test_a_malformed_digest_header_is_unavailable(client_for: ClientFor) -> None:
    client, _ = client_for(
        lambda req: httpx.Response(200, headers={"Docker-Content-Digest": "garbage"})
    )

    with pytest.raises(RegistryUnavailable, match="malformed digest"):
        client.digest(IMAGE, "1.0")


def test_the_client_works_as_a_context_manager(client_for: ClientFor) -> None:
    client, _ = client_for(
        lambda req: httpx.Response(200, headers={"Docker-Content-Digest": DIGEST})
    )

    with client as entered:
        assert entered.digest(IMAGE, "1.0") == DIGEST
    with pytest.raises(RuntimeError, match="closed"):
        client.digest(IMAGE, "1.0")
