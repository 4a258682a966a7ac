"""Registry HTTP API v2 client: tag lists, manifest digests (per platform) and creation times.

The only package that imports ``httpx`` and ``docker``. Everything it raises belongs to
:mod:`automator.errors` (``RegistryAuthError``, ``RegistryNotFound``,
``RegistryUnavailable``), so callers never see a library exception.
"""

from __future__ import annotations

from automator.registry._client import (
    CACHE_SIZE,
    DOCKER_HUB_API,
    MANIFEST_MEDIA_TYPES,
    RegistryClient,
)

__all__ = ["CACHE_SIZE", "DOCKER_HUB_API", "MANIFEST_MEDIA_TYPES", "RegistryClient"]
