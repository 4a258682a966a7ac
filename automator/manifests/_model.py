"""The value objects the rest of the product sees. Frozen: they cross threads and layers."""

from __future__ import annotations

from dataclasses import dataclass

from automator.errors import ManifestError

__all__ = ["ApplyResult", "Change", "ImageField", "ScanResult"]


@dataclass(frozen=True)
class ImageField:
    """One automated container image as written in one manifest.

    It records where the value was found (file, document, workload, container) so that a
    later render can find it again and check it still reads ``image`` before editing.
    """

    file: str
    """POSIX path relative to the repository root, e.g. ``clusters/prod/app.yaml``."""
    doc: int
    """0-based index of the YAML document inside the file."""
    kind: str
    namespace: str | None
    """``metadata.namespace``; None when the manifest does not set it."""
    name: str
    container: str
    init: bool
    """True for an entry of ``initContainers``."""
    image: str
    """The image value exactly as written (without its quotes)."""
    policy: str
    """The policy SPEC string, e.g. ``semver:^1.2`` (parsed by :mod:`automator.policy`)."""
    filter: str | None
    extract: str | None
    source: str
    """The annotation that gave the policy, for messages."""
    line: int
    """1-based line of the image value, for messages."""

    @property
    def ref(self) -> str:
        """``Kind/namespace/name`` (``-`` for no namespace), as in messages and trailers."""
        return f"{self.kind}/{self.namespace or '-'}/{self.name}"


@dataclass(frozen=True)
class ScanResult:
    """What a scan found: fields in file, document, container order; and what was broken."""

    fields: tuple[ImageField, ...]
    errors: tuple[ManifestError, ...]


@dataclass(frozen=True)
class Change:
    """Write ``new`` (a whole image reference) where ``field`` was found."""

    field: ImageField
    new: str


@dataclass(frozen=True)
class ApplyResult:
    """Files rewritten, and errors for files left untouched."""

    written: tuple[str, ...]
    errors: tuple[ManifestError, ...]
