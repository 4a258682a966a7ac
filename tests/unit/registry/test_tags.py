"""Tag listing: registry resolution, Link paging and malformed answers."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from automator.errors import RegistryNotFound, RegistryUnavailable
from automator.images import ImageRef
from tests.unit.registry._fakes import make_settings, tags_response

from .conftest import ClientFor


def test_docker_hub_images_go_to_registry_1_with_library_prefix(client_for: ClientFor) -> None:
    client, rec = client_for(lambda req: tags_response("1.25"))

    for spelling in ("nginx", "docker.io/nginx", "index.docker.io/library/nginx"):
        assert client.list_tags(ImageRef.parse(spelling)) == ["1.25"]

    assert {str(r.url.copy_with(query=None)) for r in rec.requests} == {
        "https://registry-1.docker.io/v2/library/nginx/tags/list"
    }


def test_unconfigured_hosts_are_https_and_anonymous(client_for: ClientFor) -> None:
    client, rec = client_for(lambda req: tags_response("v1"))

    client.list_tags(ImageRef.parse("ghcr.io/org/app"))

    (request,) = rec.requests
    assert request.url.scheme == "https"
    assert request.url.host == "ghcr.io"
    assert "authorization" not in request.headers


def test_configured_url_decides_the_scheme_and_port(client_for: ClientFor) -> None:
    settings = make_settings({"host": "127.0.0.1:5001", "url": "http://127.0.0.1:5001"})
    client, rec = client_for(lambda req: tags_response("a"), settings)

    client.list_tags(ImageRef.parse("127.0.0.1:5001/team/app"))

    assert str(rec.requests[0].url) == "http://127.0.0.1:5001/v2/team/app/tags/list?n=1000"


def test_a_docker_hub_entry_in_settings_is_found_by_its_canonical_name(
    client_for: ClientFor,
) -> None:
    settings = make_settings({"host": "docker.io", "url": "http://mirror.local:5000"})
    client, rec = client_for(lambda req: tags_response("a"), settings)

    client.list_tags(ImageRef.parse("index.docker.io/nginx"))

    assert rec.requests[0].url.host == "mirror.local"
    assert rec.requests[0].url.path == "/v2/library/nginx/tags/list"


@pytest.mark.parametrize(
    "link",
    [
        '</v2/team/app/tags/list?last=b&n=1000>; rel="next"',
        '<https://reg.example:8443/v2/team/app/tags/list?last=b&n=1000>; rel="next"',
        "<tags/list?last=b&n=1000>; rel=next",
    ],
    ids=["relative", "absolute-with-port", "relative-to-path-unquoted-rel"],
)
def test_paging_follows_link_headers_until_there_is_none(client_for: ClientFor, link: str) -> None:
    settings = make_settings({"host": "reg.example:8443"})

    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.params.get("last") == "b":
            return tags_response("c", "d", link=None)
        return tags_response("a", "b", link=link)

    client, rec = client_for(handler, settings)

    tags = client.list_tags(ImageRef.parse("reg.example:8443/team/app"))

    assert tags == ["a", "b", "c", "d"]
    assert len(rec.requests) == 2
    assert rec.requests[0].url.params["n"] == "1000"
    assert rec.requests[1].url.port == 8443


def test_paging_handles_several_links_and_picks_next(client_for: ClientFor) -> None:
    pages = {
        None: tags_response(
            "a",
            link='</v2/app/tags/list?last=z>; rel="prev", </v2/app/tags/list?last=a>; rel="next"',
        ),
        "a": tags_response("b", "a"),
    }
    client, rec = client_for(lambda req: pages[req.url.params.get("last")])

    assert client.list_tags(ImageRef.parse("quay.io/app")) == ["a", "b"]
    assert len(rec.requests) == 2


def test_a_registry_that_ignores_n_and_sends_no_link_is_read_in_one_request(
    client_for: ClientFor,
) -> None:
    many = [f"1.0.{i}" for i in range(5000)]
    client, rec = client_for(lambda req: tags_response(*many))

    assert client.list_tags(ImageRef.parse("quay.io/app")) == many
    assert len(rec.requests) == 1


def test_an_empty_repository_has_no_tags(client_for: ClientFor) -> None:
    client, _ = client_for(lambda req: httpx.Response(200, json={"name": "app", "tags": None}))

    assert client.list_tags(ImageRef.parse("quay.io/app")) == []


def test_a_link_looping_back_is_reported_not_followed_forever(client_for: ClientFor) -> None:
    loop = '</v2/app/tags/list?n=1000>; rel="next"'
    client, rec = client_for(lambda req: tags_response("a", link=loop))

    with pytest.raises(RegistryUnavailable, match="pages in a loop"):
        client.list_tags(ImageRef.parse("quay.io/app"))
    assert len(rec.requests) == 1


def test_a_link_to_another_host_is_refused(client_for: ClientFor) -> None:
    link = '<https://evil.example/v2/app/tags/list?last=a>; rel="next"'
    client, rec = client_for(lambda req: tags_response("a", link=link))

    with pytest.raises(RegistryUnavailable, match=r"another host \(evil.example\)"):
        client.list_tags(ImageRef.parse("quay.io/app"))
    assert all(r.url.host == "quay.io" for r in rec.requests)


@pytest.mark.parametrize(
    "body",
    [b"<html>proxy error</html>", b'["a", "b"]', b'{"tags": "a"}', b'{"tags": [1, 2]}'],
    ids=["html", "list", "string-tags", "number-tags"],
)
def test_malformed_tag_lists_are_reported_as_unavailable(
    client_for: ClientFor, body: bytes
) -> None:
    client, _ = client_for(lambda req: httpx.Response(200, content=body))

    with pytest.raises(RegistryUnavailable, match=r"registry quay\.io: the tag list of app"):
        client.list_tags(ImageRef.parse("quay.io/app"))


def test_an_unknown_repository_is_not_found_and_named(client_for: ClientFor) -> None:
    client, _ = client_for(
        lambda req: httpx.Response(404, json={"errors": [{"code": "NAME_UNKNOWN"}]})
    )

    with pytest.raises(RegistryNotFound, match=r"repository quay\.io/team/app not found"):
        client.list_tags(ImageRef.parse("quay.io/team/app"))


def test_other_client_errors_carry_the_registry_error_code(client_for: ClientFor) -> None:
    client, _ = client_for(
        lambda req: httpx.Response(400, json={"errors": [{"code": "NAME_INVALID"}]})
    )

    with pytest.raises(RegistryNotFound, match="HTTP 400 NAME_INVALID"):
        client.list_tags(ImageRef.parse("quay.io/team/app"))


def test_many_threads_can_share_one_client(client_for: ClientFor) -> None:

    client, rec = client_for(lambda req: tags_response(req.url.path.split("/")[2]))
    images = [ImageRef.parse(f"quay.io/r{i}/app") for i in range(64)]

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(client.list_tags, images))

    assert results == [[f"r{i}"] for i in range(64)]
    assert len(rec.requests) == 64


def test_a_closed_client_refuses_new_requests(client_for: ClientFor) -> None:
    client, _ = client_for(lambda req: tags_response("a"))
    client.close()

    with pytest.raises(RuntimeError, match="closed"):
        client.list_tags(ImageRef.parse("quay.io/app"))
