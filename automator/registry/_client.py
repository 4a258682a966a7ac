"""The Registry HTTP API v2 client: tags, digests and creation times, with auth and retries.

This module is the public API and the tag/manifest logic; the two jobs under it live
beside it: ``_transport`` (per-registry httpx clients, TLS, retries, redirects,
throttling) and ``_tokens`` (credentials, 401 challenges, bearer tokens). Design notes
for the three (the *why*):

* One ``httpx.Client`` per distinct TLS setting, shared by all threads: the engine lists
  tags for many repositories at once from a thread pool, and pooled keep-alive
  connections are what make that fast. Shared mutable state (tokens, learned auth
  schemes, cached Docker credentials in the authenticator; the learned page size here)
  sits behind locks that are never held during I/O.
* Authentication is learned, not configured: the first 401 tells us whether a registry
  wants Basic or a Bearer token (and where the token server is). Afterwards credentials
  or tokens are sent up front, so a scan of N repositories costs N token fetches at most,
  not N extra 401 round trips.
* Errors are translated here, at the boundary, into the product's tree: refused
  credentials -> :class:`RegistryAuthError`, 404 -> :class:`RegistryNotFound`,
  network/429/5xx/garbage -> :class:`RegistryUnavailable`. Transient failures are retried
  a few times with jittered exponential backoff before they are reported.
* Creation times and platform choices are facts about content-addressed (immutable)
  manifests, so they are cached by digest in bounded LRU maps, and every fetched
  manifest and config is checked against its digest before it is cached. A tag whose
  HEAD digest is known costs one HEAD; Docker Hub counts manifest GETs (not HEADs) as
  pulls, so GETs happen only on a cache miss, and concurrent callers wanting the same
  digest share one fetch.
* Secrets never reach a log line or an exception message: messages name the registry,
  repository and configuration key, never a header value.
* Politeness is per registry (:class:`RegState`): a token bucket (``rate_limit``,
  ``burst``) that a 429 halves and pauses, a semaphore (``max_concurrency``) held only
  while a request is in flight, its own connection pool, and a page size that shrinks
  when the registry refuses ours. One slow or throttling registry therefore never takes
  the connections or the time of another.
* Tag pages are revalidated with ``If-None-Match``: an unchanged repository costs one
  request answered by a bodiless 304.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType, TracebackType
from typing import Any, NoReturn

import httpx
import structlog

from automator.config import Settings
from automator.errors import (
    RegistryAuthError,
    RegistryNotFound,
    RegistryUnavailable,
)
from automator.images import ImageRef
from automator.registry._limits import RegistryStats
from automator.registry._manifests import (
    INDEX_MEDIA_TYPES,
    Entry,
    LRUCache,
    Platform,
    SingleFlight,
    index_entries,
    is_index,
    parse_created,
    select_entry,
)
from automator.registry._metrics import RegistryMetrics
from automator.registry._paging import TagPage, TagPageCache, next_link_target
from automator.registry._tokens import Authenticator
from automator.registry._transport import Registry, RegState, Transport, json_body, origin

__all__ = ["CACHE_SIZE", "MANIFEST_MEDIA_TYPES", "RegistryClient"]

_log = structlog.get_logger(__name__)

MANIFEST_MEDIA_TYPES: tuple[str, ...] = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
)
"""Sent in ``Accept`` on every manifest request. Without them Distribution 2.8 converts
the manifest to schema 1 (a different digest) and answers 404 for OCI content."""

_ACCEPT = ", ".join(MANIFEST_MEDIA_TYPES)

_MIN_PAGE_SIZE = 50
"""A refused page size is halved down to this, never below."""
_PAGINATION_CODES = frozenset({"PAGINATION_NUMBER_INVALID", "PAGINATION_NUMBER_TOO_LARGE"})
_MAX_PAGES = 10_000
"""A tag list longer than this many pages is a broken registry (or needs ``max_tags``)."""
_MAX_STALE_PAGES = 3
"""Consecutive pages without a single new tag: the registry is paging in a circle."""
_TAG_CACHE_TAGS = 1_000_000
"""Bound of the ETag page cache, in tags held (roughly 50-100 MB at most)."""
_DEFAULT_TIMEOUT = 30.0
_DIGEST_RE = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{32,}")
_VERIFIABLE = frozenset({"sha256", "sha512"})
_MAX_INDEX_DEPTH = 2
"""An index may point at an index (rare); deeper nesting is refused, not followed."""
_MAX_CONFIG_SIZE = 8 * 1024 * 1024
_MALFORMED_INDEX = "has a malformed index (its manifests are not descriptors with digests)"
CACHE_SIZE = 100_000
"""Default bound of each digest-keyed cache (platform choices, image configs, indexes)."""


@dataclass(frozen=True)
class _Ctx:
    """One public call's target: where, which repository and tag, how to name it."""

    reg: Registry
    repo: str
    tag: str
    what: str


@dataclass(frozen=True)
class _ImageInfo:
    """What one image manifest's config says; ``created`` is a reason when unusable."""

    created: datetime | str
    platform: Platform | None


@dataclass(frozen=True)
class _Missing:
    """A cached "no such platform" answer (immutable like the digest it is keyed by)."""

    reason: str


class RegistryClient:
    """Read-only client for the Registry HTTP API v2 (Distribution, Docker Hub, GHCR, ...).

    Safe to share between threads. ``transport`` replaces the network (tests pass an
    ``httpx.MockTransport``); ``sleep`` and ``clock`` replace time so that backoff,
    rate limits and token expiry can be tested without waiting. ``timeout`` applies to
    registries whose entry sets none; ``metrics`` (optional) receives the
    ``automator_registry_*`` counters, and :meth:`stats` gives the same figures as a
    snapshot.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        cache_size: int = CACHE_SIZE,
        metrics: RegistryMetrics | None = None,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._http = Transport(
            settings,
            transport=transport,
            timeout=timeout,
            retries=retries,
            sleep=sleep,
            clock=clock,
            metrics=metrics,
        )
        self._auth = Authenticator(self._http, clock)
        self._lock = threading.Lock()  # guards the learned page sizes
        self._tag_pages = TagPageCache(min(_TAG_CACHE_TAGS, cache_size * 10))
        # Immutable facts keyed by manifest digest: (top digest, platform) -> image
        # manifest digest (or why there is none), image manifest digest -> config facts,
        # index digest -> its entries (so another platform of it costs no GET).
        self._selected: LRUCache[tuple[str, Platform | None], str | _Missing] = LRUCache(cache_size)
        self._images: LRUCache[str, _ImageInfo] = LRUCache(cache_size)
        self._indexes: LRUCache[str, tuple[Entry, ...] | _Missing] = LRUCache(cache_size)
        self._flight = SingleFlight()
        for i, conf in enumerate(settings.registries):
            if conf.insecure:
                _log.warning(
                    "registry_insecure",
                    registry=conf.host,
                    key=f"registries[{i}].insecure",
                    detail="TLS certificates of this registry are not verified",
                )

    # -- public API ---------------------------------------------------------------------

    def list_tags(self, image: ImageRef) -> list[str]:
        """Every tag of the image's repository, following ``Link`` pages to the end.

        Order is the registry's; a tag a registry repeats on a later page (its list
        shifted between two requests) is kept once, and one it dropped meanwhile is
        simply absent. With ``max_tags`` the list is cut after that many tags, no further
        page is fetched, and ``registry_tags_truncated`` is logged. A page whose ETag is
        unchanged costs a 304 and reuses the tags we already have. A registry refusing
        our page size (413, or 400 ``PAGINATION_NUMBER_INVALID``) is asked again with
        half of it (not below 50), which is then remembered for that registry.
        """
        reg = self._http.registry(image)
        state = self._http.state(reg)
        repo = image.repository
        cap = reg.settings.max_tags if reg.settings is not None else None
        url = httpx.URL(f"{reg.base_url}/v2/{repo}/tags/list", params={"n": state.page_size})
        tags: dict[str, None] = {}
        visited: set[str] = set()
        pages = stale = 0
        truncated = False
        while True:
            url, page, next_url = self._tags_page(reg, state, image, url)
            visited.add(str(url))
            pages += 1
            before = len(tags)
            for tag in page:
                tags.setdefault(tag, None)
            if cap is not None and (len(tags) > cap or (len(tags) == cap and next_url is not None)):
                truncated = True
                break
            if next_url is None:
                break
            stale = stale + 1 if len(tags) == before else 0
            self._check_next_page(reg, repo, next_url, visited, pages, stale)
            url = next_url
        seen = len(tags)
        state.stats.add(tags=seen)
        if self._metrics is not None:
            self._metrics.tags_seen(reg.key, seen)
        result = list(tags)
        if truncated and cap is not None:
            _log.warning(
                "registry_tags_truncated",
                registry=reg.key,
                repository=repo,
                cap=cap,
                seen=seen,
                more_pages=next_url is not None,
                key=reg.conf_key("max_tags"),
            )
            result = result[:cap]
        _log.debug(
            "registry_tags_listed", registry=reg.key, repository=repo, tags=seen, pages=pages
        )
        return result

    def stats(self) -> Mapping[str, RegistryStats]:
        """A read-only snapshot of what was done per registry (canonical host -> counters).

        Meant for benchmarks, tests and diagnostics; the daemon exports the same figures
        as Prometheus counters through ``metrics``.
        """
        return MappingProxyType(self._http.stats())

    def digest(self, image: ImageRef, tag: str, *, platform: str | None = None) -> str:
        """The manifest digest behind ``tag``.

        Without ``platform``: the top-level digest (what ``docker pull image:tag`` resolves;
        for a multi-platform tag, the index's). Uses HEAD and ``Docker-Content-Digest``,
        falling back to hashing the manifest body for registries that omit the header.

        With ``platform`` (``os/arch[/variant]``): for an index, the digest of that
        platform's manifest; for a single-platform manifest, its own digest if its config
        names that platform. Otherwise :class:`RegistryNotFound` naming the platforms the
        tag has. A malformed ``platform`` is a :class:`PolicyError`. Answers are cached by
        the top-level digest, so a repeated call costs one HEAD.
        """
        wanted = Platform.parse(platform) if platform is not None else None
        ctx = self._context(image, tag)
        top, manifest = self._head(ctx)
        if wanted is None:
            return top
        return self._select(ctx, top, wanted, manifest)

    def created(self, image: ImageRef, tag: str, *, platform: str | None = None) -> datetime:
        """When the image behind ``tag`` was built: its config's ``created``, in UTC.

        For a multi-platform tag, the image of ``platform`` (default: ``linux/amd64``, or
        the first entry that is not an attestation manifest when the index has no
        ``linux/amd64``). A config without a usable ``created`` is a
        :class:`RegistryNotFound` that says so. Creation times are cached by manifest
        digest (they never change), so a repeated call costs one HEAD; on a miss the
        manifest(s) and the config blob are fetched once, even by concurrent callers.
        """
        wanted = Platform.parse(platform) if platform is not None else None
        ctx = self._context(image, tag)
        top, manifest = self._head(ctx)
        known = self._selected.get((top, wanted)) is not None
        target = self._select(ctx, top, wanted, manifest)
        info = self._images.get(target)
        if info is None:
            info = self._image_info(ctx, target, manifest if target == top else None)
        elif known:
            _log.debug(
                "registry_created_cache_hit",
                registry=ctx.reg.key,
                repository=ctx.repo,
                tag=tag,
                digest=target,
            )
        if isinstance(info.created, str):
            raise RegistryNotFound(
                f"registry {ctx.reg.key}: {ctx.what} ({target}) {info.created}; "
                "newest-build needs it: rebuild the image with a creation time or use "
                "another policy"
            )
        return info.created

    def close(self) -> None:
        """Close every pooled connection; the client cannot be used afterwards."""
        self._http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- tag pages ----------------------------------------------------------------------

    def _tags_page(
        self, reg: Registry, state: RegState, image: ImageRef, url: httpx.URL
    ) -> tuple[httpx.URL, list[str], httpx.URL | None]:
        """One page: ``(the URL finally used, its tags, the next page's URL or None)``."""
        repo = image.repository
        what = f"repository {image.name}"
        while True:
            cached = self._tag_pages.get(str(url))
            extra = {"If-None-Match": cached.etag} if cached is not None else None
            resp = self._request(
                reg, repo, "GET", url, what=what, extra=extra, passthrough=(304, 400, 413)
            )
            if resp.status_code == 304:
                if cached is None:
                    raise RegistryUnavailable(
                        f"registry {reg.key}: the tag list of {repo} was answered 304 Not "
                        "Modified without being asked; a proxy in front of it is broken"
                    )
                _log.debug("registry_tags_not_modified", registry=reg.key, repository=repo)
                next_url = httpx.URL(cached.next_url) if cached.next_url else None
                return url, list(cached.tags), next_url
            if resp.status_code in (400, 413):
                smaller = self._smaller_page(reg, state, repo, url, resp)
                if smaller is None:
                    self._fail(reg, repo, resp, what)
                url = smaller
                continue
            tags = self._parse_tags(reg, image, resp)
            next_url = _next_link(resp)
            etag = resp.headers.get("ETag")
            if etag:
                page = TagPage(etag, tuple(tags), str(next_url) if next_url else None)
                self._tag_pages.put(str(url), page)
            return url, tags, next_url

    def _smaller_page(
        self, reg: Registry, state: RegState, repo: str, url: httpx.URL, resp: httpx.Response
    ) -> httpx.URL | None:
        """The URL asking for half as many tags, when ``resp`` refused our page size."""
        if resp.status_code == 400 and _error_code(resp).strip() not in _PAGINATION_CODES:
            return None
        current = url.params.get("n", "")
        if not current.isdigit() or int(current) <= _MIN_PAGE_SIZE:
            return None
        smaller = max(_MIN_PAGE_SIZE, int(current) // 2)
        with self._lock:
            state.page_size = min(state.page_size, smaller)
        _log.info(
            "registry_page_size_reduced",
            registry=reg.key,
            repository=repo,
            status=resp.status_code,
            page_size=smaller,
        )
        return url.copy_set_param("n", smaller)

    @staticmethod
    def _check_next_page(
        reg: Registry, repo: str, url: httpx.URL, visited: set[str], pages: int, stale: int
    ) -> None:
        """Refuse a next page that would leak credentials or never end."""
        if origin(url) != reg.origin:
            raise RegistryUnavailable(
                f"registry {reg.key}: the tag list of {repo} links to another host "
                f"({url.host}); refusing to follow it with our credentials"
            )
        if str(url) in visited or stale >= _MAX_STALE_PAGES:
            raise RegistryUnavailable(
                f"registry {reg.key}: the tag list of {repo} pages in a loop; "
                "the registry's Link header is broken"
            )
        if pages >= _MAX_PAGES:
            hint = (
                f"set {reg.conf_key('max_tags')}"
                if reg.index is not None
                else "add a registries entry with max_tags"
            )
            raise RegistryUnavailable(
                f"registry {reg.key}: the tag list of {repo} has more than {_MAX_PAGES} "
                f"pages; {hint} to read only the first tags"
            )

    # -- manifests, platforms and configs -----------------------------------------------

    def _context(self, image: ImageRef, tag: str) -> _Ctx:
        return _Ctx(self._http.registry(image), image.repository, tag, f"image {image.name}:{tag}")

    def _head(self, ctx: _Ctx) -> tuple[str, bytes | None]:
        """The top-level digest of ``ctx.tag`` by HEAD (and the body, if a GET was needed).

        HEAD is not a "pull" on Docker Hub, GET is: only registries that send no
        ``Docker-Content-Digest`` on HEAD get a GET here (and its body is reused).
        """
        reg = ctx.reg
        url = httpx.URL(f"{reg.base_url}/v2/{ctx.repo}/manifests/{ctx.tag}")
        resp = self._request(reg, ctx.repo, "HEAD", url, what=ctx.what, accept=_ACCEPT)
        value = resp.headers.get("Docker-Content-Digest")
        body: bytes | None = None
        if not value:
            resp = self._request(reg, ctx.repo, "GET", url, what=ctx.what, accept=_ACCEPT)
            body = resp.content
            value = resp.headers.get("Docker-Content-Digest") or (
                "sha256:" + hashlib.sha256(body).hexdigest()
            )
        if not _DIGEST_RE.fullmatch(value):
            raise RegistryUnavailable(
                f"registry {reg.key}: {ctx.what} has a malformed digest {value[:80]!r}"
            )
        return str(value), body

    def _select(self, ctx: _Ctx, top: str, wanted: Platform | None, body: bytes | None) -> str:
        """The image manifest digest for ``wanted`` under ``top``; raises if there is none."""
        result = self._selection(ctx, top, wanted, body, depth=0)
        if isinstance(result, _Missing):
            raise RegistryNotFound(
                f"registry {ctx.reg.key}: {ctx.what} ({top}) {result.reason}; set the "
                "platform annotation to a platform the image has"
            )
        return result

    def _selection(
        self, ctx: _Ctx, top: str, wanted: Platform | None, body: bytes | None, *, depth: int
    ) -> str | _Missing:
        key = (top, wanted)
        cached = self._selected.get(key)
        if cached is not None:
            return cached

        def compute() -> str | _Missing:
            again = self._selected.get(key)
            if again is not None:
                return again
            result = self._select_uncached(ctx, top, wanted, body, depth=depth)
            self._selected.put(key, result)
            return result

        return self._flight.do(("select", key), compute)

    def _select_uncached(
        self, ctx: _Ctx, top: str, wanted: Platform | None, body: bytes | None, *, depth: int
    ) -> str | _Missing:
        info = self._images.get(top)
        if info is not None:  # a single-platform image we already know
            return _match_single(top, info, wanted)
        entries = self._indexes.get(top)
        if entries is None:
            content = body if body is not None else self._get_manifest(ctx, top)
            manifest = _json_object(content)
            if manifest is None:
                return _Missing("has a manifest that is not a JSON object")
            if not is_index(manifest):
                return _match_single(top, self._image_info(ctx, top, content), wanted)
            parsed = index_entries(manifest)
            entries = parsed if parsed is not None else _Missing(_MALFORMED_INDEX)
            self._indexes.put(top, entries)
        if isinstance(entries, _Missing):
            return entries
        chosen = select_entry(entries, wanted)
        if isinstance(chosen, str):
            return _Missing(chosen)
        _log.debug(
            "registry_platform_selected",
            registry=ctx.reg.key,
            repository=ctx.repo,
            index=top,
            platform=str(chosen.platform) if chosen.platform else None,
            digest=chosen.digest,
        )
        if not _DIGEST_RE.fullmatch(chosen.digest):
            return _Missing(f"has an index entry with a malformed digest {chosen.digest[:80]!r}")
        if chosen.media_type in INDEX_MEDIA_TYPES:
            if depth >= _MAX_INDEX_DEPTH:
                return _Missing("has indexes nested too deeply")
            return self._selection(ctx, chosen.digest, wanted, None, depth=depth + 1)
        return chosen.digest

    def _image_info(self, ctx: _Ctx, digest: str, body: bytes | None) -> _ImageInfo:
        """Creation time and platform of one image manifest (cached; fetched once)."""
        cached = self._images.get(digest)
        if cached is not None:
            return cached

        def compute() -> _ImageInfo:
            again = self._images.get(digest)
            if again is not None:
                return again
            info = self._image_info_uncached(ctx, digest, body)
            self._images.put(digest, info)
            return info

        return self._flight.do(("image", digest), compute)

    def _image_info_uncached(self, ctx: _Ctx, digest: str, body: bytes | None) -> _ImageInfo:
        content = body if body is not None else self._get_manifest(ctx, digest)
        manifest = _json_object(content)
        if manifest is None:
            return _ImageInfo("has a manifest that is not a JSON object", None)
        if is_index(manifest):
            return _ImageInfo("is an index, not an image manifest", None)
        if manifest.get("schemaVersion") == 1:
            return _schema1_info(manifest)
        descriptor = manifest.get("config")
        config_digest = descriptor.get("digest") if isinstance(descriptor, dict) else None
        if not isinstance(config_digest, str) or not _DIGEST_RE.fullmatch(config_digest):
            return _ImageInfo("has no config blob in its manifest", None)
        size = descriptor.get("size") if isinstance(descriptor, dict) else None
        if isinstance(size, int) and size > _MAX_CONFIG_SIZE:
            return _ImageInfo(f"has a {size}-byte config, too large for an image config", None)
        config = _json_object(self._get_blob(ctx, config_digest))
        if config is None:
            return _ImageInfo("has a config blob that is not a JSON object", None)
        return _ImageInfo(parse_created(config.get("created")), Platform.from_json(config))

    def _get_manifest(self, ctx: _Ctx, digest: str) -> bytes:
        url = httpx.URL(f"{ctx.reg.base_url}/v2/{ctx.repo}/manifests/{digest}")
        resp = self._request(ctx.reg, ctx.repo, "GET", url, what=ctx.what, accept=_ACCEPT)
        _verify(ctx, digest, resp.content, "manifest")
        _log.debug(
            "registry_manifest_fetched",
            registry=ctx.reg.key,
            repository=ctx.repo,
            digest=digest,
            media_type=resp.headers.get("Content-Type"),
        )
        return resp.content

    def _get_blob(self, ctx: _Ctx, digest: str) -> bytes:
        """A blob, following redirects to blob storage (credentials stay with the registry)."""
        url = httpx.URL(f"{ctx.reg.base_url}/v2/{ctx.repo}/blobs/{digest}")
        resp = self._request(ctx.reg, ctx.repo, "GET", url, what=f"config blob of {ctx.what}")
        _verify(ctx, digest, resp.content, "config blob")
        _log.debug(
            "registry_config_fetched",
            registry=ctx.reg.key,
            repository=ctx.repo,
            digest=digest,
            size=len(resp.content),
        )
        return resp.content

    # -- registry resolution ------------------------------------------------------------

    def _request(
        self,
        reg: Registry,
        repo: str,
        method: str,
        url: httpx.URL,
        *,
        what: str,
        accept: str | None = None,
        extra: Mapping[str, str] | None = None,
        passthrough: tuple[int, ...] = (),
    ) -> httpx.Response:
        """One API call with authentication, redirects and retries; errors translated.

        Statuses in ``passthrough`` are returned for the caller to interpret.
        """
        resp = self._auth.authenticated(reg, repo, method, url, accept=accept, extra=extra)
        if resp.status_code in passthrough:
            return resp
        return self._check(reg, repo, resp, what)

    def _check(self, reg: Registry, repo: str, resp: httpx.Response, what: str) -> httpx.Response:
        if not resp.is_success:
            self._fail(reg, repo, resp, what)
        return resp

    def _fail(self, reg: Registry, repo: str, resp: httpx.Response, what: str) -> NoReturn:
        """Translate an unsuccessful answer into the product's exception tree."""
        if resp.status_code in (401, 403):
            has_creds = self._auth.credentials(reg) is not None
            verb = "were refused" if has_creds else "are required"
            raise RegistryAuthError(
                f"registry {reg.key}: credentials for {repo} {verb} "
                f"(HTTP {resp.status_code}); {reg.config_hint}"
            )
        if resp.status_code == 404:
            raise RegistryNotFound(
                f"registry {reg.key}: {what} not found (HTTP 404); check the image name "
                "and tag (some registries also answer 404 for private repositories "
                "without credentials)"
            )
        raise RegistryNotFound(
            f"registry {reg.key}: request for {what} rejected with HTTP "
            f"{resp.status_code}{_error_code(resp)}; check the image name"
        )

    def _parse_tags(self, reg: Registry, image: ImageRef, resp: httpx.Response) -> list[str]:
        data = json_body(reg, resp, what=f"tag list of {image.repository}")
        tags = data.get("tags", ()) if isinstance(data, dict) else ()
        if tags is None:  # an empty repository: Distribution sends "tags": null
            return []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise RegistryUnavailable(
                f"registry {reg.key}: the tag list of {image.repository} is not "
                '{"tags": [strings]}; the registry (or a proxy in front of it) sent garbage'
            )
        return tags


def _match_single(digest: str, info: _ImageInfo, wanted: Platform | None) -> str | _Missing:
    if wanted is None or info.platform == wanted:
        return digest
    has = str(info.platform) if info.platform is not None else "an unspecified platform"
    return _Missing(f"has no {wanted} image (it is a single-platform image for {has})")


def _schema1_info(manifest: dict[str, Any]) -> _ImageInfo:
    """Docker schema 1 keeps the config in ``history[0].v1Compatibility`` (a JSON string)."""
    history = manifest.get("history")
    first = history[0] if isinstance(history, list) and history else None
    raw = first.get("v1Compatibility") if isinstance(first, dict) else None
    config = _json_object(raw.encode()) if isinstance(raw, str) else None
    if config is None:
        return _ImageInfo("has a schema 1 manifest without a readable v1Compatibility", None)
    return _ImageInfo(parse_created(config.get("created")), Platform.from_json(config))


def _json_object(content: bytes) -> dict[str, Any] | None:
    """Content-verified JSON: garbage here is permanent, so it becomes a reason, not a retry."""
    try:
        data = json.loads(content)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _verify(ctx: _Ctx, digest: str, content: bytes, kind: str) -> None:
    """Content addressing: what we cache by digest must be what the digest names."""
    algorithm, _, expected = digest.partition(":")
    if algorithm not in _VERIFIABLE:
        return
    actual = hashlib.new(algorithm, content).hexdigest()
    if actual != expected.lower():
        raise RegistryUnavailable(
            f"registry {ctx.reg.key}: the {kind} {digest} of {ctx.repo} does not match its "
            "digest; the registry or a proxy in front of it sent other content"
        )


def _error_code(resp: httpx.Response) -> str:
    """The registry's own error code (``NAME_INVALID``...), to make messages actionable."""
    try:
        errors = json.loads(resp.content).get("errors") or []
        code = errors[0].get("code")
    except (ValueError, AttributeError, IndexError, TypeError):
        return ""
    return f" {code}" if isinstance(code, str) and code.isupper() else ""


def _next_link(resp: httpx.Response) -> httpx.URL | None:
    """The ``rel="next"`` target of the Link header(s), resolved against the request URL."""
    target = next_link_target(resp.headers.get_list("link"))
    if target is None:
        return None
    try:
        return resp.request.url.join(target)
    except httpx.InvalidURL:
        return None
