"""Push tiny but valid images to a registry with plain HTTP (no Docker daemon needed).

Each image is a Docker v2 schema 2 manifest over one config blob and one small gzipped
tar layer; :func:`push_index` pushes a multi-platform image instead (an OCI index or a
Docker manifest list, with attestation manifests the way ``docker buildx`` adds them).
Blobs shared by many tags are uploaded once per repository (after a HEAD check);
when tags must differ (``distinct=True`` or per-tag ``created`` times), each tag gets its
own config blob, so its manifest, and therefore its digest, differs.

Built for speed as well as tests: one pooled ``httpx.Client`` per call, and
:func:`push_many` pushes repositories in parallel (the benchmark pushes 100 x 100 tags).

CLI (for the demo)::

    python -m tests.support.push http://127.0.0.1:5001 team/app 1.0.0 1.1.0 [--distinct]
    python -m tests.support.push URL team/app 2.0.0 --platform linux/amd64 --platform linux/arm64
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import ssl
import sys
import tarfile
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import httpx

__all__ = [
    "INDEX_OCI",
    "MANIFEST_LIST",
    "MANIFEST_OCI",
    "MANIFEST_V2",
    "PushError",
    "push_image",
    "push_index",
    "push_many",
]

MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST_OCI = "application/vnd.oci.image.manifest.v1+json"
MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
INDEX_OCI = "application/vnd.oci.image.index.v1+json"
IN_TOTO = "application/vnd.in-toto+json"
CONFIG_OCI = "application/vnd.oci.image.config.v1+json"
LAYER_OCI = "application/vnd.oci.image.layer.v1.tar+gzip"
CONFIG_V1 = "application/vnd.docker.container.image.v1+json"
LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)

Verify = bool | str | ssl.SSLContext
Auth = tuple[str, str] | None
Distinct = bool | Literal["annotation"]
IndexType = Literal["oci", "docker"]


class PushError(RuntimeError):
    """The registry refused part of a push; the message names the step and status."""


@dataclass(frozen=True)
class _Blob:
    digest: str
    data: bytes
    media_type: str

    @classmethod
    def of(cls, data: bytes, media_type: str) -> _Blob:
        return cls("sha256:" + hashlib.sha256(data).hexdigest(), data, media_type)


def _layer() -> tuple[_Blob, str]:
    """A deterministic one-file tar.gz layer and its uncompressed diff_id."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        content = b"automator test image\n"
        info = tarfile.TarInfo("etc/automator-test")
        info.size, info.mtime, info.mode = len(content), 0, 0o644
        tar.addfile(info, io.BytesIO(content))
    tar_bytes = raw.getvalue()
    return (
        _Blob.of(gzip.compress(tar_bytes, mtime=0), LAYER_GZIP),
        "sha256:" + hashlib.sha256(tar_bytes).hexdigest(),
    )


_LAYER, _DIFF_ID = _layer()


def _config(created: datetime, platform: str = "linux/amd64") -> _Blob:
    """An image config; ``created`` is what a newest-build policy reads."""
    os_name, arch, variant = _split_platform(platform)
    body: dict[str, object] = {
        "architecture": arch,
        "os": os_name,
        "created": created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "config": {"Cmd": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": [_DIFF_ID]},
        "history": [{"created_by": "tests.support.push"}],
    }
    if variant is not None:
        body["variant"] = variant
    return _Blob.of(json.dumps(body, sort_keys=True, separators=(",", ":")).encode(), CONFIG_V1)


def _split_platform(platform: str) -> tuple[str, str, str | None]:
    parts = platform.split("/")
    if len(parts) not in (2, 3):
        raise ValueError(f"platform {platform!r} is not os/arch[/variant]")
    return parts[0], parts[1], parts[2] if len(parts) == 3 else None


def _platform_json(platform: str) -> dict[str, str]:
    os_name, arch, variant = _split_platform(platform)
    body = {"architecture": arch, "os": os_name}
    if variant is not None:
        body["variant"] = variant
    return body


def _attestation(subject: str, platform: str) -> tuple[_Blob, _Blob, bytes]:
    """What buildx attaches per platform: an in-toto layer under an unknown/unknown config.

    Returns (config, layer, manifest); the config has no ``created`` on purpose.
    """
    statement = {
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": "https://slsa.dev/provenance/v0.2",
        "subject": [{"name": "pkg:docker/test", "digest": {"sha256": subject.split(":")[1]}}],
        "predicate": {"builder": {"id": f"tests.support.push {platform}"}},
    }
    layer = _Blob.of(json.dumps(statement, sort_keys=True).encode(), IN_TOTO)
    config_body = {
        "architecture": "unknown",
        "os": "unknown",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [layer.digest]},
    }
    config = _Blob.of(json.dumps(config_body, sort_keys=True).encode(), CONFIG_OCI)
    manifest: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_OCI,
        "config": {"mediaType": CONFIG_OCI, "size": len(config.data), "digest": config.digest},
        "layers": [
            {
                "mediaType": IN_TOTO,
                "size": len(layer.data),
                "digest": layer.digest,
                "annotations": {"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"},
            }
        ],
    }
    return config, layer, json.dumps(manifest, indent=2).encode()


def _manifest(config: _Blob) -> bytes:
    body: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_V2,
        "config": {"mediaType": CONFIG_V1, "size": len(config.data), "digest": config.digest},
        "layers": [{"mediaType": LAYER_GZIP, "size": len(_LAYER.data), "digest": _LAYER.digest}],
    }
    return json.dumps(body, indent=3).encode()


def _oci_manifest(config: _Blob, tag: str | None) -> bytes:
    """An OCI manifest; with ``tag``, an annotation makes it (and its digest) unique to it."""
    body: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_OCI,
        "config": {"mediaType": CONFIG_OCI, "size": len(config.data), "digest": config.digest},
        "layers": [{"mediaType": LAYER_OCI, "size": len(_LAYER.data), "digest": _LAYER.digest}],
    }
    if tag is not None:
        body["annotations"] = {"org.opencontainers.image.ref.name": tag}
    return json.dumps(body, indent=3).encode()


class _Pusher:
    """Push to one registry through one pooled client."""

    def __init__(self, client: httpx.Client, url: str) -> None:
        self.client = client
        self.base = url.rstrip("/")

    def ensure_blob(self, repository: str, blob: _Blob) -> None:
        head = self.client.head(f"{self.base}/v2/{repository}/blobs/{blob.digest}")
        if head.status_code == 200:
            return
        self.upload_blob(repository, blob)

    def upload_blob(self, repository: str, blob: _Blob) -> None:
        # Two-step upload: 2.8.2 does not complete the single-request POST ?digest= form.
        start = self.client.post(f"{self.base}/v2/{repository}/blobs/uploads/")
        _check(start, 202, f"start blob upload to {repository}")
        location = start.headers["Location"]
        sep = "&" if "?" in location else "?"
        target = start.url.join(f"{location}{sep}digest={blob.digest}")
        done = self.client.put(
            target, content=blob.data, headers={"Content-Type": "application/octet-stream"}
        )
        _check(done, 201, f"finish upload of {blob.digest} to {repository}")

    def put_manifest(
        self, repository: str, tag: str, body: bytes, media_type: str = MANIFEST_V2
    ) -> str:
        resp = self.client.put(
            f"{self.base}/v2/{repository}/manifests/{tag}",
            content=body,
            headers={"Content-Type": media_type},
        )
        _check(resp, 201, f"push manifest {repository}:{tag}")
        expected = "sha256:" + hashlib.sha256(body).hexdigest()
        return str(resp.headers.get("Docker-Content-Digest") or expected)

    def push(
        self,
        repository: str,
        tags: Sequence[str],
        *,
        created: datetime | Mapping[str, datetime] | None,
        distinct: Distinct,
    ) -> dict[str, str]:
        self.ensure_blob(repository, _LAYER)
        if distinct == "annotation":
            pushed: set[str] = set()
            digests: dict[str, str] = {}
            for tag in tags:
                when = created.get(tag, _EPOCH) if isinstance(created, Mapping) else created
                config = _config(when or _EPOCH)
                if config.digest not in pushed:
                    self.ensure_blob(repository, config)
                    pushed.add(config.digest)
                digests[tag] = self.put_manifest(
                    repository, tag, _oci_manifest(config, tag), media_type=MANIFEST_OCI
                )
            return digests
        if isinstance(created, Mapping):
            times = {
                tag: created.get(tag, _EPOCH + timedelta(seconds=i if distinct is True else 0))
                for i, tag in enumerate(tags)
            }
        elif distinct is True:
            base = created or _EPOCH
            times = {tag: base + timedelta(seconds=i) for i, tag in enumerate(tags)}
        else:
            times = dict.fromkeys(tags, created or _EPOCH)
        pushed_configs: set[str] = set()
        digests = {}
        for tag in tags:
            config = _config(times[tag])
            if config.digest not in pushed_configs:
                if distinct is True:  # new content by construction: skip the HEAD round trip
                    self.upload_blob(repository, config)
                else:
                    self.ensure_blob(repository, config)
                pushed_configs.add(config.digest)
            digests[tag] = self.put_manifest(repository, tag, _manifest(config))
        return digests

    def push_index(
        self,
        repository: str,
        tag: str,
        platforms: Mapping[str, datetime],
        *,
        attestations: bool,
        index_type: IndexType,
    ) -> tuple[str, dict[str, str]]:
        self.ensure_blob(repository, _LAYER)
        oci = index_type == "oci"
        entries: list[dict[str, object]] = []
        extra: list[dict[str, object]] = []
        digests: dict[str, str] = {}
        for platform, created in platforms.items():
            config = _config(created, platform)
            self.ensure_blob(repository, config)
            body, media_type = (
                (_oci_manifest(config, None), MANIFEST_OCI)
                if oci
                else (_manifest(config), MANIFEST_V2)
            )
            digest = self.put_manifest(repository, digest_of(body), body, media_type=media_type)
            digests[platform] = digest
            entries.append(
                {
                    "mediaType": media_type,
                    "size": len(body),
                    "digest": digest,
                    "platform": _platform_json(platform),
                }
            )
            if attestations:
                att_config, att_layer, att_body = _attestation(digest, platform)
                self.ensure_blob(repository, att_config)
                self.ensure_blob(repository, att_layer)
                att_digest = self.put_manifest(
                    repository, digest_of(att_body), att_body, media_type=MANIFEST_OCI
                )
                extra.append(
                    {
                        "mediaType": MANIFEST_OCI,
                        "size": len(att_body),
                        "digest": att_digest,
                        "annotations": {
                            "vnd.docker.reference.digest": digest,
                            "vnd.docker.reference.type": "attestation-manifest",
                        },
                        "platform": {"architecture": "unknown", "os": "unknown"},
                    }
                )
        # buildx order: every image first, then the attestations.
        index_media_type = INDEX_OCI if oci else MANIFEST_LIST
        index = {"schemaVersion": 2, "mediaType": index_media_type, "manifests": entries + extra}
        body = json.dumps(index, indent=2).encode()
        return self.put_manifest(repository, tag, body, media_type=index_media_type), digests


def digest_of(data: bytes) -> str:
    """The sha256 digest of some content, as the registry names it."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _check(resp: httpx.Response, status: int, step: str) -> None:
    if resp.status_code != status:
        raise PushError(f"{step}: HTTP {resp.status_code} {resp.text[:300]}")


def _client(auth: Auth, verify: Verify, workers: int) -> httpx.Client:
    if isinstance(verify, str):
        verify = ssl.create_default_context(cafile=verify)
    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
    return httpx.Client(auth=auth, verify=verify, limits=limits, timeout=30.0)


def push_image(
    url: str,
    repository: str,
    tags: Iterable[str],
    *,
    auth: Auth = None,
    verify: Verify = True,
    created: datetime | Mapping[str, datetime] | None = None,
    distinct: Distinct = False,
) -> dict[str, str]:
    """Push ``repository:tag`` for every tag; return ``{tag: manifest digest}``.

    ``created`` sets the image creation time (one for all tags, or one per tag: then
    tags with different times get different digests; tags missing from the mapping get
    2024-01-01, or with ``distinct=True`` their own second after it);
    ``distinct=True`` gives every tag its own creation time (one second apart, in
    order), hence its own digest (three
    requests per tag); ``distinct="annotation"`` gives every tag its own OCI manifest
    (unique annotation, shared config: one request per tag, for benchmarks that need
    distinct digests but not distinct creation times). Otherwise all tags share one
    manifest and one digest. ``verify`` may be a CA file path.
    """
    with _client(auth, verify, 2) as client:
        return _Pusher(client, url).push(repository, list(tags), created=created, distinct=distinct)


def push_index(
    url: str,
    repository: str,
    tag: str,
    platforms: Mapping[str, datetime],
    *,
    auth: Auth = None,
    verify: Verify = True,
    attestations: bool = True,
    index_type: IndexType = "oci",
) -> tuple[str, dict[str, str]]:
    """Push ``repository:tag`` as a multi-platform image; return (index digest, per platform).

    ``platforms`` maps ``os/arch[/variant]`` to that image's creation time; each platform
    gets its own config (with its os, architecture, variant and time) and manifest,
    pushed by digest, then the index under ``tag`` lists them in the mapping's order.
    ``attestations`` adds, after the images, one attestation manifest per platform as
    ``docker buildx`` does (platform ``unknown/unknown``, annotation
    ``vnd.docker.reference.type: attestation-manifest``, a config without ``created``).
    ``index_type`` is ``"oci"`` (OCI index over OCI manifests) or ``"docker"`` (Docker
    manifest list over schema 2 manifests). The second value is ``{platform: digest}``
    of the image manifests, keyed as given.
    """
    with _client(auth, verify, 2) as client:
        return _Pusher(client, url).push_index(
            repository, tag, platforms, attestations=attestations, index_type=index_type
        )


def push_many(
    url: str,
    images: Mapping[str, Sequence[str]],
    *,
    workers: int = 8,
    auth: Auth = None,
    verify: Verify = True,
    distinct: Distinct = False,
) -> dict[str, dict[str, str]]:
    """Push many repositories in parallel: ``{repo: [tags]}`` -> ``{repo: {tag: digest}}``."""
    with _client(auth, verify, workers) as client, ThreadPoolExecutor(workers) as pool:
        pusher = _Pusher(client, url)
        futures = {
            repo: pool.submit(pusher.push, repo, list(tags), created=None, distinct=distinct)
            for repo, tags in images.items()
        }
        return {repo: future.result() for repo, future in futures.items()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.push", description="Push tiny test images to a registry."
    )
    parser.add_argument("url", help="registry base URL, e.g. http://127.0.0.1:5001")
    parser.add_argument("repository", help="repository path, e.g. team/app")
    parser.add_argument("tags", nargs="+", help="tags to push")
    parser.add_argument(
        "--distinct", action="store_true", help="one digest (and creation time) per tag"
    )
    parser.add_argument(
        "--platform",
        action="append",
        default=[],
        help="push each tag as a multi-platform index with this platform (repeatable)",
    )
    parser.add_argument("--username")
    parser.add_argument("--password-env", help="environment variable holding the password")
    parser.add_argument("--ca-file", help="CA certificate for an https registry")
    args = parser.parse_args(argv)
    auth: Auth = None
    if args.username:
        auth = (args.username, os.environ.get(args.password_env or "", ""))
    started = time.perf_counter()
    if args.platform:
        verify = args.ca_file or True
        for i, tag in enumerate(args.tags):
            when = _EPOCH + timedelta(seconds=i)
            times = dict.fromkeys(args.platform, when)
            index, per_platform = push_index(
                args.url, args.repository, tag, times, auth=auth, verify=verify
            )
            print(f"{args.repository}:{tag} {index}")
            for platform, digest in per_platform.items():
                print(f"  {platform} {digest}")
        elapsed = time.perf_counter() - started
        print(f"pushed {len(args.tags)} indexes in {elapsed:.2f}s", file=sys.stderr)
        return 0
    digests = push_image(
        args.url,
        args.repository,
        args.tags,
        auth=auth,
        verify=args.ca_file or True,
        distinct=args.distinct,
    )
    for tag, digest in digests.items():
        print(f"{args.repository}:{tag} {digest}")
    elapsed = time.perf_counter() - started
    print(f"pushed {len(digests)} tags in {elapsed:.2f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
