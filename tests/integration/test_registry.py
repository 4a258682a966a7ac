"""The registry client against a real CNCF Distribution (Debian docker-registry 2.8.2).

Servers are module-scoped: starting one takes a fraction of a second, but pushing images
is the slow part, so each server is filled once and read by many tests.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from automator.config import Settings, settings_from_mapping
from automator.errors import RegistryAuthError, RegistryNotFound, RegistryUnavailable
from automator.images import ImageRef
from automator.registry import RegistryClient
from tests.support.process import free_port
from tests.support.push import push_image, push_many
from tests.support.registry import RegistryServer

pytestmark = pytest.mark.integration

USER, PASSWORD = "alice", "correct-horse-battery"
TAGS = ["1.0.0", "1.1.0", "2.0.0-rc.1", "latest"]


def _settings(*registries: dict[str, object]) -> Settings:
    return settings_from_mapping(
        {"git": {"url": "file:///tmp/unused.git"}, "registries": list(registries)}
    )


@pytest.fixture(autouse=True)
def _no_home_docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "no-docker-config"))


@pytest.fixture(scope="module")
def open_registry() -> Iterator[tuple[RegistryServer, dict[str, str]]]:
    with RegistryServer() as server:
        digests = push_image(server.url, "team/app", TAGS, distinct=True)
        push_many(server.url, {f"fleet/app{i}": [f"0.{i}.0", "0.0.1"] for i in range(12)})
        yield server, digests


@pytest.fixture(scope="module")
def private_registry() -> Iterator[RegistryServer]:
    with RegistryServer(htpasswd=(USER, PASSWORD)) as server:
        push_image(server.url, "secret/app", ["1.0.0"], auth=(USER, PASSWORD))
        yield server


@pytest.fixture(scope="module")
def tls_registry() -> Iterator[RegistryServer]:
    with RegistryServer(tls=True) as server:
        assert server.ca_file is not None
        push_image(server.url, "tls/app", ["3.0.0"], verify=str(server.ca_file))
        yield server


def _client(settings: Settings) -> RegistryClient:
    return RegistryClient(settings, timeout=10.0, retries=1, sleep=lambda _: None)


def test_anonymous_list_returns_every_pushed_tag(
    open_registry: tuple[RegistryServer, dict[str, str]],
) -> None:
    server, _ = open_registry
    settings = _settings({"host": server.host, "url": server.url})

    with _client(settings) as client:
        tags = client.list_tags(ImageRef.parse(f"{server.host}/team/app"))

    assert sorted(tags) == sorted(TAGS)


def test_digest_matches_what_the_push_returned(
    open_registry: tuple[RegistryServer, dict[str, str]],
) -> None:
    server, pushed = open_registry
    settings = _settings({"host": server.host, "url": server.url})
    image = ImageRef.parse(f"{server.host}/team/app")

    with _client(settings) as client:
        digests = {tag: client.digest(image, tag) for tag in TAGS}

    assert digests == pushed
    assert len(set(digests.values())) == len(TAGS)


def test_unknown_repository_and_tag_are_not_found(
    open_registry: tuple[RegistryServer, dict[str, str]],
) -> None:
    server, _ = open_registry
    settings = _settings({"host": server.host, "url": server.url})

    with _client(settings) as client:
        with pytest.raises(RegistryNotFound, match="no/such"):
            client.list_tags(ImageRef.parse(f"{server.host}/no/such"))
        with pytest.raises(RegistryNotFound, match=r"team/app:9\.9\.9"):
            client.digest(ImageRef.parse(f"{server.host}/team/app"), "9.9.9")


def test_many_repositories_listed_in_parallel_share_one_client(
    open_registry: tuple[RegistryServer, dict[str, str]],
) -> None:
    server, _ = open_registry
    settings = _settings({"host": server.host, "url": server.url})
    images = [ImageRef.parse(f"{server.host}/fleet/app{i}") for i in range(12)]

    with _client(settings) as client, ThreadPoolExecutor(8) as pool:
        results = list(pool.map(client.list_tags, images))

    assert [sorted(tags) for tags in results] == [sorted([f"0.{i}.0", "0.0.1"]) for i in range(12)]


def test_htpasswd_registry_accepts_the_right_password(
    private_registry: RegistryServer, tmp_path: Path
) -> None:
    secret = tmp_path / "password"
    secret.write_text(PASSWORD)
    settings = _settings(
        {
            "host": private_registry.host,
            "url": private_registry.url,
            "username": USER,
            "password_file": str(secret),
        }
    )

    with _client(settings) as client:
        image = ImageRef.parse(f"{private_registry.host}/secret/app")
        assert client.list_tags(image) == ["1.0.0"]
        assert client.digest(image, "1.0.0").startswith("sha256:")


def test_htpasswd_registry_refuses_a_wrong_password(
    private_registry: RegistryServer, tmp_path: Path
) -> None:
    secret = tmp_path / "password"
    secret.write_text("wrong-password")
    settings = _settings(
        {
            "host": private_registry.host,
            "url": private_registry.url,
            "username": USER,
            "password_file": str(secret),
        }
    )

    with _client(settings) as client, pytest.raises(RegistryAuthError) as err:
        client.list_tags(ImageRef.parse(f"{private_registry.host}/secret/app"))
    assert r"registries[0].username/password_env" in str(err.value)
    assert "wrong-password" not in str(err.value)


def test_htpasswd_registry_without_credentials_says_they_are_required(
    private_registry: RegistryServer,
) -> None:
    settings = _settings({"host": private_registry.host, "url": private_registry.url})

    with (
        _client(settings) as client,
        pytest.raises(RegistryAuthError, match="requires credentials"),
    ):
        client.list_tags(ImageRef.parse(f"{private_registry.host}/secret/app"))


def test_htpasswd_credentials_can_come_from_a_docker_config(
    private_registry: RegistryServer, tmp_path: Path
) -> None:
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"auths": {private_registry.host: {"auth": auth}}}))
    settings = _settings(
        {"host": private_registry.host, "url": private_registry.url, "docker_config": str(config)}
    )

    with _client(settings) as client:
        assert client.list_tags(ImageRef.parse(f"{private_registry.host}/secret/app")) == ["1.0.0"]


def test_tls_registry_is_trusted_with_its_ca_file(tls_registry: RegistryServer) -> None:
    settings = _settings(
        {"host": tls_registry.host, "url": tls_registry.url, "ca_file": str(tls_registry.ca_file)}
    )

    with _client(settings) as client:
        image = ImageRef.parse(f"{tls_registry.host}/tls/app")
        assert client.list_tags(image) == ["3.0.0"]
        assert client.digest(image, "3.0.0").startswith("sha256:")


def test_tls_registry_without_its_ca_file_is_reported_with_the_fix(
    tls_registry: RegistryServer,
) -> None:
    # Unconfigured host: https by default, and the self-signed certificate is not trusted.
    with _client(_settings()) as client, pytest.raises(RegistryUnavailable, match="ca_file"):
        client.list_tags(ImageRef.parse(f"{tls_registry.host}/tls/app"))


def test_a_registry_that_is_down_is_unavailable(tmp_path: Path) -> None:
    host = f"127.0.0.1:{free_port()}"
    settings = _settings({"host": host, "url": f"http://{host}"})

    with _client(settings) as client, pytest.raises(RegistryUnavailable, match="cannot reach"):
        client.list_tags(ImageRef.parse(f"{host}/team/app"))


def test_paging_through_a_proxy_that_pages_the_real_registry(
    open_registry: tuple[RegistryServer, dict[str, str]],
) -> None:
    """2.8.2 never pages, so a transport in front of it slices the list the way others do."""
    server, _ = open_registry
    real = httpx.HTTPTransport()

    def paging_proxy(request: httpx.Request) -> httpx.Response:
        upstream = real.handle_request(
            httpx.Request("GET", request.url.copy_with(query=None), headers=request.headers)
        )
        upstream.read()
        tags = sorted(httpx.Response(200, content=upstream.content).json()["tags"])
        last = request.url.params.get("last")
        start = tags.index(last) + 1 if last else 0
        page = tags[start : start + 2]
        headers = {}
        if start + 2 < len(tags):
            headers["Link"] = f'</v2/team/app/tags/list?n=2&last={page[-1]}>; rel="next"'
        return httpx.Response(200, json={"name": "team/app", "tags": page}, headers=headers)

    settings = _settings({"host": server.host, "url": server.url})
    client = RegistryClient(settings, transport=httpx.MockTransport(paging_proxy))
    with client:
        tags = client.list_tags(ImageRef.parse(f"{server.host}/team/app"))
    real.close()

    assert tags == sorted(TAGS)
