"""The registry client against a real CNCF Distribution (Debian docker-registry 2.8.2).

Servers are module-scoped: starting one takes a fraction of a second, but pushing images
is the slow part, so each server is filled once and read by many tests.
"""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from automator.config import Settings, settings_from_mapping
from automator.errors import (
    ConfigError,
    RegistryAuthError,
    RegistryNotFound,
    RegistryUnavailable,
)
from automator.images import ImageRef
from automator.registry import RegistryClient, RegistryMetrics
from tests.support.process import free_port
from tests.support.push import push_image, push_index, push_many
from tests.support.registry import RegistryServer

pytestmark = pytest.mark.integration

USER, PASSWORD = "alice", "correct-horse-battery"
TAGS = ["1.0.0", "1.1.0", "2.0.0-rc.1", "latest"]
BUILT = {
    "linux/amd64": datetime(2024, 4, 1, 8, 0, 0, 250000, tzinfo=UTC),
    "linux/arm64/v8": datetime(2024, 4, 2, 9, 30, tzinfo=UTC),
    "linux/arm/v7": datetime(2024, 4, 3, 23, 59, 59, tzinfo=UTC),
}
STAMPS = {
    "1.0.0": datetime(2023, 12, 24, 18, 0, tzinfo=UTC),
    "1.1.0": datetime(2024, 2, 29, 12, 0, 0, 999999, tzinfo=UTC),
    "1.2.0": datetime(2024, 1, 15, tzinfo=UTC),  # built before 1.1.0: a backport
}


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


# -- multi-platform images and creation times ---------------------------------------------


class MultiArch:
    """What the multiarch fixture pushed: server, and index + per-platform digests."""

    def __init__(self, server: RegistryServer) -> None:
        self.server = server
        self.oci = push_index(server.url, "multi/app", "2.0.0", BUILT)
        self.docker = push_index(
            server.url, "multi/app", "2.0.0-docker", BUILT, index_type="docker"
        )
        self.stamped = push_image(server.url, "stamped/app", list(STAMPS), created=STAMPS)

    def image(self, repository: str) -> ImageRef:
        return ImageRef.parse(f"{self.server.host}/{repository}")

    def client(self) -> RegistryClient:
        return _client(_settings({"host": self.server.host, "url": self.server.url}))


@pytest.fixture(scope="module")
def multiarch(open_registry: tuple[RegistryServer, dict[str, str]]) -> MultiArch:
    return MultiArch(open_registry[0])


@pytest.mark.parametrize("tag", ["2.0.0", "2.0.0-docker"], ids=["oci-index", "docker-list"])
def test_created_per_platform_is_what_was_pushed(multiarch: MultiArch, tag: str) -> None:
    image = multiarch.image("multi/app")

    with multiarch.client() as client:
        got = {p: client.created(image, tag, platform=p) for p in BUILT}
        default = client.created(image, tag)

    assert got == BUILT
    assert default == BUILT["linux/amd64"]
    assert all(t.tzinfo is UTC for t in got.values())


@pytest.mark.parametrize("tag", ["2.0.0", "2.0.0-docker"], ids=["oci-index", "docker-list"])
def test_digest_per_platform_is_the_pushed_manifest(multiarch: MultiArch, tag: str) -> None:
    index, per_platform = multiarch.oci if tag == "2.0.0" else multiarch.docker
    image = multiarch.image("multi/app")

    with multiarch.client() as client:
        assert client.digest(image, tag) == index
        assert {p: client.digest(image, tag, platform=p) for p in BUILT} == per_platform
        assert client.digest(image, tag, platform="linux/arm64") == per_platform["linux/arm64/v8"]
        assert client.digest(image, tag, platform="linux/arm") == per_platform["linux/arm/v7"]
        with pytest.raises(RegistryNotFound) as err:
            client.digest(image, tag, platform="linux/s390x")

    assert "has no linux/s390x image (it has linux/amd64, linux/arm64, linux/arm/v7)" in str(
        err.value
    )
    assert "unknown" not in str(err.value)  # the attestation manifests are not platforms


def test_created_of_single_images_with_distinct_times(multiarch: MultiArch) -> None:
    image = multiarch.image("stamped/app")

    with multiarch.client() as client:
        got = {tag: client.created(image, tag) for tag in STAMPS}
        assert client.digest(image, "1.0.0", platform="linux/amd64") == multiarch.stamped["1.0.0"]
        with pytest.raises(RegistryNotFound, match="single-platform image for linux/amd64"):
            client.created(image, "1.0.0", platform="linux/arm64")

    assert got == STAMPS
    assert len(set(multiarch.stamped.values())) == len(STAMPS)


def test_creation_times_are_cached_by_digest_one_head_per_tag(multiarch: MultiArch) -> None:
    """Count what reaches the real registry: a warm cache costs one HEAD per call."""
    real = httpx.HTTPTransport()
    seen: list[str] = []

    def counting(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path.split('/')[-2]}")
        response = real.handle_request(request)
        response.read()
        return response

    settings = _settings({"host": multiarch.server.host, "url": multiarch.server.url})
    image = multiarch.image("multi/app")
    with RegistryClient(settings, transport=httpx.MockTransport(counting)) as client:
        client.created(image, "2.0.0", platform="linux/arm64")
        cold = list(seen)
        seen.clear()
        for _ in range(3):
            assert client.created(image, "2.0.0", platform="linux/arm64") == BUILT["linux/arm64/v8"]
        warm = list(seen)
        seen.clear()
        client.digest(image, "2.0.0", platform="linux/amd64")  # the index is cached too
        other_platform = list(seen)
    real.close()

    assert cold == ["HEAD manifests", "GET manifests", "GET manifests", "GET blobs"]
    assert warm == ["HEAD manifests"] * 3
    assert other_platform == ["HEAD manifests"]


def test_created_from_many_threads_is_consistent(multiarch: MultiArch) -> None:
    image = multiarch.image("multi/app")
    calls = [(tag, p) for tag in ("2.0.0", "2.0.0-docker") for p in BUILT] * 10

    with multiarch.client() as client, ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda c: client.created(image, c[0], platform=c[1]), calls))

    assert results == [BUILT[p] for _, p in calls]


def test_push_image_distinct_times_are_one_second_apart(
    open_registry: tuple[RegistryServer, dict[str, str]],
) -> None:
    server, _ = open_registry
    image = ImageRef.parse(f"{server.host}/team/app")

    with _client(_settings({"host": server.host, "url": server.url})) as client:
        times = [client.created(image, tag) for tag in TAGS]

    assert [b - a for a, b in itertools.pairwise(times)] == [timedelta(seconds=1)] * 3


# -- TLS options and counters --------------------------------------------------------------


@pytest.fixture(scope="module")
def mtls_registry() -> Iterator[RegistryServer]:
    with RegistryServer(client_ca=True) as server:
        push_image(server.url, "mtls/app", ["4.0.0"], verify=server.ssl_context())
        yield server


def test_mtls_registry_accepts_the_configured_client_certificate(
    mtls_registry: RegistryServer,
) -> None:
    settings = _settings(
        {
            "host": mtls_registry.host,
            "url": mtls_registry.url,
            "ca_file": str(mtls_registry.ca_file),
            "cert_file": str(mtls_registry.client_cert),
            "key_file": str(mtls_registry.client_key),
        }
    )

    with _client(settings) as client:
        image = ImageRef.parse(f"{mtls_registry.host}/mtls/app")
        assert client.list_tags(image) == ["4.0.0"]
        assert client.digest(image, "4.0.0").startswith("sha256:")


def test_mtls_registry_refusing_a_client_without_a_certificate_names_cert_file(
    mtls_registry: RegistryServer,
) -> None:
    settings = _settings(
        {
            "host": mtls_registry.host,
            "url": mtls_registry.url,
            "ca_file": str(mtls_registry.ca_file),
        }
    )

    with (
        _client(settings) as client,
        pytest.raises(RegistryAuthError, match=r"client certificate .* registries\[0\]\.cert_file"),
    ):
        client.list_tags(ImageRef.parse(f"{mtls_registry.host}/mtls/app"))


def test_an_unreadable_client_certificate_is_a_config_error_naming_the_key(
    mtls_registry: RegistryServer, tmp_path: Path
) -> None:
    bogus = tmp_path / "cert.pem"
    bogus.write_text("not a certificate")
    settings = _settings(
        {
            "host": mtls_registry.host,
            "url": mtls_registry.url,
            "cert_file": str(bogus),
            "key_file": str(bogus),
        }
    )

    with (
        _client(settings) as client,
        pytest.raises(ConfigError, match=r"registries\[0\]\.cert_file"),
    ):
        client.list_tags(ImageRef.parse(f"{mtls_registry.host}/mtls/app"))


def test_insecure_reaches_a_self_signed_registry_without_its_ca_and_warns(
    tls_registry: RegistryServer,
) -> None:
    settings = _settings({"host": tls_registry.host, "url": tls_registry.url, "insecure": True})

    with capture_logs() as logs:
        client = _client(settings)
    with client:
        assert client.list_tags(ImageRef.parse(f"{tls_registry.host}/tls/app")) == ["3.0.0"]

    (warning,) = [e for e in logs if e["event"] == "registry_insecure"]
    assert warning["log_level"] == "warning"
    assert warning["registry"] == tls_registry.host
    assert warning["key"] == "registries[0].insecure"


def test_insecure_is_only_where_configured(tls_registry: RegistryServer) -> None:
    other = "127.0.0.1:1"  # an insecure entry for another host changes nothing here
    settings = _settings({"host": other, "url": f"https://{other}", "insecure": True})

    with _client(settings) as client, pytest.raises(RegistryUnavailable, match="not trusted"):
        client.list_tags(ImageRef.parse(f"{tls_registry.host}/tls/app"))


def test_stats_count_the_requests_of_a_real_scan(
    open_registry: tuple[RegistryServer, dict[str, str]],
) -> None:
    server, _ = open_registry
    settings = _settings({"host": server.host, "url": server.url, "max_concurrency": 4})
    images = [ImageRef.parse(f"{server.host}/fleet/app{i}") for i in range(12)]
    collectors = CollectorRegistry()

    with (
        RegistryClient(settings, metrics=RegistryMetrics(collectors)) as client,
        ThreadPoolExecutor(8) as pool,
    ):
        listed = list(pool.map(client.list_tags, images))
        digests = list(pool.map(lambda im: client.digest(im, "0.0.1"), images))
        stats = client.stats()[server.host]

    assert all(len(tags) == 2 for tags in listed)
    assert all(d.startswith("sha256:") for d in digests)
    # 2.8.2 sends every tag in one page: one GET per repository, one HEAD per digest.
    assert stats.requests == 24
    assert stats.retries == 0
    assert stats.tags_seen == 24
    assert stats.throttle_wait_seconds == 0.0
    sample = collectors.get_sample_value
    labels = {"registry": server.host, "status": "200"}
    assert sample("automator_registry_requests_total", {**labels, "method": "GET"}) == 12
    assert sample("automator_registry_requests_total", {**labels, "method": "HEAD"}) == 12
    assert sample("automator_registry_tags_total", {"registry": server.host}) == 24
