"""Surgical rewrite: replace the characters of image values, prove nothing else changed.

For each file: parse it as it is now, find every field again by the scan's rules (the
workload's container for annotation fields, the key path and the same marker for marker
fields), check it
still reads the scanned value, splice the new values into the original text (everything
outside the value's characters is copied, so comments, quotes, CRLF, BOM, ... survive by
construction), then parse the result and compare the whole node graph with the original:
only the targeted scalars may differ, and they must read the new values. Any doubt leaves
the file untouched and is reported. A file is all or nothing: its changes land together.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ruamel.yaml.nodes import CollectionNode, MappingNode, Node, ScalarNode

from automator.errors import ManifestError
from automator.manifests._markers import check_marker_value, find, owner
from automator.manifests._model import ApplyResult, Change, ImageField
from automator.manifests._span import Span, check_new, value_span
from automator.manifests._workloads import read_workload
from automator.manifests._yaml import STR_TAG, Composer, Problem, Source, decode

__all__ = ["apply", "render"]

_UNTOUCHED = "the file is left untouched"


@dataclass(frozen=True)
class _Rendered:
    original: bytes
    new: bytes


@dataclass(frozen=True)
class _Edit:
    span: Span
    node: Node
    new: str
    change: Change


def render(
    root: Path, changes: Sequence[Change]
) -> tuple[dict[str, bytes], tuple[ManifestError, ...]]:
    """New bytes of every file the changes modify, computed in memory; nothing is written.

    Files whose changes are all no-ops are left out. Errors name the files left out.
    """
    rendered, errors = _render_all(root, changes)
    return {file: result.new for file, result in rendered.items()}, errors


def apply(root: Path, changes: Sequence[Change]) -> ApplyResult:
    """Render, then replace each changed file atomically (same mode, fsynced).

    Just before replacing, the file is read once more: if it differs from what was
    rendered from, someone else edited it meanwhile and it is left alone.
    """
    rendered, errors = _render_all(root, changes)
    written: list[str] = []
    problems = list(errors)
    for file, result in rendered.items():
        try:
            _write_atomically(root, file, result)
        except ManifestError as exc:
            problems.append(exc)
            continue
        written.append(file)
    return ApplyResult(tuple(written), tuple(problems))


def _render_all(
    root: Path, changes: Sequence[Change]
) -> tuple[dict[str, _Rendered], tuple[ManifestError, ...]]:
    by_file: dict[str, list[Change]] = {}
    for change in changes:
        by_file.setdefault(change.field.file, []).append(change)
    composer = Composer()
    rendered: dict[str, _Rendered] = {}
    errors: list[ManifestError] = []
    for file in sorted(by_file):
        try:
            result = _render_file(composer, root, file, by_file[file])
        except ManifestError as exc:
            errors.append(exc)
            continue
        if result.new != result.original:
            rendered[file] = result
    return rendered, tuple(errors)


def _path(root: Path, file: str) -> Path:
    """The file inside the repository; refuse anything that could write elsewhere."""
    rel = PurePosixPath(file)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise ManifestError(f"{file}: not a path inside the repository: {_UNTOUCHED}")
    path = root.joinpath(*rel.parts)
    if path.is_symlink():
        raise ManifestError(
            f"{file}: is a symbolic link, which Automator does not edit: "
            f"edit the file it points to instead; {_UNTOUCHED}"
        )
    return path


def _render_file(composer: Composer, root: Path, file: str, changes: list[Change]) -> _Rendered:
    path = _path(root, file)
    try:
        original = path.read_bytes()
    except OSError as exc:
        raise ManifestError(
            f"{file}: cannot be read ({exc.strerror}): it changed since the scan; scan again"
        ) from exc
    source = decode(file, original)
    documents = composer.compose(source)
    edits: dict[int, _Edit] = {}
    for change in changes:
        if change.new == change.field.image:
            continue
        edit = _locate(composer, source, documents, change)
        previous = edits.get(edit.span.start)
        if previous is not None and previous.new != edit.new:
            raise ManifestError(
                f"{file}:{change.field.line}: {change.field.ref} {_label(change.field)}: "
                f"asked to write both {previous.new!r} and "
                f"{edit.new!r} into the same value (through a YAML anchor): "
                f"give the containers the same policy; {_UNTOUCHED}"
            )
        edits[edit.span.start] = edit
    if not edits:
        return _Rendered(original, original)
    ordered = sorted(edits.values(), key=lambda e: e.span.start)
    text = _splice(source.text, ordered)
    _verify(composer, source, documents, text, ordered)
    return _Rendered(original, source.encode(text))


def _label(field: ImageField) -> str:
    """``container 'app'`` for annotation fields, ``field spec.values.image.tag`` for markers."""
    if field.marker is not None:
        return f"field {field.container}"
    return f"container {field.container!r}"


def _fail(field: ImageField, message: str, line: int | None = None) -> ManifestError:
    return ManifestError(
        f"{field.file}:{line or field.line}: {field.ref} {_label(field)}: {message}; {_UNTOUCHED}"
    )


_STALE = "it changed since the scan: scan again"


def _locate(composer: Composer, source: Source, documents: list[Node], change: Change) -> _Edit:
    """Find the field again, by the scan's rules, and prove it still reads the old value."""
    field = change.field
    if not 0 <= field.doc < len(documents):
        raise _fail(field, f"document {field.doc} no longer exists: {_STALE}")
    node: Node
    if field.marker is not None:
        node = _locate_marker(source, documents[field.doc], field)
        line = field.line
    else:
        node, line = _locate_container(source, documents[field.doc], field)
    try:
        span = value_span(source.text, node)
        check_new(change.new, span.quote)
    except Problem as problem:
        raise _fail(field, problem.message, line) from None
    resolved = composer.resolve_plain(change.new)
    if not span.quote and resolved == STR_TAG and _YAML11_NOT_A_STRING.fullmatch(change.new):
        resolved = "YAML 1.1:bool or number (as Kubernetes and Helm read it)"
    if not span.quote and resolved != STR_TAG:
        kind = resolved.rsplit(":", 1)[-1]
        raise _fail(
            field,
            f"the new value {change.new!r} would change more than the image: written "
            f"plain it reads as a YAML {kind}, not a string; quote the value in the file "
            f'(e.g. "{field.image}") and scan again',
            line,
        )
    return _Edit(span, node, change.new, change)


# Plain scalars that YAML 1.2 reads as strings but YAML 1.1 (go-yaml v2: kubectl, Helm)
# reads as booleans or numbers. A tag such as `yes`, `on` or `1_000` must stay quoted.
_YAML11_NOT_A_STRING = re.compile(
    r"y|Y|yes|Yes|YES|n|N|no|No|NO|on|On|ON|off|Off|OFF"
    r"|[-+]?0b[01_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+"
    r"|[-+]?(?:[0-9][0-9_]*)?\.[0-9_]*(?:[eE][-+][0-9]+)?"
)


def _locate_marker(source: Source, root: Node, field: ImageField) -> ScalarNode:
    """The marker field's value node, found by the scan's walk and its key path."""
    try:
        own = owner(field.file, root)
    except Problem as problem:
        raise _fail(field, problem.message, problem.line) from None
    if (own.kind, own.namespace, own.name) != (field.kind, field.namespace, field.name):
        raise _fail(field, f"the document is no longer in document {field.doc}: {_STALE}")
    if own.locked is not False:
        raise _fail(field, f"the document is locked now: {_STALE}")
    marker = next((m for m in find(source.text, root) if m.path == field.container), None)
    if marker is None:
        raise _fail(field, f"the value or its marker comment is gone: {_STALE}")
    try:
        ref = marker.ref()
        if ref.text != field.marker:
            raise Problem(f"the marker now reads {ref.text!r}, not {field.marker!r}: {_STALE}")
        check_marker_value(source.text, marker.node, ref.part)
    except Problem as problem:
        raise _fail(field, problem.message, marker.line) from None
    if marker.node.value != field.image:
        raise _fail(
            field,
            f"the value now reads {marker.node.value!r}, not {field.image!r}: {_STALE}",
            marker.line,
        )
    return marker.node


def _locate_container(source: Source, root: Node, field: ImageField) -> tuple[Node, int]:
    """A workload container's image node (and its line), found by the scan's rules."""
    stale = _STALE
    try:
        workload = read_workload(field.doc, root)
        if workload is None or (workload.kind, workload.namespace, workload.name) != (
            field.kind,
            field.namespace,
            field.name,
        ):
            raise _fail(field, f"the workload is no longer in document {field.doc}: {stale}")
        containers = workload.containers()
    except Problem as problem:
        raise _fail(field, problem.message, problem.line) from None
    container = next(
        (c for c in containers if c.name == field.container and c.init == field.init), None
    )
    if container is None:
        raise _fail(field, f"the container is gone: {stale}")
    image = container.image
    if image is None or not isinstance(image.node, ScalarNode) or image.node.tag != STR_TAG:
        raise _fail(field, f"the container has no image any more: {stale}")
    if not image.direct:
        anchor = image.via.anchor if image.via is not None else None
        raise _fail(
            field,
            f"the image is an alias of anchor &{anchor}, which Automator does not edit "
            "through: automate the workload that holds the anchor, or write the image here",
            image.line,
        )
    if image.node.value != field.image:
        raise _fail(
            field,
            f"the image now reads {image.node.value!r}, not {field.image!r}: {stale}",
            image.line,
        )
    return image.node, image.line


def _splice(text: str, edits: Sequence[_Edit]) -> str:
    """Copy the text, replacing only the characters between each value's quotes."""
    parts: list[str] = []
    cursor = 0
    for edit in edits:
        quote = len(edit.span.quote)
        parts.append(text[cursor : edit.span.start + quote])
        parts.append(edit.new)
        cursor = edit.span.end - quote
    parts.append(text[cursor:])
    return "".join(parts)


def _verify(
    composer: Composer,
    source: Source,
    old_documents: list[Node],
    text: str,
    edits: Sequence[_Edit],
) -> None:
    """Parse the spliced text; the graph must equal the old one except the edited values."""
    targets = {id(edit.node): edit.new for edit in edits}
    first = edits[0]
    try:
        new_documents = composer.compose(Source(source.path, text, source.bom))
    except ManifestError:
        raise _fail(first.change.field, "the edited file would not parse") from None
    difference = _difference(old_documents, new_documents, targets)
    if difference is not None:
        raise _fail(first.change.field, f"the edit would change more than the image ({difference})")


def _difference(old_docs: list[Node], new_docs: list[Node], targets: dict[int, str]) -> str | None:
    """First structural difference between two graphs, ignoring the targeted values.

    Iterative (no recursion limit), and alias-aware: a node shared in one graph must be
    shared the same way in the other.
    """
    if len(old_docs) != len(new_docs):
        return "the number of documents changed"
    pairs: list[tuple[Node, Node]] = list(zip(old_docs, new_docs, strict=True))
    forward: dict[int, Node] = {}
    backward: dict[int, Node] = {}
    while pairs:
        old, new = pairs.pop()
        if id(old) in forward or id(new) in backward:
            if forward.get(id(old)) is not new or backward.get(id(new)) is not old:
                return f"line {new.start_mark.line + 1}: aliases differ"
            continue
        forward[id(old)], backward[id(new)] = new, old
        where = f"line {new.start_mark.line + 1}"
        if type(old) is not type(new) or old.tag != new.tag or old.anchor != new.anchor:
            return f"{where}: a node changed its type, tag or anchor"
        if isinstance(old, ScalarNode) and isinstance(new, ScalarNode):
            expected = targets.get(id(old), old.value)
            if new.value != expected or old.style != new.style:
                return f"{where}: {old.value!r} became {new.value!r}"
            continue
        if not isinstance(old, CollectionNode) or not isinstance(new, CollectionNode):
            return f"{where}: a node changed its type"
        if len(old.value) != len(new.value) or old.flow_style != new.flow_style:
            return f"{where}: a collection changed shape"
        if isinstance(old, MappingNode):
            for (old_key, old_value), (new_key, new_value) in zip(
                old.value, new.value, strict=True
            ):
                pairs.extend(((old_key, new_key), (old_value, new_value)))
        else:
            pairs.extend(zip(old.value, new.value, strict=True))
    return None


def _write_atomically(root: Path, file: str, result: _Rendered) -> None:
    """Temp file in the same directory, fsync, keep the mode, ``os.replace``, fsync the dir.

    A reader (git) sees either the old or the new file, never half of one, even on a crash.
    """
    path = _path(root, file)
    try:
        current = path.read_bytes()
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError as exc:
        raise ManifestError(f"{file}: cannot be read ({exc.strerror}); {_UNTOUCHED}") from exc
    if current != result.original:
        raise ManifestError(
            f"{file}: changed while Automator was editing it: scan again; {_UNTOUCHED}"
        )
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".automator-tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(result.new)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise ManifestError(
            f"{file}: could not be written ({exc.strerror}): check permissions and free "
            f"space; {_UNTOUCHED}"
        ) from exc
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable; some filesystems cannot open directories, which is fine."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
