"""Manifest, index and image-config parsing for the registry client (no I/O here).

What lives here and why:

* :class:`Platform`: parsing of the user's ``os/arch[/variant]`` (a malformed one is a
  :class:`PolicyError`, since it comes from an annotation) and containerd-style
  normalisation, so ``linux/arm64`` matches an index entry ``linux/arm64/v8`` and
  ``linux/x86_64`` means ``linux/amd64``.
* :func:`select_entry`: which manifest of an index (Docker manifest list or OCI index) a
  platform means, skipping attestation manifests as buildx writes them.
* :func:`parse_created`: the RFC 3339 ``created`` of an image config, including Go's
  nanosecond fractions, which :meth:`datetime.fromisoformat` does not accept.
* :class:`LRUCache` and :class:`SingleFlight`: the thread-safe, bounded memo of immutable
  facts (by digest) and the guard that makes concurrent callers wanting the same fact
  wait for one fetch instead of each doing it.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Generic, TypeVar

from automator.errors import PolicyError

__all__ = [
    "DEFAULT_PLATFORM",
    "INDEX_MEDIA_TYPES",
    "Entry",
    "LRUCache",
    "Platform",
    "SingleFlight",
    "index_entries",
    "is_index",
    "parse_created",
    "select_entry",
]

INDEX_MEDIA_TYPES = frozenset(
    {
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.index.v1+json",
    }
)
_ATTESTATION_KEY = "vnd.docker.reference.type"
_ATTESTATION_VALUE = "attestation-manifest"
_PART_RE = re.compile(r"[a-z0-9][a-z0-9._-]*")
_ARCH_ALIASES = {
    "x86_64": ("amd64", None),
    "x86-64": ("amd64", None),
    "aarch64": ("arm64", None),
    "armhf": ("arm", "v7"),
    "armel": ("arm", "v6"),
    "i386": ("386", None),
    "i686": ("386", None),
}
_DEFAULT_VARIANT = {"amd64": "v1", "arm64": "v8", "arm": "v7"}
"""The variant an entry without one has (containerd's normalisation)."""
_CREATED_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})?"
)


@dataclass(frozen=True)
class Platform:
    """An ``os/arch[/variant]`` triple, normalised (``variant`` filled with its default)."""

    os: str
    architecture: str
    variant: str | None = None

    @classmethod
    def of(cls, os: str, architecture: str, variant: str | None = None) -> Platform:
        """Normalise as containerd does: aliases, default variants, ``8`` -> ``v8``."""
        os, arch = os.lower(), architecture.lower()
        var = variant.lower() if variant else None
        arch, alias_variant = _ARCH_ALIASES.get(arch, (arch, None))
        var = var or alias_variant
        if var is not None and var.isdigit():
            var = f"v{var}"
        return cls(os, arch, var or _DEFAULT_VARIANT.get(arch))

    @classmethod
    def parse(cls, text: str) -> Platform:
        """The user's ``os/arch[/variant]``; :class:`PolicyError` saying how to fix it."""
        parts = text.strip().lower().split("/")
        if not 2 <= len(parts) <= 3 or not all(_PART_RE.fullmatch(p) for p in parts):
            raise PolicyError(
                f"platform {text[:80]!r} is not os/arch[/variant]; write it like linux/amd64 "
                "or linux/arm64/v8 in the platform annotation"
            )
        return cls.of(*parts)

    @classmethod
    def from_json(cls, data: object) -> Platform | None:
        """The platform of an index entry or image config (``None`` if it names none)."""
        if not isinstance(data, Mapping):
            return None
        os, arch, variant = data.get("os"), data.get("architecture"), data.get("variant")
        if not isinstance(os, str) or not isinstance(arch, str) or not os or not arch:
            return None
        return cls.of(os, arch, variant if isinstance(variant, str) else None)

    def __str__(self) -> str:
        """``linux/amd64``, ``linux/arm64``, ``linux/arm/v7``: as users write them."""
        default = self.variant == _DEFAULT_VARIANT.get(self.architecture) != "v7"
        shown = None if default else self.variant
        return "/".join(p for p in (self.os, self.architecture, shown) if p)


DEFAULT_PLATFORM = Platform.of("linux", "amd64")


@dataclass(frozen=True)
class Entry:
    """One manifest descriptor of an index."""

    digest: str
    media_type: str
    platform: Platform | None
    attestation: bool


def is_index(manifest: Mapping[str, Any]) -> bool:
    media_type = manifest.get("mediaType")
    if isinstance(media_type, str) and media_type in INDEX_MEDIA_TYPES:
        return True
    return "manifests" in manifest and "config" not in manifest


def index_entries(manifest: Mapping[str, Any]) -> tuple[Entry, ...] | None:
    """The usable descriptors of an index, in order; ``None`` when it is malformed."""
    raw = manifest.get("manifests")
    if raw is None:
        return ()
    if not isinstance(raw, list):
        return None
    entries = []
    for item in raw:
        if not isinstance(item, Mapping) or not isinstance(item.get("digest"), str):
            return None
        platform = Platform.from_json(item.get("platform"))
        annotations = item.get("annotations")
        attestation = (
            isinstance(annotations, Mapping)
            and annotations.get(_ATTESTATION_KEY) == _ATTESTATION_VALUE
        ) or (platform is not None and platform.os == "unknown" == platform.architecture)
        media_type = item.get("mediaType")
        entries.append(
            Entry(
                digest=item["digest"],
                media_type=media_type if isinstance(media_type, str) else "",
                platform=platform,
                attestation=attestation,
            )
        )
    return tuple(entries)


def select_entry(entries: Sequence[Entry], platform: Platform | None) -> Entry | str:
    """The entry for ``platform``, or a reason (``has no ... image (it has ...)``).

    ``platform=None`` means the default: ``linux/amd64`` if present, else the first entry
    that is not an attestation manifest.
    """
    images = [e for e in entries if not e.attestation]
    wanted = platform or DEFAULT_PLATFORM
    for entry in images:
        if entry.platform == wanted:
            return entry
    if platform is None and images:
        return images[0]
    if not images:
        return "is an index without any image manifest"
    return f"has no {wanted} image (it has {describe(images)})"


def describe(entries: Sequence[Entry]) -> str:
    names = dict.fromkeys(str(e.platform) if e.platform else "unspecified" for e in entries)
    return ", ".join(names)


def parse_created(value: object) -> datetime | str:
    """The config's ``created`` as an aware UTC datetime, or why it cannot be used.

    RFC 3339 with any fraction length (Go writes nanoseconds); a value without an offset
    is read as UTC. Go's zero time (year 1), which ko and some reproducible builders
    write, means "not recorded" and is refused like a missing value.
    """
    if value is None:
        return "has no creation time (the image config has no created field)"
    if not isinstance(value, str):
        return f"has an invalid creation time (created is {type(value).__name__}, not a string)"
    match = _CREATED_RE.fullmatch(value.strip())
    if match is None:
        return f"has an invalid creation time (created {value[:64]!r} is not RFC 3339)"
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction, offset = match.group(7) or "0", match.group(8)
    try:
        tz = UTC
        if offset and offset not in ("Z", "z"):
            sign = -1 if offset[0] == "-" else 1
            tz = timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6])))
        when = datetime(
            year, month, day, hour, minute, second, int(fraction[:6].ljust(6, "0")), tzinfo=tz
        )
    except ValueError:
        return f"has an invalid creation time (created {value[:64]!r} is not a valid date)"
    if year <= 1:
        return "has no creation time (created is Go's zero time, 0001-01-01)"
    return when.astimezone(UTC)


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LRUCache(Generic[K, V]):
    """A thread-safe, size-bounded map evicting the least recently used entry."""

    def __init__(self, maxsize: int) -> None:
        self._maxsize = max(0, maxsize)
        self._data: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        if self._maxsize == 0:
            return
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self._maxsize:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)


class SingleFlight:
    """Runs ``fn`` once per key at a time: concurrent callers of a key share the result.

    The engine asks for many tags from a thread pool, and tags often share a digest
    (``latest`` and ``1.4.2``): without this, each would fetch the same config.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[Hashable, Future[Any]] = {}

    def do(self, key: Hashable, fn: Callable[[], V]) -> V:
        with self._lock:
            future = self._running.get(key)
            leader = future is None
            if future is None:
                future = Future()
                self._running[key] = future
        if not leader:
            result: V = future.result()
            return result
        try:
            value = fn()
        except BaseException as exc:
            future.set_exception(exc)
            raise
        else:
            future.set_result(value)
            return value
        finally:
            with self._lock:
                del self._running[key]
