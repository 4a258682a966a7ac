"""The HTTP transport of the registry client: connection pools, TLS, retries and politeness.

Why a module of its own: how bytes reach a registry (one ``httpx.Client`` per registry
sized to its concurrency cap, its TLS trust and client certificate, retries with jittered
backoff and ``Retry-After``, redirects followed by hand so credentials never cross hosts,
the token bucket a 429 slows down) is one job, independent of what is asked (tags,
manifests: :mod:`automator.registry._client`) and of who we are (credentials and tokens:
:mod:`automator.registry._tokens`). Both of those send through :class:`Transport`.
"""

from __future__ import annotations

import email.utils
import json
import random
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn

import httpx
import structlog

from automator.config import RegistrySettings, Settings
from automator.errors import ConfigError, RegistryAuthError, RegistryUnavailable
from automator.images import DOCKER_HUB, ImageRef
from automator.registry._auth import Credentials
from automator.registry._limits import RateLimiter, RegistryStats, StatsCounter
from automator.registry._metrics import RegistryMetrics

__all__ = [
    "DOCKER_HUB_API",
    "RegState",
    "Registry",
    "Transport",
    "json_body",
    "origin",
]

_log = structlog.get_logger(__name__)

DOCKER_HUB_API = "https://registry-1.docker.io"
"""Where Docker Hub's Registry API lives (``docker.io`` itself only redirects)."""

_MAX_REDIRECTS = 5
_BACKOFF_BASE = 0.25
_BACKOFF_CAP = 4.0
_MAX_RETRY_AFTER = 30.0
"""A Retry-After longer than this is not slept through: we give up at once and hand the
hint to the engine (via ``retry_after``), which can schedule the next attempt itself."""


@dataclass(frozen=True)
class Registry:
    """Where and how to reach one registry, resolved from the settings once per call."""

    key: str
    """Canonical host (``docker.io``, ``127.0.0.1:5001``): cache key and name in messages."""
    base_url: str
    settings: RegistrySettings | None
    index: int | None

    @property
    def origin(self) -> tuple[str, str, int | None]:
        return origin(httpx.URL(self.base_url))

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


class RegState:
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


def origin(url: httpx.URL) -> tuple[str, str, int | None]:
    default = {"http": 80, "https": 443}.get(url.scheme)
    return (url.scheme, url.host, url.port or default)


class Transport:
    """Per-registry connection pools and limits, and one retried HTTP exchange.

    Safe to share between threads; ``transport``, ``sleep`` and ``clock`` are the test
    seams of :class:`~automator.registry.RegistryClient`, passed through.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        transport: httpx.BaseTransport | None,
        timeout: float,
        retries: int,
        sleep: Callable[[float], None],
        clock: Callable[[], float],
        metrics: RegistryMetrics | None,
    ) -> None:
        self._settings = settings
        self._transport = transport
        self._timeout = timeout
        self._retries = max(0, retries)
        self._sleep = sleep
        self._clock = clock
        self._metrics = metrics
        self._lock = threading.Lock()
        self._clients: dict[str, httpx.Client] = {}
        self._states: dict[str, RegState] = {}
        self._closed = False

    def stats(self) -> dict[str, RegistryStats]:
        """A snapshot of every registry's counters (canonical host -> figures)."""
        with self._lock:
            states = dict(self._states)
        return {key: st.stats.snapshot() for key, st in states.items()}

    def close(self) -> None:
        """Close every pooled connection; no request can be sent afterwards."""
        with self._lock:
            clients = list(self._clients.values())
            self._clients.clear()
            self._closed = True
        for client in clients:
            client.close()

    def registry(self, image: ImageRef) -> Registry:
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
        return Registry(key=image.registry, base_url=base, settings=conf, index=index)

    def state(self, reg: Registry) -> RegState:
        with self._lock:
            state = self._states.get(reg.key)
            if state is None:
                state = RegState(reg.settings, self._settings.max_concurrency, self._clock)
                self._states[reg.key] = state
            return state

    def client(self, reg: Registry) -> httpx.Client:
        """The registry's own connection pool, sized to its concurrency cap.

        One pool per registry (not one shared) so that a registry that hangs can hold at
        most its own connections, and so that its TLS settings and timeout apply to it
        alone. Token realms and blob storage it redirects to go through the same pool.
        """
        state = self.state(reg)
        conf = reg.settings
        timeout = conf.timeout if conf is not None and conf.timeout else self._timeout
        with self._lock:
            if self._closed:
                raise RuntimeError("RegistryClient is closed")
            client = self._clients.get(reg.key)
            if client is None:
                verify: ssl.SSLContext | bool = True
                if conf is not None and self._transport is None:
                    verify = self.ssl_context(reg, conf)
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
    def ssl_context(reg: Registry, conf: RegistrySettings) -> ssl.SSLContext | bool:
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

    def follow(
        self, reg: Registry, repo: str, method: str, url: httpx.URL, headers: dict[str, str]
    ) -> httpx.Response:
        """Send, following redirects by hand so credentials never cross to another host."""
        for _ in range(_MAX_REDIRECTS + 1):
            resp = self.send(reg, repo, method, url, headers)
            location = resp.headers.get("Location")
            if not resp.is_redirect or not location:
                return resp
            url = resp.url.join(location)
            if origin(url) != reg.origin:
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        raise RegistryUnavailable(
            f"registry {reg.key}: too many redirects for {repo}; check registries url"
        )

    def send(
        self,
        reg: Registry,
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
        :meth:`throttle`), a 5xx or network error only this request. The concurrency
        slot is held during the exchange only, never while waiting.
        """
        client = self.client(reg)
        state = self.state(reg)
        attempt = 0
        while True:
            self.throttle(reg, state, repo)
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

    def throttle(self, reg: Registry, state: RegState, repo: str) -> None:
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


def _raise(failure: RegistryUnavailable, cause: BaseException | None) -> NoReturn:
    if cause is not None:
        raise failure from cause
    raise failure


def json_body(reg: Registry, resp: httpx.Response, *, what: str) -> Any:
    try:
        return json.loads(resp.content)
    except ValueError as exc:
        raise RegistryUnavailable(
            f"registry {reg.key}: the {what} is not valid JSON "
            f"(HTTP {resp.status_code}, {len(resp.content)} bytes); "
            "the registry or a proxy in front of it sent something else"
        ) from exc


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
