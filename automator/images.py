"""Image references: parse and format ``[host[:port]/]path[:tag][@algo:hex]``.

Two views of one reference are kept apart on purpose:

* the *spelling*: exactly what the manifest says (``nginx``, ``docker.io/nginx``,
  ``index.docker.io/library/nginx``). We always write back the spelling the user chose;
  canonicalising it would be an unasked-for change in their repo.
* the *identity*: registry host and repository path as the Registry API needs them
  (``docker.io`` + ``library/nginx`` for all three spellings above), used to query
  registries and to group workloads that share an image.

Grammar follows the distribution/reference rules: the first path component is a host
when it contains ``.`` or ``:`` or is ``localhost``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from automator.errors import ImageRefError

__all__ = ["DOCKER_HUB", "ImageRef"]

DOCKER_HUB = "docker.io"
"""Canonical name of Docker Hub. Its API lives at ``registry-1.docker.io``."""

_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH_RE = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_HOST_RE = re.compile(
    r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    r"|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
)
_TAG_RE = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST_RE = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{32,}")


@dataclass(frozen=True)
class ImageRef:
    """One parsed image reference; ``str(ref)`` gives back the original spelling."""

    host: str | None
    """Registry host as written (``ghcr.io``, ``127.0.0.1:5001``), or None when omitted."""
    path: str
    """Repository path as written (``nginx``, ``team/app``)."""
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, text: str) -> ImageRef:
        """Parse ``text``; raise :class:`ImageRefError` naming the bad part."""
        original = text
        if not text or text != text.strip():
            raise ImageRefError(
                f"image reference {original!r} is empty or has surrounding spaces; "
                "write it as [host[:port]/]path[:tag][@sha256:...]"
            )
        digest: str | None = None
        if "@" in text:
            text, digest = text.split("@", 1)
            if not _DIGEST_RE.fullmatch(digest):
                raise ImageRefError(
                    f"image reference {original!r} has an invalid digest {digest!r}; "
                    "expected algorithm:hex, e.g. sha256:<64 hex characters>"
                )
        host: str | None = None
        first, sep, rest = text.partition("/")
        if sep and ("." in first or ":" in first or first == "localhost"):
            if not _HOST_RE.fullmatch(first):
                raise ImageRefError(
                    f"image reference {original!r} has an invalid registry host {first!r}"
                )
            host, text = first, rest
        tag: str | None = None
        last_slash = text.rfind("/")
        colon = text.rfind(":")
        if colon > last_slash:
            text, tag = text[:colon], text[colon + 1 :]
            if not _TAG_RE.fullmatch(tag):
                raise ImageRefError(
                    f"image reference {original!r} has an invalid tag {tag!r}; tags are "
                    "up to 128 characters of letters, digits, '_', '.' and '-'"
                )
        if not _PATH_RE.fullmatch(text):
            raise ImageRefError(
                f"image reference {original!r} has an invalid repository path {text!r}; "
                "paths are lowercase components separated by '/'"
            )
        return cls(host=host, path=text, tag=tag, digest=digest)

    def __str__(self) -> str:
        out = self.name
        if self.tag is not None:
            out += f":{self.tag}"
        if self.digest is not None:
            out += f"@{self.digest}"
        return out

    @property
    def name(self) -> str:
        """Host and path as written, without tag or digest."""
        return f"{self.host}/{self.path}" if self.host is not None else self.path

    @property
    def registry(self) -> str:
        """Canonical registry host: Docker Hub's aliases all become ``docker.io``."""
        if self.host is None or self.host in _HUB_ALIASES:
            return DOCKER_HUB
        return self.host

    @property
    def repository(self) -> str:
        """Canonical repository path: single-component Hub paths gain ``library/``."""
        if self.registry == DOCKER_HUB and "/" not in self.path:
            return f"library/{self.path}"
        return self.path

    @property
    def canonical(self) -> str:
        """``registry/repository``: the identity used to group and cache lookups."""
        return f"{self.registry}/{self.repository}"

    def with_tag(self, tag: str, digest: str | None = None) -> ImageRef:
        """The same spelling with a new tag (and digest, or none)."""
        if not _TAG_RE.fullmatch(tag):
            raise ImageRefError(f"tag {tag!r} for image {self.name!r} is not a valid tag")
        return replace(self, tag=tag, digest=digest)
