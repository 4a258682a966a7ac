"""Registry HTTP API v2 client: tag lists, manifest digests (per platform) and creation times.

The only package that imports ``httpx`` and ``docker`` (and, with the daemon,
``prometheus_client``). Everything it raises belongs to :mod:`automator.errors`
(``RegistryAuthError``, ``RegistryNotFound``, ``RegistryUnavailable``), so callers never
see a library exception.
"""

from __future__ import annotations

from automator.registry._client import CACHE_SIZE, MANIFEST_MEDIA_TYPES, RegistryClient
from automator.registry._limits import RegistryStats
from automator.registry._metrics import RegistryMetrics
from automator.registry._transport import DOCKER_HUB_API

__all__ = [
    "CACHE_SIZE",
    "DOCKER_HUB_API",
    "MANIFEST_MEDIA_TYPES",
    "RegistryClient",
    "RegistryMetrics",
    "RegistryStats",
]
