"""Find the automated container images in a repository's YAML files."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath

from ruamel.yaml.nodes import ScalarNode

from automator.errors import ManifestError
from automator.manifests._annotations import FLUX, OURS, Policy, automation, decide
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
# A file that mentions neither prefix cannot hold an automated workload, so it is only
# syntax-checked (DESIGN §5: a file that does not parse is reported), never composed (Flux's
# image-automation screens files for its marker the same way). This keeps a scan cheap in a
# repository full of Services and ConfigMaps; keep Helm templates out of `git.paths`.
_SCREEN = (OURS.encode(), FLUX.encode())
_TOKENS = (OURS, FLUX)


def scan(root: Path, paths: Sequence[str] = ()) -> ScanResult:
    """Every automated image field under ``root/<path>`` for each path (whole repo if none).

    Files are visited in sorted order, hidden directories and symlinks are skipped. A file
    that does not parse, a missing path or a workload whose annotations are wrong is
    reported in ``errors`` and everything else is still scanned.
    """
    base = root.resolve()
    files, errors = _list_files(base, paths)
    composer = Composer()
    fields: list[ImageField] = []
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
        for doc, node in enumerate(documents):
            try:
                workload = read_workload(doc, node)
            except Problem as problem:
                errors.append(_error(rel, problem.line, f"document {doc}", problem.message))
                continue
            if workload is not None:
                _scan_workload(source, workload, fields, errors)
    return ScanResult(tuple(fields), tuple(errors))


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
    source: Source, workload: Workload, fields: list[ImageField], errors: list[ManifestError]
) -> None:
    """Add the workload's automated fields, or its errors (then none of its fields).

    A workload with any problem contributes no field at all: half-applying a workload whose
    annotations are wrong would guess at what the user meant.
    """
    what = workload.ref
    automated = automation(workload.annotations)
    if isinstance(automated, str):
        errors.append(_error(source.path, workload.line, what, automated))
        return
    if not automated:
        return
    try:
        containers = workload.containers()
    except Problem as problem:
        errors.append(_error(source.path, problem.line, what, problem.message))
        return
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
    edited = {id(c.image.node) for c, _, _ in found if c.image is not None}
    for container, _policy in shared:
        assert container.image is not None
        if id(container.image.node) in edited:
            continue  # an alias of an image we edit: it follows the anchor, as YAML says
        problems.append(_alias_error(source.path, what, container))
    if problems:
        errors.extend(problems)
        return
    for container, policy, line in found:
        assert container.image is not None
        fields.append(
            ImageField(
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
            )
        )


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
