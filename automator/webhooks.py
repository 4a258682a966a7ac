"""Registry webhooks: who is calling, is it allowed, and which repositories changed.

Pure functions over (headers, query, body) so every service's payload and signature
scheme is tested without a server; the daemon only routes requests here and schedules
a scan of the returned repositories.

Supported (``POST /hooks/<kind>``):

* ``distribution``: CNCF Distribution notification envelopes (``events[].target``),
  sent by the registry itself (``notifications.endpoints`` in its config).
* ``dockerhub``: Docker Hub (``repository.repo_name``).
* ``harbor``: Harbor (``event_data.repository.repo_full_name`` and resource URLs).
* ``quay``: Quay (``docker_url`` / ``repository``).
* ``generic``: ``{"image": "host/repo"}`` or ``{"repositories": [...]}``, signed with
  ``X-Signature: sha256=<HMAC-SHA256 of the body, hex>`` (GitHub style).

With ``http.webhook_secret_env`` set, every hook must prove it knows the secret:
``Authorization: Bearer <secret>`` (Distribution ``headers``, Harbor's auth header, any
caller), ``?token=<secret>`` for services that cannot send headers (Docker Hub, Quay),
or for ``generic`` the HMAC signature. Comparisons are constant-time.

The synchronizer has one hook of its own, ``POST /hooks/git`` (a push to the config
repository: sync now rather than at the next ``sync.interval``), authenticated the same
ways plus the Git hosts' own schemes: GitHub/Gitea ``X-Hub-Signature-256`` (HMAC of the
body) and GitLab ``X-Gitlab-Token``. :func:`pushed_branch` reads the branch a push
names, so a push to another branch does not trigger a sync.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "KINDS",
    "HookError",
    "HookRequest",
    "RepositoryRef",
    "authorize",
    "parse_hook",
    "pushed_branch",
]

KINDS = ("distribution", "dockerhub", "harbor", "quay", "generic")


class HookError(Exception):
    """A hook we refuse; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class RepositoryRef:
    """A repository a hook says changed: path, and the registry host when known."""

    path: str
    host: str | None = None

    def __str__(self) -> str:
        return f"{self.host}/{self.path}" if self.host else self.path


@dataclass(frozen=True)
class HookRequest:
    kind: str
    headers: Mapping[str, str]  # lower-cased names
    query: Mapping[str, str]
    body: bytes


def authorize(request: HookRequest, secret: str | None) -> None:
    """Raise HookError(401) unless the request proves it knows ``secret`` (if any)."""
    if secret is None:
        return
    expected = secret.encode()
    auth = request.headers.get("authorization", "")
    for candidate in (auth.removeprefix("Bearer ").strip(), auth.strip()):
        if candidate and hmac.compare_digest(candidate.encode(), expected):
            return
    token = request.query.get("token")
    if token and hmac.compare_digest(token.encode(), expected):
        return
    signed = {"generic": ("x-signature",), "git": ("x-signature", "x-hub-signature-256")}
    if request.kind in signed:
        digest = hmac.new(expected, request.body, hashlib.sha256).hexdigest()
        for header in signed[request.kind]:
            signature = request.headers.get(header, "")
            if hmac.compare_digest(signature.encode(), f"sha256={digest}".encode()):
                return
    gitlab = request.headers.get("x-gitlab-token", "")
    if request.kind == "git" and gitlab and hmac.compare_digest(gitlab.encode(), expected):
        return
    raise HookError(
        401,
        "webhook secret missing or wrong: send 'Authorization: Bearer <secret>', "
        "'?token=<secret>', or for /hooks/generic and /hooks/git an HMAC signature "
        "(X-Signature, X-Hub-Signature-256) or GitLab's X-Gitlab-Token",
    )


def pushed_branch(request: HookRequest) -> str | None:
    """The branch a Git push hook names (``ref: refs/heads/<branch>``), or None when the
    payload names none (then any push counts). A ping (GitHub's first delivery) or a tag
    push is HookError(202): accepted, nothing to do."""
    if request.headers.get("x-github-event") == "ping":
        raise HookError(202, "ping received; pushes will trigger a sync")
    body = request.body
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        # GitHub's default delivery: the JSON is the form field `payload`
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
        body = (form.get("payload") or [""])[0].encode()
    try:
        data = json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError):
        return None
    ref = data.get("ref") if isinstance(data, dict) else None
    if not isinstance(ref, str):
        return None
    if ref.startswith("refs/tags/"):
        raise HookError(202, f"{ref} is a tag, not a branch: nothing to sync")
    return ref.removeprefix("refs/heads/")


def parse_hook(request: HookRequest) -> list[RepositoryRef]:
    """The repositories a hook reports as pushed; HookError(400/404) for bad requests."""
    if request.kind not in KINDS:
        raise HookError(404, f"no hook /hooks/{request.kind}; use one of {', '.join(KINDS)}")
    try:
        data = json.loads(request.body or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise HookError(400, f"/hooks/{request.kind}: body is not JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise HookError(400, f"/hooks/{request.kind}: body must be a JSON object")
    parser = _PARSERS[request.kind]
    try:
        repos = parser(data)
    except (KeyError, TypeError, AttributeError) as exc:
        raise HookError(
            400, f"/hooks/{request.kind}: payload lacks the expected fields ({exc!r})"
        ) from exc
    return list(dict.fromkeys(r for r in repos if r.path))


def _distribution(data: dict[str, Any]) -> list[RepositoryRef]:
    out = []
    for event in data["events"]:
        if event.get("action") != "push":
            continue
        target = event["target"]
        # Only manifest pushes make a new tag; blob pushes carry no tag.
        if "tag" not in target and "manifest" not in str(target.get("mediaType", "")):
            continue
        host = (event.get("request") or {}).get("host")
        out.append(RepositoryRef(target["repository"], host or None))
    return out


def _dockerhub(data: dict[str, Any]) -> list[RepositoryRef]:
    return [RepositoryRef(data["repository"]["repo_name"], "docker.io")]


def _harbor(data: dict[str, Any]) -> list[RepositoryRef]:
    event = data["event_data"]
    out = []
    for resource in event.get("resources") or []:
        url = str(resource.get("resource_url", ""))
        name = url.split("@", 1)[0]
        last = name.rsplit("/", 1)[-1]
        if ":" in last:
            name = name[: len(name) - len(last)] + last.split(":", 1)[0]
        host, _, path = name.partition("/")
        if path:
            out.append(RepositoryRef(path, host))
    if not out:
        out.append(RepositoryRef(event["repository"]["repo_full_name"]))
    return out


def _quay(data: dict[str, Any]) -> list[RepositoryRef]:
    url = data.get("docker_url")
    if isinstance(url, str) and "/" in url:
        host, _, path = url.partition("/")
        return [RepositoryRef(path, host)]
    return [RepositoryRef(data["repository"], "quay.io")]


def _generic(data: dict[str, Any]) -> list[RepositoryRef]:
    names = list(data.get("repositories") or [])
    if "image" in data:
        names.append(data["image"])
    if not names:
        raise KeyError("image")
    out = []
    for name in names:
        first, sep, rest = str(name).partition("/")
        if sep and ("." in first or ":" in first or first == "localhost"):
            out.append(RepositoryRef(rest.split(":", 1)[0].split("@", 1)[0], first))
        else:
            out.append(RepositoryRef(str(name).split(":", 1)[0].split("@", 1)[0]))
    return out


_PARSERS = {
    "distribution": _distribution,
    "dockerhub": _dockerhub,
    "harbor": _harbor,
    "quay": _quay,
    "generic": _generic,
}
