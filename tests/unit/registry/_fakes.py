"""Fakes for the registry client's unit tests: a recording handler for
``httpx.MockTransport`` (we replace the transport, never our code), a hand-driven clock
and settings builders."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from automator.config import Settings, settings_from_mapping

Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """Wraps a handler, remembering every request so tests can assert on what was sent."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)

    def paths(self) -> list[str]:
        return [r.url.path for r in self.requests]

    def to(self, path: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path == path]


class FakeClock:
    """A monotonic clock that only moves when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_settings(*registries: dict[str, Any]) -> Settings:
    return settings_from_mapping(
        {"git": {"url": "file:///tmp/repo.git"}, "registries": list(registries)}
    )


def tags_response(*tags: str, link: str | None = None) -> httpx.Response:
    headers = {"Link": link} if link else {}
    return httpx.Response(200, json={"name": "x", "tags": list(tags)}, headers=headers)


def write_file(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
ATTESTATION = {"vnd.docker.reference.type": "attestation-manifest"}


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def platform_json(platform: str) -> dict[str, str]:
    parts = platform.split("/")
    body = {"os": parts[0], "architecture": parts[1]}
    if len(parts) == 3:
        body["variant"] = parts[2]
    return body


class FakeRegistry:
    """A content-addressed registry for ``httpx.MockTransport``: manifests by tag or digest,
    blobs by digest, optionally behind basic auth and with blobs redirected to storage on
    another host (as S3/GCS-backed registries do)."""

    def __init__(
        self,
        *,
        auth: str | None = None,
        blob_storage: str | None = None,
        head_digest: bool = True,
    ) -> None:
        self.auth = auth
        self.blob_storage = blob_storage
        self.head_digest = head_digest
        self.manifests: dict[str, tuple[str, bytes]] = {}
        self.tags: dict[str, str] = {}
        self.blobs: dict[str, bytes] = {}

    # -- content -----------------------------------------------------------------------

    def blob(self, data: bytes, media_type: str) -> dict[str, object]:
        digest = digest_of(data)
        self.blobs[digest] = data
        return {"mediaType": media_type, "size": len(data), "digest": digest}

    def put(self, body: dict[str, object] | bytes, media_type: str, tag: str | None = None) -> str:
        raw = body if isinstance(body, bytes) else json.dumps(body, indent=2).encode()
        digest = digest_of(raw)
        self.manifests[digest] = (media_type, raw)
        if tag is not None:
            self.tags[tag] = digest
        return digest

    def image(
        self,
        created: object,
        *,
        platform: str = "linux/amd64",
        oci: bool = False,
        tag: str | None = None,
        config: dict[str, object] | None = None,
    ) -> str:
        """An image manifest over a config with ``created`` (omitted when ``...``)."""
        body: dict[str, object] = {**platform_json(platform), "rootfs": {"type": "layers"}}
        if created is not ...:
            body["created"] = created
        body.update(config or {})
        config_type = (
            "application/vnd.oci.image.config.v1+json"
            if oci
            else "application/vnd.docker.container.image.v1+json"
        )
        media_type = OCI_MANIFEST if oci else DOCKER_MANIFEST
        cfg = self.blob(json.dumps(body).encode(), config_type)
        manifest = {"schemaVersion": 2, "mediaType": media_type, "config": cfg, "layers": []}
        return self.put(manifest, media_type, tag)

    def index(
        self,
        entries: list[tuple[str, str | None, dict[str, str] | None]],
        *,
        oci: bool = True,
        tag: str | None = None,
    ) -> str:
        """An index over ``(digest, platform or None, annotations or None)`` entries."""
        media_type = OCI_INDEX if oci else DOCKER_LIST
        manifests = []
        for digest, platform, notes in entries:
            entry_type, raw = self.manifests[digest]
            entry: dict[str, object] = {
                "mediaType": entry_type,
                "size": len(raw),
                "digest": digest,
            }
            if platform is not None:
                entry["platform"] = platform_json(platform)
            if notes is not None:
                entry["annotations"] = notes
            manifests.append(entry)
        return self.put(
            {"schemaVersion": 2, "mediaType": media_type, "manifests": manifests}, media_type, tag
        )

    def attestation(self) -> str:
        """An attestation manifest as buildx writes it: unknown/unknown, no created."""
        return self.image(..., platform="unknown/unknown", oci=True)

    # -- HTTP --------------------------------------------------------------------------

    def __call__(self, req: httpx.Request) -> httpx.Response:
        path = req.url.path
        if self.blob_storage is not None and req.url.host == self.blob_storage:
            data = self.blobs.get(path.rsplit("/", 1)[-1])
            return httpx.Response(200, content=data) if data else httpx.Response(404)
        if self.auth is not None and req.headers.get("authorization") != self.auth:
            return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="r"'})
        _, _, rest = path.partition("/v2/")
        if "/manifests/" in rest:
            ref = rest.rsplit("/manifests/", 1)[1]
            digest = self.tags.get(ref, ref)
            if digest not in self.manifests:
                return httpx.Response(404, json={"errors": [{"code": "MANIFEST_UNKNOWN"}]})
            media_type, raw = self.manifests[digest]
            headers = {"Content-Type": media_type}
            if self.head_digest or req.method == "GET":
                headers["Docker-Content-Digest"] = digest
            if req.method == "HEAD":
                headers["Content-Length"] = str(len(raw))
                return httpx.Response(200, headers=headers)
            return httpx.Response(200, headers=headers, content=raw)
        if "/blobs/" in rest:
            digest = rest.rsplit("/blobs/", 1)[1]
            if digest not in self.blobs:
                return httpx.Response(404, json={"errors": [{"code": "BLOB_UNKNOWN"}]})
            if self.blob_storage is not None:
                location = f"https://{self.blob_storage}/store/{digest}?X-Signature=abc"
                return httpx.Response(307, headers={"Location": location})
            return httpx.Response(200, content=self.blobs[digest])
        return httpx.Response(404)
