"""Find the automated image fields in a repository's YAML files.

Two sources (DESIGN §4): workload annotations (the containers' ``image:``), and marker
comments on any scalar, resolved against the ImagePolicy documents found under the same
paths. A marker on a workload container's ``image:`` wins over the workload-wide default
policy (``automator.gitops.io/policy``, ``automated``): the marker is the more specific
statement, and it is what a Flux v2 repository already has. A container that has *both*
a marker and its own policy annotation (``policy.<c>`` or ``fluxcd.io/tag.<c>``) is
reported and neither is applied: two explicit, possibly different, policies for one value
is a mistake to fix, not something to guess at.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from automator.errors import ManifestError
from automator.manifests._annotations import FLUX, OURS, Policy, automation, decide
from automator.manifests._imagepolicy import (
    Catalogue,
    ImagePolicy,
    is_image_policy,
    read_image_policy,
)
from automator.manifests._markers import (
    KEY,
    Found,
    Owner,
    Ref,
    check_marker_value,
    find,
    orphans,
    owner,
)
from automator.manifests._model import ImageField, ScanResult
from automator.manifests._span import value_span
from automator.manifests._workloads import Container, Workload, read_workload
from automator.manifests._yaml import (
    STR_TAG,
    Composer,
    Problem,
    Source,
    decode,
    screen_documents,
)

__all__ = ["scan"]

_SUFFIXES = (".yaml", ".yml")
# A file that mentions none of these cannot hold an automated workload, an ImagePolicy
# (its apiVersion is ours) or a marker, so it is only syntax-checked (DESIGN §5: a file
# that does not parse is reported), never composed (Flux's image-automation screens files
# for its marker the same way). This keeps a scan cheap in a repository full of Services
# and ConfigMaps; keep Helm templates out of `git.paths`.
_SCREEN = (OURS.encode(), FLUX.encode(), KEY.encode())
_TOKENS = (OURS, FLUX, KEY)


@dataclass(frozen=True)
class _Pending:
    """A well-formed marker whose ImagePolicy is looked up once every file is scanned."""

    file: str
    doc: int
    owner: Owner
    found: Found
    ref: Ref


def scan(root: Path, paths: Sequence[str] = ()) -> ScanResult:
    """Every automated image field under ``root/<path>`` for each path (whole repo if none).

    Files are visited in sorted order, hidden directories and symlinks are skipped. A file
    that does not parse, a missing path, a workload whose annotations are wrong, an invalid
    ImagePolicy or a marker that cannot be applied is reported in ``errors`` and everything
    else is still scanned. Fields come in file, document and position order.
    """
    base = root.resolve()
    files, errors = _list_files(base, paths)
    composer = Composer()
    catalogue = Catalogue()
    entries: list[ImageField | _Pending] = []
    for rel in files:
        try:
            data = (base / rel).read_bytes()
        except OSError as exc:
            errors.append(
                ManifestError(f"{rel}: cannot be read ({exc.strerror}): fix its permissions")
            )
            continue
        if not any(token in data for token in _SCREEN):
            try:
                composer.check_syntax(decode(rel, data))
            except ManifestError as exc:
                errors.append(exc)
            continue
        try:
            source = decode(rel, data)
            documents = composer.compose(source, screen_documents(source.text, _TOKENS))
        except ManifestError as exc:
            errors.append(exc)
            continue
        entries.extend(_scan_file(composer, source, documents, catalogue, errors))
    fields: list[ImageField] = []
    for entry in entries:
        if isinstance(entry, ImageField):
            fields.append(entry)
            continue
        resolved = catalogue.resolve(entry.ref, entry.owner.namespace)
        if isinstance(resolved, str):
            errors.append(_error(entry.file, entry.found.line, _what(entry), resolved))
            continue
        fields.append(_marker_field(entry, resolved))
    return ScanResult(tuple(fields), _unique(errors))


def _unique(errors: Iterable[ManifestError]) -> tuple[ManifestError, ...]:
    """Errors in order, each message once (a document can be reached by two rules)."""
    by_message: dict[str, ManifestError] = {}
    for error in errors:
        by_message.setdefault(str(error), error)
    return tuple(by_message.values())


def _scan_file(
    composer: Composer,
    source: Source,
    documents: list[Node],
    catalogue: Catalogue,
    errors: list[ManifestError],
) -> list[ImageField | _Pending]:
    """The file's annotation fields and pending markers in document and position order."""
    entries: list[tuple[int, int, ImageField | _Pending]] = []
    with_markers = KEY in source.text
    all_found: list[Found] = []
    for doc, node in enumerate(documents):
        if is_image_policy(node):
            policy = read_image_policy(composer, source.path, node)
            for problem in (policy.problem, catalogue.add(policy)):
                if problem is not None:
                    errors.append(ManifestError(problem))
        marked: dict[int, _Pending] = {}
        if with_markers:
            marked = _scan_markers(source, doc, node, all_found, errors)
        try:
            workload = read_workload(doc, node)
        except Problem as problem:
            errors.append(_error(source.path, problem.line, f"document {doc}", problem.message))
            continue
        if workload is not None:
            for at, field in _scan_workload(source, workload, marked, errors):
                entries.append((doc, at, field))
        for pending in marked.values():
            entries.append((doc, int(pending.found.node.start_mark.index), pending))
    if with_markers:
        for at in orphans(source.text, documents, all_found):
            line = source.text.count("\n", 0, at) + 1
            errors.append(
                _error(
                    source.path,
                    line,
                    "marker",
                    f"this {KEY} comment does not follow a value on its line: put "
                    '# {"$imagepolicy": "NAME"} right after the single-line value it '
                    "updates (e.g. `tag: 1.2.3 # {...}`), or remove it",
                )
            )
    entries.sort(key=lambda entry: (entry[0], entry[1]))
    return [entry[2] for entry in entries]


def _scan_markers(
    source: Source, doc: int, node: Node, all_found: list[Found], errors: list[ManifestError]
) -> dict[int, _Pending]:
    """Well-formed markers of one document by value node id; the others are reported."""
    if not isinstance(node, MappingNode | SequenceNode):
        return {}
    found = find(source.text, node)
    all_found.extend(found)
    if not found:
        return {}
    try:
        own = owner(source.path, node)
    except Problem as problem:
        errors.append(_error(source.path, problem.line, f"document {doc}", problem.message))
        return {}
    if isinstance(own.locked, str):
        errors.append(_error(source.path, own.line, own.ref, own.locked))
        return {}
    if own.locked:
        return {}
    result: dict[int, _Pending] = {}
    for marker in found:
        try:
            ref = marker.ref()
            check_marker_value(source.text, marker.node, ref.part)
        except Problem as problem:
            what = f"{own.ref} field {marker.path}"
            errors.append(_error(source.path, marker.line, what, problem.message))
            continue
        result[id(marker.node)] = _Pending(source.path, doc, own, marker, ref)
    return result


def _what(pending: _Pending) -> str:
    return f"{pending.owner.ref} field {pending.found.path}"


def _marker_field(pending: _Pending, policy: ImagePolicy) -> ImageField:
    return ImageField(
        file=pending.file,
        doc=pending.doc,
        kind=pending.owner.kind,
        namespace=pending.owner.namespace,
        name=pending.owner.name,
        container=pending.found.path,
        init=False,
        image=str(pending.found.node.value),
        policy=policy.policy,
        filter=policy.filter,
        extract=policy.extract,
        source=f"{KEY} {pending.ref.text}",
        line=pending.found.line,
        ignore_tags=policy.ignore_tags,
        pin_digest=policy.pin_digest,
        platform=policy.platform,
        rollback_hold=policy.rollback_hold,
        part=pending.ref.part,
        repository=policy.image,
        marker=pending.ref.text,
    )


def _list_files(base: Path, paths: Sequence[str]) -> tuple[list[str], list[ManifestError]]:
    """Repo-relative POSIX paths of the YAML files to scan, sorted and without duplicates."""
    errors: list[ManifestError] = []
    found: set[str] = set()
    for entry in paths or (".",):
        rel = PurePosixPath(entry)
        target = (base / rel).resolve()
        if rel.is_absolute() or not target.is_relative_to(base):
            errors.append(
                ManifestError(
                    f"git.paths: {entry!r} is outside the repository: fix `git.paths` "
                    "in the configuration (paths are relative to the repository root)"
                )
            )
            continue
        if not target.exists():
            errors.append(
                ManifestError(
                    f"git.paths: {entry!r} does not exist in the repository: fix `git.paths` "
                    "in the configuration (paths are relative to the repository root)"
                )
            )
            continue
        if target.is_file():
            if target.suffix.lower() in _SUFFIXES:
                found.add(target.relative_to(base).as_posix())
            continue
        found.update(_walk(base, target))
    return sorted(found), errors


def _walk(base: Path, top: Path) -> Iterable[str]:
    for directory, subdirs, names in os.walk(top):
        subdirs[:] = [d for d in subdirs if not d.startswith(".")]
        for name in names:
            path = Path(directory, name)
            if path.suffix.lower() in _SUFFIXES and not path.is_symlink():
                yield path.relative_to(base).as_posix()


def _error(file: str, line: int | None, what: str, message: str) -> ManifestError:
    where = f"{file}:{line}" if line else file
    return ManifestError(f"{where}: {what}: {message}")


def _scan_workload(
    source: Source,
    workload: Workload,
    marked: dict[int, _Pending],
    errors: list[ManifestError],
) -> list[tuple[int, ImageField]]:
    """The workload's automated fields with their offsets, or its errors (then none).

    A workload with any problem contributes no field at all: half-applying a workload whose
    annotations are wrong would guess at what the user meant. Containers whose image
    carries a marker are left to the marker; a marker that conflicts with the container's
    own policy annotation is dropped from ``marked`` (and reported).
    """
    what = workload.ref
    automated = automation(workload.annotations)
    if isinstance(automated, str):
        errors.append(_error(source.path, workload.line, what, automated))
        return []
    if not automated:
        return []
    try:
        containers = workload.containers()
    except Problem as problem:
        errors.append(_error(source.path, problem.line, what, problem.message))
        return []
    decision = decide(workload.annotations, [c.name for c in containers])
    problems = [_error(source.path, workload.line, what, p) for p in decision.problems]
    found: list[tuple[Container, Policy, int]] = []
    shared: list[tuple[Container, Policy]] = []
    for container in containers:
        policy = decision.policies.get(container.name)
        if policy is None:
            continue
        label = f"{what} container {container.name!r}"
        image = container.image
        if image is not None and id(image.node) in marked:
            if policy.explicit:
                pending = marked.pop(id(image.node))
                problems.append(
                    _error(
                        source.path,
                        image.line,
                        label,
                        f'its image has a marker {{"{KEY}": "{pending.ref.text}"}} and '
                        f"annotation {policy.source} also gives it a policy: keep one of "
                        "them (remove the marker or the annotation)",
                    )
                )
            continue
        if image is None or not isinstance(image.node, ScalarNode) or image.node.tag != STR_TAG:
            line = image.line if image is not None else container.loc.line
            problems.append(
                _error(source.path, line, label, "has no image (a string): set `image:`")
            )
            continue
        if not image.direct:
            shared.append((container, policy))
            continue
        try:
            value_span(source.text, image.node)
        except Problem as problem:
            problems.append(_error(source.path, image.line, label, problem.message))
            continue
        found.append((container, policy, int(image.node.end_mark.line) + 1))
    edited = {id(c.image.node) for c, _, _ in found if c.image is not None} | set(marked)
    for container, _policy in shared:
        assert container.image is not None
        if id(container.image.node) in edited:
            continue  # an alias of an image we edit: it follows the anchor, as YAML says
        problems.append(_alias_error(source.path, what, container))
    if problems:
        errors.extend(problems)
        return []
    result: list[tuple[int, ImageField]] = []
    for container, policy, line in found:
        assert container.image is not None
        field = ImageField(
            file=source.path,
            doc=workload.doc,
            kind=workload.kind,
            namespace=workload.namespace,
            name=workload.name,
            container=container.name,
            init=container.init,
            image=str(container.image.node.value),
            policy=policy.spec,
            filter=policy.filter,
            extract=policy.extract,
            source=policy.source,
            line=line,
            ignore_tags=policy.ignore_tags,
            pin_digest=policy.pin_digest,
            platform=policy.platform,
            rollback_hold=policy.rollback_hold,
        )
        result.append((int(container.image.node.start_mark.index), field))
    return result


def _alias_error(file: str, what: str, container: Container) -> ManifestError:
    """Explain an image that is written elsewhere (alias or merge key) and cannot be edited."""
    assert container.image is not None
    via = container.image.via
    anchor = via.anchor if via is not None and via.anchor else "?"
    at = f" (line {via.start_mark.line + 1})" if via is not None else ""
    return _error(
        file,
        container.image.line,
        f"{what} container {container.name!r}",
        f"the image is an alias of anchor &{anchor}{at}, which is not an automated image; "
        "Automator does not edit through aliases: automate the workload that holds the "
        "anchor, or write the image here instead of the alias",
    )
