"""Image creation times and per-platform digests: manifests, indexes, configs and caching.

Every test runs against :class:`FakeRegistry` (content-addressed, like a real registry)
through ``httpx.MockTransport``, and counts the requests the client made: Docker Hub
bills manifest GETs as pulls, so "how many requests" is part of the contract.
"""

from __future__ import annotations

import base64
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from structlog.testing import capture_logs

from automator.errors import PolicyError, RegistryNotFound, RegistryUnavailable
from automator.images import ImageRef
from automator.registry import RegistryClient
from tests.unit.registry._fakes import ATTESTATION, FakeRegistry, Recorder, make_settings

from .conftest import ClientFor

IMAGE = ImageRef.parse("reg.example/team/app")
T1 = "2024-03-01T10:00:00Z"
T2 = "2024-05-02T11:30:00.123456789Z"  # Go writes nanoseconds
T3 = "2024-07-03T00:00:00+02:00"
DT1 = datetime(2024, 3, 1, 10, tzinfo=UTC)
DT2 = datetime(2024, 5, 2, 11, 30, 0, 123456, tzinfo=UTC)
DT3 = datetime(2024, 7, 2, 22, tzinfo=UTC)


def _methods(rec: Recorder) -> list[str]:
    return [f"{r.method} {r.url.path.rsplit('/', 2)[-2]}" for r in rec.requests]


def _multiarch(fake: FakeRegistry, *, oci: bool = True, tag: str = "1.0") -> dict[str, str]:
    """amd64 (T1), arm64 (T2), arm/v7 (T3) and buildx attestations; returns the digests."""
    amd = fake.image(T1, oci=oci)
    arm64 = fake.image(T2, platform="linux/arm64/v8", oci=oci)
    armv7 = fake.image(T3, platform="linux/arm/v7", oci=oci)
    att = fake.attestation()
    index = fake.index(
        [
            (amd, "linux/amd64", None),
            (arm64, "linux/arm64/v8", None),
            (armv7, "linux/arm/v7", None),
            (att, "unknown/unknown", {**ATTESTATION, "vnd.docker.reference.digest": amd}),
        ],
        oci=oci,
        tag=tag,
    )
    return {"index": index, "amd64": amd, "arm64": arm64, "armv7": armv7, "att": att}


# -- single-platform manifests -----------------------------------------------------------


@pytest.mark.parametrize("oci", [False, True], ids=["docker-schema2", "oci-manifest"])
def test_created_of_a_single_manifest_reads_its_config(client_for: ClientFor, oci: bool) -> None:
    fake = FakeRegistry()
    digest = fake.image(T2, oci=oci, tag="1.0")
    client, rec = client_for(fake)

    created = client.created(IMAGE, "1.0")

    assert created == DT2
    assert created.tzinfo is UTC
    assert _methods(rec) == ["HEAD manifests", "GET manifests", "GET blobs"]
    assert rec.requests[1].url.path == f"/v2/team/app/manifests/{digest}"
    accepted = rec.requests[1].headers["accept"]
    assert "application/vnd.oci.image.index.v1+json" in accepted
    assert "application/vnd.docker.distribution.manifest.v2+json" in accepted


def test_created_with_an_offset_is_converted_to_utc(client_for: ClientFor) -> None:
    fake = FakeRegistry()
    fake.image(T3, tag="1.0")
    client, _ = client_for(fake)

    assert client.created(IMAGE, "1.0") == DT3


def test_a_schema1_manifest_is_read_from_its_v1_compatibility(client_for: ClientFor) -> None:
    fake = FakeRegistry()
    v1 = '{"created": "2016-01-02T03:04:05Z", "os": "linux", "architecture": "amd64"}'
    fake.put(
        {"schemaVersion": 1, "history": [{"v1Compatibility": v1}]},
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
        tag="old",
    )
    client, rec = client_for(fake)

    assert client.created(IMAGE, "old") == datetime(2016, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert _methods(rec) == ["HEAD manifests", "GET manifests"]


def test_without_a_head_digest_the_tag_body_is_reused(client_for: ClientFor) -> None:
    fake = FakeRegistry(head_digest=False)
    fake.image(T1, tag="1.0")
    client, rec = client_for(fake)

    assert client.created(IMAGE, "1.0") == DT1
    assert _methods(rec) == ["HEAD manifests", "GET manifests", "GET blobs"]
    assert rec.requests[1].url.path == "/v2/team/app/manifests/1.0"


# -- indexes -------------------------------------------------------------------------------


@pytest.mark.parametrize("oci", [True, False], ids=["oci-index", "docker-manifest-list"])
@pytest.mark.parametrize(
    ("platform", "expected"),
    [
        (None, DT1),  # default: linux/amd64
        ("linux/amd64", DT1),
        ("linux/arm64", DT2),  # the entry says v8, arm64's default variant
        ("linux/arm64/v8", DT2),
        ("linux/aarch64", DT2),
        ("linux/arm/v7", DT3),
        ("linux/arm", DT3),  # arm's default variant is v7
        ("Linux/AMD64", DT1),
    ],
)
def test_created_of_an_index_reads_the_platforms_image(
    client_for: ClientFor, oci: bool, platform: str | None, expected: datetime
) -> None:
    fake = FakeRegistry()
    digests = _multiarch(fake, oci=oci)
    client, rec = client_for(fake)

    assert client.created(IMAGE, "1.0", platform=platform) == expected
    assert _methods(rec) == ["HEAD manifests", "GET manifests", "GET manifests", "GET blobs"]
    assert rec.requests[1].url.path.endswith(digests["index"])


def test_without_amd64_the_default_is_the_first_entry_that_is_not_an_attestation(
    client_for: ClientFor,
) -> None:
    fake = FakeRegistry()
    att = fake.attestation()
    marked = fake.image(..., platform="linux/amd64/v2", oci=True)  # annotated: skipped too
    s390x = fake.image(T3, platform="linux/s390x", oci=True)
    arm64 = fake.image(T2, platform="linux/arm64", oci=True)
    fake.index(
        [
            (att, "unknown/unknown", None),
            (marked, "linux/amd64/v2", ATTESTATION),
            (s390x, "linux/s390x", None),
            (arm64, "linux/arm64", None),
        ],
        tag="1.0",
    )
    client, _ = client_for(fake)

    assert client.created(IMAGE, "1.0") == DT3
    assert client.digest(IMAGE, "1.0", platform="linux/arm64") == arm64
    with pytest.raises(RegistryNotFound, match=r"has no linux/amd64 image \(it has linux/s390x"):
        client.created(IMAGE, "1.0", platform="linux/amd64")


def test_a_missing_platform_names_the_platforms_the_index_has(client_for: ClientFor) -> None:
    fake = FakeRegistry()
    _multiarch(fake)
    client, rec = client_for(fake)

    with pytest.raises(RegistryNotFound) as err:
        client.created(IMAGE, "1.0", platform="linux/ppc64le")

    message = str(err.value)
    assert "image reg.example/team/app:1.0" in message
    assert "has no linux/ppc64le image (it has linux/amd64, linux/arm64, linux/arm/v7)" in message
    assert "unknown" not in message
    assert "platform annotation" in message

    rec.requests.clear()  # the answer is cached: asking again costs one HEAD
    with pytest.raises(RegistryNotFound, match="ppc64le"):
        client.digest(IMAGE, "1.0", platform="linux/ppc64le")
    assert _methods(rec) == ["HEAD manifests"]


def test_a_nested_index_is_followed(client_for: ClientFor) -> None:
    fake = FakeRegistry()
    arm64 = fake.image(T2, platform="linux/arm64", oci=True)
    inner = fake.index([(arm64, "linux/arm64", None)])
    fake.index([(inner, "linux/arm64", None)], tag="1.0")
    client, _ = client_for(fake)

    assert client.digest(IMAGE, "1.0", platform="linux/arm64") == arm64
    assert client.created(IMAGE, "1.0", platform="linux/arm64") == DT2


def test_an_index_with_only_attestations_has_no_default(client_for: ClientFor) -> None:
    fake = FakeRegistry()
    fake.index([(fake.attestation(), "unknown/unknown", ATTESTATION)], tag="1.0")
    client, _ = client_for(fake)

    with pytest.raises(RegistryNotFound, match="index without any image manifest"):
        client.created(IMAGE, "1.0")


# -- digest(platform=...) ------------------------------------------------------------------


def test_digest_without_platform_is_the_index_digest_by_one_head(client_for: ClientFor) -> None:
    fake = FakeRegistry()
    digests = _multiarch(fake)
    client, rec = client_for(fake)

    assert client.digest(IMAGE, "1.0") == digests["index"]
    assert _methods(rec) == ["HEAD manifests"]


@pytest.mark.parametrize("oci", [True, False], ids=["oci-index", "docker-manifest-list"])
def test_digest_with_platform_picks_the_index_entry(client_for: ClientFor, oci: bool) -> None:
    fake = FakeRegistry()
    digests = _multiarch(fake, oci=oci)
    client, rec = client_for(fake)

    assert client.digest(IMAGE, "1.0", platform="linux/arm64") == digests["arm64"]
    assert client.digest(IMAGE, "1.0", platform="linux/arm/v7") == digests["armv7"]
    assert client.digest(IMAGE, "1.0", platform="linux/amd64") == digests["amd64"]
    # One GET of the index, then the choice is cached: configs are never needed for this.
    assert _methods(rec) == ["HEAD manifests", "GET manifests"] + ["HEAD manifests"] * 2


def test_digest_with_platform_of_a_matching_single_manifest_is_its_own(
    client_for: ClientFor,
) -> None:
    fake = FakeRegistry()
    digest = fake.image(T1, platform="linux/arm64", tag="1.0")
    client, rec = client_for(fake)

    assert client.digest(IMAGE, "1.0", platform="linux/arm64/v8") == digest
    assert _methods(rec) == ["HEAD manifests", "GET manifests", "GET blobs"]
    rec.requests.clear()
    assert client.digest(IMAGE, "1.0", platform="linux/arm64") == digest
    assert client.created(IMAGE, "1.0", platform="linux/arm64") == DT1
    assert _methods(rec) == ["HEAD manifests", "HEAD manifests"]


def test_digest_with_another_platform_than_a_single_manifest_is_not_found(
    client_for: ClientFor,
) -> None:
    fake = FakeRegistry()
    fake.image(T1, tag="1.0")
    client, rec = client_for(fake)

    with pytest.raises(RegistryNotFound) as err:
        client.digest(IMAGE, "1.0", platform="linux/arm64")
    assert "has no linux/arm64 image (it is a single-platform image for linux/amd64)" in str(
        err.value
    )
    rec.requests.clear()
    with pytest.raises(RegistryNotFound, match="single-platform"):
        client.created(IMAGE, "1.0", platform="linux/arm64")
    assert _methods(rec) == ["HEAD manifests"]
    # Without a platform the single image is taken as it is.
    assert client.created(IMAGE, "1.0") == DT1


@pytest.mark.parametrize(
    "platform",
    ["linux", "", "linux/", "/amd64", "linux/amd64/v8/extra", "linux amd64", "linux/amd64;rm"],
)
def test_a_malformed_platform_is_a_policy_error_before_any_request(
    client_for: ClientFor, platform: str
) -> None:
    client, rec = client_for(FakeRegistry())

    with pytest.raises(PolicyError, match=r"os/arch\[/variant\].*linux/amd64"):
        client.digest(IMAGE, "1.0", platform=platform)
    with pytest.raises(PolicyError, match="platform annotation"):
        client.created(IMAGE, "1.0", platform=platform)
    assert rec.requests == []


# -- created problems ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("created", "reason"),
    [
        (..., "has no creation time"),
        (None, "has no creation time"),
        ("", "is not RFC 3339"),
        ("yesterday", "is not RFC 3339"),
        ("2024-13-01T00:00:00Z", "is not a valid date"),
        (1700000000, "not a string"),
        ("0001-01-01T00:00:00Z", "Go's zero time"),
    ],
)
def test_an_unusable_created_is_a_permanent_not_found(
    client_for: ClientFor, created: object, reason: str
) -> None:
    fake = FakeRegistry()
    digest = fake.image(created, tag="1.0")
    client, rec = client_for(fake)

    with pytest.raises(RegistryNotFound) as err:
        client.created(IMAGE, "1.0")
    assert reason in str(err.value)
    assert "image reg.example/team/app:1.0" in str(err.value)
    assert digest in str(err.value)
    # Permanent and keyed by an immutable digest: not fetched again.
    rec.requests.clear()
    with pytest.raises(RegistryNotFound):
        client.created(IMAGE, "1.0")
    assert _methods(rec) == ["HEAD manifests"]


def test_a_config_that_does_not_match_its_digest_is_transient_and_not_cached(
    client_for: ClientFor,
) -> None:
    fake = FakeRegistry()
    fake.image(T1, tag="1.0")
    (config_digest,) = fake.blobs
    good = fake.blobs[config_digest]
    fake.blobs[config_digest] = good.replace(b"2024", b"2099")
    client, _ = client_for(fake)

    with pytest.raises(RegistryUnavailable, match="does not match its digest"):
        client.created(IMAGE, "1.0")
    fake.blobs[config_digest] = good
    assert client.created(IMAGE, "1.0") == DT1


def test_a_missing_tag_is_not_found(client_for: ClientFor) -> None:
    client, _ = client_for(FakeRegistry())

    with pytest.raises(RegistryNotFound, match=r"team/app:9\.9 not found"):
        client.created(IMAGE, "9.9")


# -- blob redirects ------------------------------------------------------------------------


def test_a_config_redirected_to_blob_storage_gets_no_credentials(
    client_for: ClientFor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REG_PASSWORD", "s3cret-pw")
    basic = "Basic " + base64.b64encode(b"alice:s3cret-pw").decode()
    fake = FakeRegistry(auth=basic, blob_storage="storage.example")
    fake.image(T1, tag="1.0")
    settings = make_settings(
        {"host": "reg.example", "username": "alice", "password_env": "REG_PASSWORD"}
    )
    client, rec = client_for(fake, settings)

    assert client.created(IMAGE, "1.0") == DT1

    storage = [r for r in rec.requests if r.url.host == "storage.example"]
    assert len(storage) == 1
    assert "authorization" not in storage[0].headers
    assert storage[0].url.params["X-Signature"] == "abc"
    registry = [r for r in rec.requests if r.url.host == "reg.example"]
    assert registry[-1].headers["authorization"] == basic  # the blob request itself


# -- caching -------------------------------------------------------------------------------


def test_a_second_created_costs_one_head_and_logs_a_cache_hit(client_for: ClientFor) -> None:
    fake = FakeRegistry()
    _multiarch(fake)
    client, rec = client_for(fake)
    assert client.created(IMAGE, "1.0", platform="linux/arm64") == DT2
    assert len(rec.requests) == 4
    rec.requests.clear()

    with capture_logs() as logs:
        assert client.created(IMAGE, "1.0", platform="linux/arm64") == DT2

    assert _methods(rec) == ["HEAD manifests"]
    (hit,) = [e for e in logs if e["event"] == "registry_created_cache_hit"]
    assert hit["log_level"] == "debug"
    assert hit["tag"] == "1.0"


def test_tags_sharing_a_digest_share_the_cache(client_for: ClientFor) -> None:
    fake = FakeRegistry()
    digest = fake.image(T1, tag="1.4.2")
    fake.tags["latest"] = digest
    client, rec = client_for(fake)

    client.created(IMAGE, "1.4.2")
    rec.requests.clear()

    assert client.created(IMAGE, "latest") == DT1
    assert _methods(rec) == ["HEAD manifests"]


def test_a_digest_lookup_warms_the_created_lookup(client_for: ClientFor) -> None:
    fake = FakeRegistry()
    _multiarch(fake)
    client, rec = client_for(fake)

    client.digest(IMAGE, "1.0", platform="linux/arm64")
    rec.requests.clear()
    assert client.created(IMAGE, "1.0", platform="linux/arm64") == DT2
    # The platform choice is known; only the image's manifest and config are new.
    assert _methods(rec) == ["HEAD manifests", "GET manifests", "GET blobs"]


def test_a_moved_tag_is_seen_at_once(client_for: ClientFor) -> None:
    fake = FakeRegistry()
    fake.image(T1, tag="latest")
    client, _ = client_for(fake)
    assert client.created(IMAGE, "latest") == DT1

    fake.image(T2, tag="latest")

    assert client.created(IMAGE, "latest") == DT2


def test_the_cache_is_bounded(client_for: ClientFor) -> None:
    fake = FakeRegistry()
    fake.image(T1, tag="a")
    fake.image(T2, tag="b")
    recorder = Recorder(fake)

    with RegistryClient(
        make_settings(), transport=httpx.MockTransport(recorder), cache_size=1
    ) as client:
        client.created(IMAGE, "a")
        client.created(IMAGE, "b")  # evicts a
        recorder.requests.clear()
        client.created(IMAGE, "a")
    assert _methods(recorder) == ["HEAD manifests", "GET manifests", "GET blobs"]


def test_concurrent_callers_fetch_each_config_once(client_for: ClientFor) -> None:
    fake = FakeRegistry()
    digests = _multiarch(fake)
    for i in range(20):
        fake.tags[f"alias{i}"] = digests["index"]
    gate = threading.Event()

    def slow(req: httpx.Request) -> httpx.Response:
        if req.method == "GET":
            gate.wait(5)
            time.sleep(0.01)
        return fake(req)

    client, rec = client_for(slow)
    tags = [f"alias{i}" for i in range(20)]
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(client.created, IMAGE, tag, platform="linux/arm64") for tag in tags]
        time.sleep(0.05)
        gate.set()
        results = [f.result() for f in futures]

    assert results == [DT2] * 20
    gets = [r.url.path for r in rec.requests if r.method == "GET"]
    assert len(gets) == 3, gets  # index, arm64 manifest, arm64 config: once each
    assert sum(r.method == "HEAD" for r in rec.requests) == 20


def test_many_tags_in_parallel_stay_correct(client_for: ClientFor) -> None:
    fake = FakeRegistry()
    base = datetime(2024, 1, 1, tzinfo=UTC)
    expected = {}
    for i in range(60):
        when = base + timedelta(hours=i)
        fake.image(when.strftime("%Y-%m-%dT%H:%M:%SZ"), tag=f"1.0.{i}")
        expected[f"1.0.{i}"] = when
    client, rec = client_for(fake)

    with ThreadPoolExecutor(8) as pool:
        got = dict(
            zip(expected, pool.map(lambda t: client.created(IMAGE, t), expected), strict=True)
        )

    assert got == expected
    assert len(rec.requests) == 3 * 60
