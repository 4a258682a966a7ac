"""The value objects the rest of the product sees. Frozen: they cross threads and layers."""

from __future__ import annotations

from dataclasses import dataclass

from automator.errors import ManifestError

__all__ = ["ApplyResult", "Change", "ImageField", "ScanResult"]


@dataclass(frozen=True)
class ImageField:
    """One automated image value as written in one manifest.

    It records where the value was found (file, document, workload, container) so that a
    later render can find it again and check it still reads ``image`` before editing.

    Two sources give fields. *Annotation fields* are the ``image:`` of a workload's
    container, automated by the workload's annotations (``marker`` is None). *Marker
    fields* are any scalar followed by a ``# {"$imagepolicy": "REF"}`` comment (DESIGN §4):
    then ``kind``/``namespace``/``name`` are those of the enclosing document (``kind`` is
    ``-`` when it has none, ``name`` the file's stem when it has no ``metadata.name``),
    ``container`` is the dotted key path of the value in the document (e.g.
    ``spec.values.image.tag``, ``images[0].newTag``; never contains a space), ``part`` says
    which part of an image reference the value is, and the policy comes from the
    ImagePolicy document the REF names.
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
    ignore_tags: tuple[str, ...] = ()
    """Globs of tags that are never candidates (``ignore-tags.<c>``, ``spec.ignoreTags``)."""
    pin_digest: bool = False
    """Write ``tag@sha256:...`` whatever the policy (``pin-digest.<c>``, ``spec.pinDigest``)."""
    platform: str | None = None
    """``os/arch[/variant]`` of a multi-arch image (``platform.<c>``, ``spec.platform``)."""
    rollback_hold: bool = True
    """Hold the field at a person's rollback of an automated update, DESIGN §5
    (``rollback-hold[.<c>]`` annotations, ``spec.rollbackHold``); False: never hold."""
    part: str = "image"
    """What the value is: ``image`` (a whole reference), or only its ``tag``, ``name``
    (repository without tag) or ``digest`` (``sha256:...``). Always ``image`` for annotation
    fields. ``Change.new`` is written as is, so for a part it is that part only."""
    repository: str | None = None
    """Marker fields: the ImagePolicy's ``spec.image``, the repository whose tags are listed
    (a split ``tag`` field does not say it). None for annotation fields."""
    marker: str | None = None
    """Marker fields: the REF as written in the marker (``app``, ``flux-system:app:tag``).
    None for annotation fields."""

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
    """Write ``new`` where ``field`` was found: a whole image reference, or for a marker
    field on one part (``field.part``) the new value of that part."""

    field: ImageField
    new: str


@dataclass(frozen=True)
class ApplyResult:
    """Files rewritten, and errors for files left untouched."""

    written: tuple[str, ...]
    errors: tuple[ManifestError, ...]
