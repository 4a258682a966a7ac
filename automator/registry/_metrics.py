"""Prometheus counters of the registry client, registered in a caller-owned registry.

The caller (the daemon) creates the :class:`~prometheus_client.CollectorRegistry` and
passes it in: no module-level state, no default global registry, so tests and several
clients in one process never collide. Labels are the registry host (as in image
references), the HTTP method and status, and a retry reason; never a URL, a repository
path with a token in it, or a header value.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

__all__ = ["RegistryMetrics"]


class RegistryMetrics:
    """``automator_registry_*`` counters; pass one to ``RegistryClient(metrics=...)``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "automator_registry_requests_total",
            "HTTP exchanges with container registries (token fetches and retries included); "
            "status is the HTTP status code, or 'error' when no answer came",
            ["registry", "method", "status"],
            registry=registry,
        )
        self.retries = Counter(
            "automator_registry_retries_total",
            "Registry exchanges repeated after a transient failure",
            ["registry", "reason"],
            registry=registry,
        )
        self.throttle_seconds = Counter(
            "automator_registry_throttle_seconds_total",
            "Seconds spent waiting for a registry's rate limit or a 429's Retry-After",
            ["registry"],
            registry=registry,
        )
        self.tags = Counter(
            "automator_registry_tags_total",
            "Distinct tags received from registries' tag lists",
            ["registry"],
            registry=registry,
        )

    def request(self, registry: str, method: str, status: int | None) -> None:
        label = str(status) if status is not None else "error"
        self.requests.labels(registry=registry, method=method, status=label).inc()

    def retry(self, registry: str, reason: str) -> None:
        self.retries.labels(registry=registry, reason=reason).inc()

    def throttled(self, registry: str, seconds: float) -> None:
        self.throttle_seconds.labels(registry=registry).inc(seconds)

    def tags_seen(self, registry: str, count: int) -> None:
        self.tags.labels(registry=registry).inc(count)
