"""Webhook payloads of each registry service, and the secret every hook must prove."""

from __future__ import annotations

import hashlib
import hmac
import json
from urllib.parse import urlencode

import pytest

from automator.webhooks import (
    HookError,
    HookRequest,
    RepositoryRef,
    authorize,
    parse_hook,
    pushed_branch,
)


def hook(
    kind: str,
    body: object,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
) -> HookRequest:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return HookRequest(kind, headers or {}, query or {}, raw)


def test_distribution_envelopes_name_the_pushed_repositories_with_their_host() -> None:
    body = {
        "events": [
            {
                "action": "push",
                "target": {
                    "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                    "repository": "team/app",
                    "tag": "1.2.0",
                    "digest": "sha256:" + "a" * 64,
                },
                "request": {"host": "127.0.0.1:5001"},
            },
            {
                "action": "push",
                "target": {"mediaType": "application/octet-stream", "repository": "team/blobonly"},
            },
            {"action": "pull", "target": {"repository": "team/pulled", "tag": "1"}},
            {
                "action": "push",
                "target": {"repository": "team/app", "tag": "1.2.1"},
                "request": {"host": "127.0.0.1:5001"},
            },
        ]
    }
    assert parse_hook(hook("distribution", body)) == [RepositoryRef("team/app", "127.0.0.1:5001")]


@pytest.mark.parametrize(
    ("kind", "body", "expected"),
    [
        (
            "dockerhub",
            {"push_data": {"tag": "1.0"}, "repository": {"repo_name": "org/app"}},
            [RepositoryRef("org/app", "docker.io")],
        ),
        (
            "harbor",
            {
                "type": "PUSH_ARTIFACT",
                "event_data": {
                    "resources": [{"tag": "v2", "resource_url": "harbor.example.com/proj/app:v2"}],
                    "repository": {"repo_full_name": "proj/app"},
                },
            },
            [RepositoryRef("proj/app", "harbor.example.com")],
        ),
        (
            "harbor",
            {"event_data": {"resources": [], "repository": {"repo_full_name": "p/a"}}},
            [RepositoryRef("p/a")],
        ),
        (
            "quay",
            {"repository": "org/app", "docker_url": "quay.io/org/app", "updated_tags": ["latest"]},
            [RepositoryRef("org/app", "quay.io")],
        ),
        ("quay", {"repository": "org/app"}, [RepositoryRef("org/app", "quay.io")]),
        ("generic", {"image": "ghcr.io/org/app:1.2"}, [RepositoryRef("org/app", "ghcr.io")]),
        (
            "generic",
            {"repositories": ["nginx", "localhost:5000/x@sha256:" + "b" * 64]},
            [RepositoryRef("nginx"), RepositoryRef("x", "localhost:5000")],
        ),
    ],
)
def test_each_service_payload_names_its_repository(
    kind: str, body: object, expected: list[RepositoryRef]
) -> None:
    assert parse_hook(hook(kind, body)) == expected


@pytest.mark.parametrize(
    ("kind", "body", "status", "fragment"),
    [
        ("nope", {}, 404, "use one of"),
        ("distribution", b"{not json", 400, "not JSON"),
        ("distribution", [], 400, "JSON object"),
        ("distribution", {"events": [{"action": "push"}]}, 400, "expected fields"),
        ("dockerhub", {"repository": {}}, 400, "repo_name"),
        ("generic", {}, 400, "image"),
    ],
)
def test_bad_hooks_are_refused_with_a_status_and_a_reason(
    kind: str, body: object, status: int, fragment: str
) -> None:
    with pytest.raises(HookError) as info:
        parse_hook(hook(kind, body))
    assert info.value.status == status
    assert fragment in str(info.value)


SECRET = "hook-s3cret"


@pytest.mark.parametrize(
    ("headers", "query"),
    [
        ({"authorization": f"Bearer {SECRET}"}, {}),
        ({"authorization": SECRET}, {}),  # Harbor sends its auth header verbatim
        ({}, {"token": SECRET}),  # Docker Hub and Quay cannot send headers
    ],
)
def test_a_hook_that_proves_the_secret_is_let_in(
    headers: dict[str, str], query: dict[str, str]
) -> None:
    authorize(hook("dockerhub", {}, headers, query), SECRET)


def test_generic_hooks_may_sign_the_body_instead() -> None:
    body = json.dumps({"image": "ghcr.io/org/app"}).encode()
    sig = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    authorize(hook("generic", body, {"x-signature": sig}), SECRET)
    with pytest.raises(HookError):
        authorize(hook("generic", body + b" ", {"x-signature": sig}), SECRET)


@pytest.mark.parametrize(
    ("headers", "query"),
    [
        ({}, {}),
        ({"authorization": "Bearer wrong"}, {}),
        ({}, {"token": "wrong"}),
        ({"x-signature": "sha256=00"}, {}),
    ],
)
def test_a_hook_without_the_secret_is_401_and_the_message_never_echoes_it(
    headers: dict[str, str], query: dict[str, str]
) -> None:
    with pytest.raises(HookError) as info:
        authorize(hook("generic", {"image": "a"}, headers, query), SECRET)
    assert info.value.status == 401
    assert SECRET not in str(info.value)


def test_without_a_configured_secret_every_hook_is_accepted() -> None:
    authorize(hook("dockerhub", {}), None)


def test_git_push_hooks_prove_the_secret_the_way_github_and_gitlab_send_it() -> None:
    body = json.dumps({"ref": "refs/heads/main"}).encode()
    sig = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    authorize(hook("git", body, {"x-hub-signature-256": sig}), SECRET)
    authorize(hook("git", body, {"x-gitlab-token": SECRET}), SECRET)
    authorize(hook("git", body, {"authorization": f"Bearer {SECRET}"}), SECRET)
    for headers in ({"x-hub-signature-256": sig[:-2] + "00"}, {"x-gitlab-token": "nope"}):
        with pytest.raises(HookError) as info:
            authorize(hook("git", body, headers), SECRET)
        assert info.value.status == 401
    # the Git hosts' schemes are for /hooks/git only
    with pytest.raises(HookError):
        authorize(hook("dockerhub", body, {"x-gitlab-token": SECRET}), SECRET)


@pytest.mark.parametrize(
    ("body", "branch"),
    [
        pytest.param({"ref": "refs/heads/main"}, "main", id="github-gitlab-gitea"),
        pytest.param({"ref": "refs/heads/release/1.x"}, "release/1.x", id="slashes"),
        pytest.param({"commits": []}, None, id="no-ref"),
        pytest.param(b"not json", None, id="not-json"),
    ],
)
def test_a_push_hook_names_its_branch_or_none(body: object, branch: str | None) -> None:
    assert pushed_branch(hook("git", body)) == branch


def test_a_ping_or_a_tag_push_is_accepted_with_nothing_to_do() -> None:
    for request in (
        hook("git", {"zen": "hi"}, {"x-github-event": "ping"}),
        hook("git", {"ref": "refs/tags/v1.0.0"}),
    ):
        with pytest.raises(HookError) as info:
            pushed_branch(request)
        assert info.value.status == 202


def test_githubs_default_form_encoded_push_still_names_its_branch() -> None:
    payload = json.dumps({"ref": "refs/heads/feature"})
    request = hook(
        "git",
        urlencode({"payload": payload}).encode(),
        {"content-type": "application/x-www-form-urlencoded"},
    )
    assert pushed_branch(request) == "feature"
