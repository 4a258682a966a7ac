"""The Registry HTTP API v2 client: tags, digests and creation times, with auth and retries.

Design notes (the *why*):

* One ``httpx.Client`` per distinct TLS setting, shared by all threads: the engine lists
  tags for many repositories at once from a thread pool, and pooled keep-alive
  connections are what make that fast. Shared mutable state (tokens, learned auth
  schemes, cached Docker credentials) sits behind one lock, never held during I/O.
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
* Politeness is per registry (:class:`_RegState`): a token bucket (``rate_limit``,
  ``burst``) that a 429 halves and pauses, a semaphore (``max_concurrency``) held only
  while a request is in flight, its own connection pool, and a page size that shrinks
  when the registry refuses ours. One slow or throttling registry therefore never takes
  the connections or the time of another.
* Tag pages are revalidated with ``If-None-Match``: an unchanged repository costs one
  request answered by a bodiless 304.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import random
import re
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType, TracebackType
from typing import Any, NoReturn

import httpx
import structlog

from automator.config import RegistrySettings, Settings, read_secret
from automator.errors import (
    ConfigError,
    RegistryAuthError,
    RegistryNotFound,
    RegistryUnavailable,
)
from automator.images import DOCKER_HUB, ImageRef
from automator.registry._auth import (
    Challenge,
    Credentials,
    docker_config_path,
    forbidden_realm,
    load_docker_credentials,
    parse_challenges,
    run_credential_command,
)
from automator.registry._limits import RateLimiter, RegistryStats, StatsCounter
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

DOCKER_HUB_API = "https://registry-1.docker.io"
"""Where Docker Hub's Registry API lives (``docker.io`` itself only redirects)."""

_MIN_PAGE_SIZE = 50
"""A refused page size is halved down to this, never below."""
_PAGINATION_CODES = frozenset({"PAGINATION_NUMBER_INVALID", "PAGINATION_NUMBER_TOO_LARGE"})
_MAX_PAGES = 10_000
"""A tag list longer than this many pages is a broken registry (or needs ``max_tags``)."""
_MAX_STALE_PAGES = 3
"""Consecutive pages without a single new tag: the registry is paging in a circle."""
_TAG_CACHE_TAGS = 1_000_000
"""Bound of the ETag page cache, in tags held (roughly 50-100 MB at most)."""
_COMMAND_TIMEOUT = 60.0
"""How long a ``credential_command`` may run (cloud CLIs can be slow to start)."""
_COMMAND_MIN_MARGIN = 60.0
_COMMAND_MIN_REUSE = 5.0
_REALM_CHECK_TTL = 300.0
"""How long a token realm host found safe is not resolved again."""
_DEFAULT_TIMEOUT = 30.0
_MAX_REDIRECTS = 5
_BACKOFF_BASE = 0.25
_BACKOFF_CAP = 4.0
_MAX_RETRY_AFTER = 30.0
"""A Retry-After longer than this is not slept through: we give up at once and hand the
hint to the engine (via ``retry_after``), which can schedule the next attempt itself."""
_DEFAULT_TOKEN_TTL = 60.0
_CREDENTIALS_TTL = 300.0
"""Docker credential helpers are subprocesses; their answer is reused this long."""
_DIGEST_RE = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{32,}")
_VERIFIABLE = frozenset({"sha256", "sha512"})
_MAX_INDEX_DEPTH = 2
"""An index may point at an index (rare); deeper nesting is refused, not followed."""
_MAX_CONFIG_SIZE = 8 * 1024 * 1024
_MALFORMED_INDEX = "has a malformed index (its manifests are not descriptors with digests)"
CACHE_SIZE = 100_000
"""Default bound of each digest-keyed cache (platform choices, image configs, indexes)."""


@dataclass(frozen=True)
class _Registry:
    """Where and how to reach one registry, resolved from the settings once per call."""

    key: str
    """Canonical host (``docker.io``, ``127.0.0.1:5001``): cache key and name in messages."""
    base_url: str
    settings: RegistrySettings | None
    index: int | None

    @property
    def origin(self) -> tuple[str, str, int | None]:
        return _origin(httpx.URL(self.base_url))

    @property
    def plain_http(self) -> bool:
        return self.base_url.startswith("http://")

    def conf_key(self, name: str) -> str:
        """The configuration key ``name`` of this registry's entry, for messages."""
        return f"registries[{self.index}].{name}"

    @property
    def config_hint(self) -> str:
        """Which configuration to fix when credentials are wrong or missing."""
        if self.index is None:
            return (
                f"add a registries entry for host {self.key} with username/password_env "
                "or docker_config"
            )
        if self.settings is not None and self.settings.credential_command is not None:
            return (
                f"check what registries[{self.index}].credential_command prints "
                "(and registries[{self.index}].username)"
            ).replace("{self.index}", str(self.index))
        return f"check registries[{self.index}].username/password_env or docker_config"


class _RegState:
    """Everything mutable the client keeps per registry: its limits, counters and
    learned page size, and the answer of its ``credential_command``."""

    def __init__(
        self, conf: RegistrySettings | None, default_concurrency: int, clock: Callable[[], float]
    ) -> None:
        rate = conf.rate_limit if conf is not None else None
        burst = conf.effective_burst if conf is not None else 1
        self.concurrency = (
            conf.max_concurrency if conf is not None and conf.max_concurrency else None
        ) or default_concurrency
        self.limiter = RateLimiter(rate, burst, clock)
        self.slots = threading.BoundedSemaphore(self.concurrency)
        self.stats = StatsCounter()
        self.page_size = conf.page_size if conf is not None else 1000
        self.command_lock = threading.Lock()
        self.command_credentials: Credentials | None = None
        self.command_refresh_at = 0.0


class _CredentialsRefused(RegistryAuthError):
    """Credentials were sent and refused: worth one refresh of a ``credential_command``."""


@dataclass
class _Token:
    value: str = field(repr=False)
    expires_at: float


@dataclass(frozen=True)
class _Ctx:
    """One public call's target: where, which repository and tag, how to name it."""

    reg: _Registry
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


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    default = {"http": 80, "https": 443}.get(url.scheme)
    return (url.scheme, url.host, url.port or default)


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
        self._transport = transport
        self._timeout = timeout
        self._retries = max(0, retries)
        self._sleep = sleep
        self._clock = clock
        self._metrics = metrics
        self._lock = threading.Lock()
        # Separate, because reading Docker credentials may run a helper subprocess and
        # must not stall token and client lookups of the other threads meanwhile.
        self._credentials_lock = threading.Lock()
        self._clients: dict[str, httpx.Client] = {}
        self._states: dict[str, _RegState] = {}
        self._realms_checked: dict[str, float] = {}
        self._tag_pages = TagPageCache(min(_TAG_CACHE_TAGS, cache_size * 10))
        self._tokens: dict[tuple[str, str], _Token] = {}
        self._challenges: dict[str, Challenge] = {}
        self._credentials_cache: dict[str, tuple[Credentials | None, float]] = {}
        self._closed = False
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
        reg = self._registry(image)
        state = self._state(reg)
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
        with self._lock:
            states = dict(self._states)
        return MappingProxyType({key: st.stats.snapshot() for key, st in states.items()})

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
        with self._lock:
            clients = list(self._clients.values())
            self._clients.clear()
            self._closed = True
        for client in clients:
            client.close()

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
        self, reg: _Registry, state: _RegState, image: ImageRef, url: httpx.URL
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
        self, reg: _Registry, state: _RegState, repo: str, url: httpx.URL, resp: httpx.Response
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
        reg: _Registry, repo: str, url: httpx.URL, visited: set[str], pages: int, stale: int
    ) -> None:
        """Refuse a next page that would leak credentials or never end."""
        if _origin(url) != reg.origin:
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
        return _Ctx(self._registry(image), image.repository, tag, f"image {image.name}:{tag}")

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

    def _registry(self, image: ImageRef) -> _Registry:
        written = image.host or DOCKER_HUB
        conf = self._settings.registry_for(written) or self._settings.registry_for(image.registry)
        index = None
        if conf is not None:
            index = next(i for i, r in enumerate(self._settings.registries) if r is conf)
        if conf is not None and conf.url is not None:
            base = conf.url
        elif image.registry == DOCKER_HUB:
            base = DOCKER_HUB_API
        else:
            base = f"https://{written}"
        return _Registry(key=image.registry, base_url=base, settings=conf, index=index)

    def _state(self, reg: _Registry) -> _RegState:
        with self._lock:
            state = self._states.get(reg.key)
            if state is None:
                state = _RegState(reg.settings, self._settings.max_concurrency, self._clock)
                self._states[reg.key] = state
            return state

    def _client(self, reg: _Registry) -> httpx.Client:
        """The registry's own connection pool, sized to its concurrency cap.

        One pool per registry (not one shared) so that a registry that hangs can hold at
        most its own connections, and so that its TLS settings and timeout apply to it
        alone. Token realms and blob storage it redirects to go through the same pool.
        """
        state = self._state(reg)
        conf = reg.settings
        timeout = conf.timeout if conf is not None and conf.timeout else self._timeout
        with self._lock:
            if self._closed:
                raise RuntimeError("RegistryClient is closed")
            client = self._clients.get(reg.key)
            if client is None:
                verify: ssl.SSLContext | bool = True
                if conf is not None and self._transport is None:
                    verify = self._ssl_context(reg, conf)
                limits = httpx.Limits(
                    max_connections=state.concurrency,
                    max_keepalive_connections=state.concurrency,
                )
                client = httpx.Client(
                    transport=self._transport,
                    verify=verify,
                    timeout=httpx.Timeout(timeout),
                    limits=limits,
                    follow_redirects=False,
                    headers={"User-Agent": "automator"},
                )
                self._clients[reg.key] = client
            return client

    @staticmethod
    def _ssl_context(reg: _Registry, conf: RegistrySettings) -> ssl.SSLContext | bool:
        """The default trust store plus the registry's own CA (an extra CA, not a
        replacement), its client certificate, or no verification when ``insecure``."""
        if conf.ca_file is None and conf.cert_file is None and not conf.insecure:
            return True
        ctx = httpx.create_ssl_context()
        if conf.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        elif conf.ca_file is not None:
            ca_file = conf.ca_file.expanduser()
            try:
                ctx.load_verify_locations(cafile=str(ca_file))
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(
                    f"{reg.conf_key('ca_file')}: cannot load CA certificates from {ca_file} "
                    f"({exc.__class__.__name__}); point it at a PEM file"
                ) from exc
        if conf.cert_file is not None and conf.key_file is not None:
            cert, key = conf.cert_file.expanduser(), conf.key_file.expanduser()
            try:
                ctx.load_cert_chain(certfile=str(cert), keyfile=str(key))
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(
                    f"{reg.conf_key('cert_file')}/key_file: cannot load the client "
                    f"certificate {cert} with key {key} ({exc.__class__.__name__}); point "
                    "them at a PEM certificate and its unencrypted PEM key"
                ) from exc
        return ctx

    # -- credentials --------------------------------------------------------------------

    def _credentials(self, reg: _Registry) -> Credentials | None:
        """Configured username/password first, else the Docker config file, else none.

        Passwords are read at the moment of use (a rotated, file-mounted secret is picked
        up); Docker helper answers are cached briefly because each is a subprocess.
        """
        conf = reg.settings
        if conf is not None and conf.credential_command is not None:
            return self._command_credentials(reg, conf, conf.credential_command)
        if conf is not None and conf.username:
            password = read_secret(conf.password, key=f"registries[{reg.index}].password")
            return Credentials(username=conf.username, password=password or "")
        now = self._clock()
        with self._credentials_lock:
            cached = self._credentials_cache.get(reg.key)
            if cached is not None and cached[1] > now:
                return cached[0]
            path = docker_config_path(conf.docker_config if conf is not None else None)
            creds = None
            if path is not None:
                key = f"registries[{reg.index}].docker_config"
                creds = load_docker_credentials(path, reg.key, key=key)
            self._credentials_cache[reg.key] = (creds, now + _CREDENTIALS_TTL)
        return creds

    def _command_credentials(
        self, reg: _Registry, conf: RegistrySettings, argv: tuple[str, ...]
    ) -> Credentials:
        """The ``credential_command``'s answer, run again shortly before it expires.

        Refreshed when within 10% of its lifetime (at least 60 s, at most half of it) of
        ``expires_at``, after ``credential_ttl`` when it gave no expiry, and once when
        the registry refuses it (:meth:`_refresh_command`). Only this registry's callers
        wait for the command.
        """
        state = self._state(reg)
        with state.command_lock:
            now = self._clock()
            if state.command_credentials is not None and now < state.command_refresh_at:
                return state.command_credentials
            answer = run_credential_command(
                argv,
                key=reg.conf_key("credential_command"),
                registry=reg.key,
                username=conf.username,
                timeout=_COMMAND_TIMEOUT,
            )
            lifetime = answer.expires_in
            if lifetime is None:
                refresh_in = conf.credential_ttl
            else:
                margin = min(max(0.1 * lifetime, _COMMAND_MIN_MARGIN), 0.5 * lifetime)
                # An answer already (nearly) expired, e.g. from a skewed clock, is still
                # reused briefly: running the command for every request helps nobody.
                refresh_in = max(_COMMAND_MIN_REUSE, lifetime - margin)
            state.command_credentials = answer.credentials
            state.command_refresh_at = now + refresh_in
        _log.info(
            "registry_credentials_refreshed",
            registry=reg.key,
            key=reg.conf_key("credential_command"),
            expires_in=round(lifetime, 1) if lifetime is not None else None,
            refresh_in=round(refresh_in, 1),
        )
        return answer.credentials

    def _refresh_command(self, reg: _Registry) -> bool:
        """Forget the command's answer and the tokens it bought; False if there is none."""
        if reg.settings is None or reg.settings.credential_command is None:
            return False
        state = self._state(reg)
        with state.command_lock:
            state.command_credentials = None
        with self._lock:
            for key in [k for k in self._tokens if k[0] == reg.key]:
                del self._tokens[key]
        _log.info(
            "registry_credentials_refused",
            registry=reg.key,
            key=reg.conf_key("credential_command"),
            action="running the command again",
        )
        return True

    def _auth_header(self, reg: _Registry, repo: str, scope: str) -> str | None:
        """What to send up front, from what earlier challenges taught us about ``reg``."""
        now = self._clock()
        with self._lock:
            token = self._tokens.get((reg.key, scope))
            if token is not None and token.expires_at > now:
                return f"Bearer {token.value}"
            challenge = self._challenges.get(reg.key)
        if challenge is None:
            return None
        if challenge.scheme == "bearer":
            return f"Bearer {self._fetch_token(reg, repo, scope, challenge)}"
        creds = self._credentials(reg)
        return creds.basic_header() if creds is not None and not creds.identity_token else None

    def _answer_challenge(
        self, reg: _Registry, repo: str, scope: str, resp: httpx.Response
    ) -> None:
        """Learn from a 401 how ``reg`` wants to be authenticated; raise if we cannot comply."""
        challenges = parse_challenges(resp.headers.get_list("www-authenticate"))
        by_scheme = {c.scheme: c for c in challenges}
        challenge = by_scheme.get("bearer") or by_scheme.get("basic")
        if challenge is None:
            raise RegistryAuthError(
                f"registry {reg.key}: access to {repo} was refused and no supported "
                f"authentication challenge was offered; {reg.config_hint}"
            )
        if challenge.scheme == "basic":
            creds = self._credentials(reg)
            if creds is None or creds.identity_token:
                raise RegistryAuthError(
                    f"registry {reg.key}: {repo} requires credentials and none are "
                    f"configured; {reg.config_hint}"
                )
        with self._lock:
            self._challenges[reg.key] = challenge
            self._tokens.pop((reg.key, scope), None)
        _log.debug(
            "registry_auth_challenge", registry=reg.key, repository=repo, scheme=challenge.scheme
        )

    def _fetch_token(self, reg: _Registry, repo: str, scope: str, challenge: Challenge) -> str:
        """Get (and cache until it expires) a bearer token for ``scope`` from the realm."""
        realm = challenge.params.get("realm", "")
        try:
            realm_url = httpx.URL(realm)
        except httpx.InvalidURL:
            realm_url = httpx.URL("")
        if realm_url.scheme not in ("http", "https") or not realm_url.host:
            raise RegistryAuthError(
                f"registry {reg.key}: its token challenge has no usable realm URL "
                f"({realm[:100]!r}); the registry's auth configuration is broken"
            )
        if realm_url.scheme != "https" and not reg.plain_http:
            raise RegistryAuthError(
                f"registry {reg.key}: refusing to fetch a token from a plain-http realm "
                f"({realm_url.host}) for an https registry; fix the registry's token realm"
            )
        self._check_realm(reg, realm_url)
        scopes = [scope]
        if challenge.params.get("scope") and challenge.params["scope"] != scope:
            scopes.append(challenge.params["scope"])
        params: list[tuple[str, str | int | float | bool | None]] = [("scope", s) for s in scopes]
        if "service" in challenge.params:
            params.insert(0, ("service", challenge.params["service"]))
        creds = self._credentials(reg)
        headers: dict[str, str] = {}
        if creds is not None and creds.identity_token:
            # Docker's OAuth2 flow: the identity token is a refresh token, exchanged by POST.
            form = {
                "grant_type": "refresh_token",
                "refresh_token": creds.identity_token,
                "client_id": "automator",
                "scope": " ".join(scopes),
            }
            if "service" in challenge.params:
                form["service"] = challenge.params["service"]
            resp = self._send(reg, repo, "POST", realm_url, headers, data=form)
        else:
            if creds is not None:
                headers["Authorization"] = creds.basic_header()
            resp = self._send(reg, repo, "GET", realm_url.copy_merge_params(params), headers)
        if resp.status_code in (401, 403):
            raise _CredentialsRefused(
                f"registry {reg.key}: credentials for {repo} were refused by the token "
                f"service at {realm_url.host}; {reg.config_hint}"
            )
        if not resp.is_success:
            raise RegistryAuthError(
                f"registry {reg.key}: the token service at {realm_url.host} answered "
                f"HTTP {resp.status_code} for {repo}; {reg.config_hint}"
            )
        data = _json(reg, resp, what=f"token response for {repo}")
        if not isinstance(data, dict):
            data = {}
        token = data.get("token") or data.get("access_token")
        if not isinstance(token, str) or not token:
            raise RegistryUnavailable(
                f"registry {reg.key}: the token service at {realm_url.host} sent no token "
                f"for {repo}"
            )
        ttl = data.get("expires_in")
        expires_in = float(ttl) if isinstance(ttl, int | float) and ttl > 0 else _DEFAULT_TOKEN_TTL
        # Renew a little early so a token never expires between our check and its use.
        expires_at = self._clock() + expires_in - min(5.0, expires_in / 10)
        with self._lock:
            self._tokens[(reg.key, scope)] = _Token(value=token, expires_at=expires_at)
        _log.debug(
            "registry_token_fetched", registry=reg.key, repository=repo, expires_in=expires_in
        )
        return token

    def _check_realm(self, reg: _Registry, realm: httpx.URL) -> None:
        """Refuse token realms on link-local or cloud metadata addresses (SSRF)."""
        host = realm.host
        now = self._clock()
        with self._lock:
            if self._realms_checked.get(host, -1.0) > now:
                return
        port = realm.port or (443 if realm.scheme == "https" else 80)
        reason = forbidden_realm(host, port)
        if reason is not None:
            raise RegistryAuthError(
                f"registry {reg.key}: refusing its token realm {realm.scheme}://{host}: "
                f"{reason}; a registry must not send credentials there (check registries url "
                "and the registry's auth configuration)"
            )
        with self._lock:
            self._realms_checked[host] = now + _REALM_CHECK_TTL

    # -- HTTP ---------------------------------------------------------------------------

    def _request(
        self,
        reg: _Registry,
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
        resp = self._authenticated(reg, repo, method, url, accept=accept, extra=extra)
        if resp.status_code in passthrough:
            return resp
        return self._check(reg, repo, resp, what)

    def _authenticated(
        self,
        reg: _Registry,
        repo: str,
        method: str,
        url: httpx.URL,
        *,
        accept: str | None,
        extra: Mapping[str, str] | None,
    ) -> httpx.Response:
        """Send with what we know of the registry's auth; learn from one 401; and run a
        ``credential_command`` again once when its credentials are refused."""
        scope = f"repository:{repo}:pull"
        challenged = refreshed = False
        while True:
            headers = {"Accept": accept} if accept else {}
            headers.update(extra or {})
            try:
                auth = self._auth_header(reg, repo, scope)
            except _CredentialsRefused:
                if refreshed or not self._refresh_command(reg):
                    raise
                refreshed = True
                continue
            if auth is not None:
                headers["Authorization"] = auth
            resp = self._follow(reg, repo, method, url, headers)
            if resp.status_code != 401:
                return resp
            if not challenged:
                challenged = True
                self._answer_challenge(reg, repo, scope, resp)
                continue
            if auth is not None and not refreshed and self._refresh_command(reg):
                refreshed = True
                continue
            return resp

    def _check(self, reg: _Registry, repo: str, resp: httpx.Response, what: str) -> httpx.Response:
        if not resp.is_success:
            self._fail(reg, repo, resp, what)
        return resp

    def _fail(self, reg: _Registry, repo: str, resp: httpx.Response, what: str) -> NoReturn:
        """Translate an unsuccessful answer into the product's exception tree."""
        if resp.status_code in (401, 403):
            has_creds = self._credentials(reg) is not None
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

    def _follow(
        self, reg: _Registry, repo: str, method: str, url: httpx.URL, headers: dict[str, str]
    ) -> httpx.Response:
        """Send, following redirects by hand so credentials never cross to another host."""
        for _ in range(_MAX_REDIRECTS + 1):
            resp = self._send(reg, repo, method, url, headers)
            location = resp.headers.get("Location")
            if not resp.is_redirect or not location:
                return resp
            url = resp.url.join(location)
            if _origin(url) != reg.origin:
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        raise RegistryUnavailable(
            f"registry {reg.key}: too many redirects for {repo}; check registries url"
        )

    def _send(
        self,
        reg: _Registry,
        repo: str,
        method: str,
        url: httpx.URL,
        headers: dict[str, str],
        *,
        data: dict[str, str] | None = None,
    ) -> httpx.Response:
        """One HTTP exchange within the registry's limits, retried on network errors,
        429 and 5xx with jittered exponential backoff.

        A 429 pauses and slows the whole registry (every thread waits, in
        :meth:`_throttle`), a 5xx or network error only this request. The concurrency
        slot is held during the exchange only, never while waiting.
        """
        client = self._client(reg)
        state = self._state(reg)
        attempt = 0
        while True:
            self._throttle(reg, state, repo)
            cause: httpx.TransportError | None = None
            resp: httpx.Response | None = None
            with state.slots:
                try:
                    resp = client.request(method, url, headers=headers, data=data)
                except httpx.TransportError as exc:
                    cause = exc
            state.stats.add(requests=1)
            if self._metrics is not None:
                self._metrics.request(reg.key, method, resp.status_code if resp else None)
            retry_after: float | None = None
            if resp is None:
                assert cause is not None
                if _is_tls_verify_error(cause):
                    hint = (
                        f"set {reg.conf_key('ca_file')}"
                        if reg.index is not None
                        else "add a registries entry with ca_file"
                    )
                    raise RegistryUnavailable(
                        f"registry {reg.key}: TLS certificate of {url.host} is not trusted; "
                        f"{hint} to the CA that signed it"
                    ) from cause
                if _is_client_certificate_refusal(cause):
                    raise RegistryAuthError(
                        f"registry {reg.key}: {url.host} refused the TLS handshake because it "
                        "wants a client certificate it trusts; set "
                        f"{reg.conf_key('cert_file') if reg.index is not None else 'cert_file'}"
                        "/key_file to one signed by a CA the registry accepts"
                    ) from cause
                reason = "timeout" if isinstance(cause, httpx.TimeoutException) else "connection"
                failure = RegistryUnavailable(
                    f"registry {reg.key}: cannot reach {url.host} for {repo} "
                    f"({type(cause).__name__}); check the network or registries url"
                )
            else:
                if resp.status_code != 429 and resp.status_code < 500:
                    state.limiter.succeeded()
                    return resp
                retry_after = _parse_retry_after(resp.headers.get("Retry-After"))
                reason = "rate_limited" if resp.status_code == 429 else "server_error"
                failure = RegistryUnavailable(
                    f"registry {reg.key}: {reason.replace('_', ' ')} (HTTP {resp.status_code}) "
                    f"for {repo}; try again later",
                    retry_after=retry_after,
                )
            delay = retry_after if retry_after is not None else _backoff(attempt)
            if resp is not None and resp.status_code == 429:
                state.limiter.throttled(delay)
            if attempt >= self._retries or delay > _MAX_RETRY_AFTER:
                _raise(failure, cause)
            attempt += 1
            state.stats.add(retries=1)
            if self._metrics is not None:
                self._metrics.retry(reg.key, reason)
            _log.warning(
                "registry_request_retry",
                registry=reg.key,
                repository=repo,
                attempt=attempt,
                delay=round(delay, 3),
                reason=str(failure),
            )
            if resp is None or resp.status_code != 429:
                self._sleep(delay)

    def _throttle(self, reg: _Registry, state: _RegState, repo: str) -> None:
        """Wait for the registry's rate limit; fail at once during a long 429 pause."""
        paused = state.limiter.paused_for()
        if paused > _MAX_RETRY_AFTER:
            raise RegistryUnavailable(
                f"registry {reg.key}: rate limited, and it asked us to wait {paused:.0f}s "
                f"more; {repo} is tried again later",
                retry_after=paused,
            )
        wait = state.limiter.reserve()
        if wait <= 0:
            return
        state.stats.add(throttle=wait)
        if self._metrics is not None:
            self._metrics.throttled(reg.key, wait)
        _log.debug(
            "registry_throttled",
            registry=reg.key,
            repository=repo,
            wait=round(wait, 3),
            rate=state.limiter.rate,
        )
        self._sleep(wait)

    def _parse_tags(self, reg: _Registry, image: ImageRef, resp: httpx.Response) -> list[str]:
        data = _json(reg, resp, what=f"tag list of {image.repository}")
        tags = data.get("tags", ()) if isinstance(data, dict) else ()
        if tags is None:  # an empty repository: Distribution sends "tags": null
            return []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise RegistryUnavailable(
                f"registry {reg.key}: the tag list of {image.repository} is not "
                '{"tags": [strings]}; the registry (or a proxy in front of it) sent garbage'
            )
        return tags


def _raise(failure: RegistryUnavailable, cause: BaseException | None) -> NoReturn:
    if cause is not None:
        raise failure from cause
    raise failure


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


def _json(reg: _Registry, resp: httpx.Response, *, what: str) -> Any:
    try:
        return json.loads(resp.content)
    except ValueError as exc:
        raise RegistryUnavailable(
            f"registry {reg.key}: the {what} is not valid JSON "
            f"(HTTP {resp.status_code}, {len(resp.content)} bytes); "
            "the registry or a proxy in front of it sent something else"
        ) from exc


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


def _parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` value (delta-seconds or an HTTP date)."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _backoff(attempt: int) -> float:
    """Exponential backoff with jitter, so many workers do not retry in lockstep."""
    return float(min(_BACKOFF_CAP, _BACKOFF_BASE * 2**attempt) * random.uniform(0.5, 1.0))


def _is_tls_verify_error(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return "CERTIFICATE_VERIFY_FAILED" in str(exc)


_CLIENT_CERT_ALERTS = (
    "ALERT_BAD_CERTIFICATE",
    "ALERT_CERTIFICATE_REQUIRED",
    "ALERT_UNKNOWN_CA",
    "ALERT_CERTIFICATE_UNKNOWN",
)


def _is_client_certificate_refusal(exc: BaseException) -> bool:
    """The server's TLS alert says our client certificate is missing or untrusted (mTLS)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError) and any(a in str(seen) for a in _CLIENT_CERT_ALERTS):
            return True
        seen = seen.__cause__ or seen.__context__
    return any(alert in str(exc) for alert in _CLIENT_CERT_ALERTS)
