"""Image references keep the user's spelling and know their canonical identity."""

from __future__ import annotations

import pytest

from automator.errors import ImageRefError
from automator.images import ImageRef

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("text", "host", "path", "tag", "digest"),
    [
        ("nginx", None, "nginx", None, None),
        ("nginx:1.25", None, "nginx", "1.25", None),
        ("library/nginx:1.25", None, "library/nginx", "1.25", None),
        ("docker.io/nginx:1.25", "docker.io", "nginx", "1.25", None),
        ("127.0.0.1:5001/team/app:v1.2.3", "127.0.0.1:5001", "team/app", "v1.2.3", None),
        ("localhost/app", "localhost", "app", None, None),
        ("localhost:5000/app:1", "localhost:5000", "app", "1", None),
        ("ghcr.io/org/sub/app@" + DIGEST, "ghcr.io", "org/sub/app", None, DIGEST),
        ("ghcr.io/org/app:1.0@" + DIGEST, "ghcr.io", "org/app", "1.0", DIGEST),
        ("[::1]:5000/app:2", "[::1]:5000", "app", "2", None),
        (
            "my-registry.example.com:443/a/b_c/d-e:tag_1.x-2",
            "my-registry.example.com:443",
            "a/b_c/d-e",
            "tag_1.x-2",
            None,
        ),
    ],
)
def test_references_parse_into_their_parts_and_format_back_unchanged(
    text: str, host: str | None, path: str, tag: str | None, digest: str | None
) -> None:
    ref = ImageRef.parse(text)
    assert (ref.host, ref.path, ref.tag, ref.digest) == (host, path, tag, digest)
    assert str(ref) == text


@pytest.mark.parametrize(
    "spelling",
    [
        "nginx",
        "library/nginx",
        "docker.io/nginx",
        "docker.io/library/nginx",
        "index.docker.io/library/nginx",
        "registry-1.docker.io/nginx",
    ],
)
def test_every_docker_hub_spelling_has_the_same_identity(spelling: str) -> None:
    ref = ImageRef.parse(spelling + ":1")
    assert ref.registry == "docker.io"
    assert ref.repository == "library/nginx"
    assert ref.canonical == "docker.io/library/nginx"


def test_hub_user_repositories_do_not_gain_library() -> None:
    assert ImageRef.parse("bitnami/redis:7").repository == "bitnami/redis"


def test_a_port_is_not_mistaken_for_a_tag() -> None:
    ref = ImageRef.parse("127.0.0.1:5001/app")
    assert ref.tag is None
    assert ref.registry == "127.0.0.1:5001"


def test_with_tag_keeps_the_spelling_and_drops_the_old_digest() -> None:
    ref = ImageRef.parse("index.docker.io/nginx:1.0@" + DIGEST)
    assert str(ref.with_tag("1.1")) == "index.docker.io/nginx:1.1"
    assert str(ref.with_tag("1.1", "sha256:" + "b" * 64)) == (
        "index.docker.io/nginx:1.1@sha256:" + "b" * 64
    )


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        (" nginx", "spaces"),
        ("Nginx:1", "repository path"),
        ("nginx:", "invalid tag"),
        ("nginx:-bad", "invalid tag"),
        ("nginx@sha256:xyz", "invalid digest"),
        ("app//x:1", "repository path"),
        ("bad_host.io:99999x/app", "registry host"),
    ],
)
def test_malformed_references_name_the_bad_part(text: str, fragment: str) -> None:
    with pytest.raises(ImageRefError, match=fragment):
        ImageRef.parse(text)


def test_with_tag_rejects_an_invalid_tag() -> None:
    with pytest.raises(ImageRefError, match="not a valid tag"):
        ImageRef.parse("nginx:1").with_tag("a b")
