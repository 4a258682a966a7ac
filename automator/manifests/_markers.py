"""Marker comments (Flux v2 style): ``value  # {"$imagepolicy": "REF"}`` on any YAML field.

Grammar. A marker is a comment that follows a single-line scalar value on the same line
(blanks, then ``#``) and whose text is exactly a JSON object with one key,
``{"$imagepolicy": "REF"}``. REF is ``[NAMESPACE:]NAME[:PART]`` with PART one of ``tag``,
``name``, ``digest`` (no PART: the value is a whole image reference). Two segments are
``NAME:PART`` when the second is a PART, else ``NAMESPACE:NAME``. A line that is only a
comment is a commented-out line, never a marker; ``$imagepolicy`` inside a string value
is text, never a marker. Any other ``$imagepolicy`` comment (malformed JSON, not right
after a value, after a key whose value is a mapping, ...) is reported, not ignored: a
marker that silently does nothing is the worst outcome for the user.

Shared by scan and render, so that render finds a marker field by exactly the scan's
rules: the same walk, the same key path.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from automator.manifests._annotations import locked
from automator.manifests._span import value_span
from automator.manifests._yaml import STR_TAG, Loc, Problem, format_path, mapping, scalar

__all__ = [
    "KEY",
    "PARTS",
    "Found",
    "Owner",
    "Ref",
    "check_marker_value",
    "find",
    "orphans",
    "owner",
    "parse_ref",
]

KEY = "$imagepolicy"
PARTS = ("tag", "name", "digest")
_EXAMPLE = (
    '# {"$imagepolicy": "NAME"} (or "NAME:tag", "NAME:name", "NAME:digest", '
    '"NAMESPACE:NAME", "NAMESPACE:NAME:tag")'
)
# After the end of a scalar token: blanks, then a comment up to the end of the line.
_COMMENT = re.compile(r"[ \t]+#([^\r\n]*)")
_SEGMENT = re.compile(r"[^\s:]+")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[A-Za-z0-9=_-]+")


@dataclass(frozen=True)
class Ref:
    """A parsed REF: which ImagePolicy, and which part of the image the value holds."""

    namespace: str | None
    name: str
    part: str
    """``image`` (the whole reference), ``tag``, ``name`` or ``digest``."""
    text: str
    """The REF as written in the marker."""

    @property
    def policy(self) -> str:
        """The ImagePolicy as written in messages: ``NAME`` or ``NAMESPACE:NAME``."""
        return f"{self.namespace}:{self.name}" if self.namespace else self.name


def parse_ref(text: str) -> Ref:
    """``[NAMESPACE:]NAME[:PART]``; Problem with the fix when it is not that."""
    segments = text.split(":")
    if len(segments) > 3 or not all(_SEGMENT.fullmatch(s) for s in segments):
        raise Problem(
            f"marker reference {text!r} is not [NAMESPACE:]NAME[:PART] (non-empty names "
            f"without blanks, at most two colons): write it as {_EXAMPLE}"
        )
    if len(segments) == 3:
        namespace, name, part = segments
        if part not in PARTS:
            raise Problem(
                f"marker reference {text!r} ends in {part!r}, which is not a part: use "
                f"tag, name or digest (or nothing for the whole image), as in {_EXAMPLE}"
            )
        return Ref(namespace, name, part, text)
    if len(segments) == 2:
        first, second = segments
        if second in PARTS:
            return Ref(None, first, second, text)
        return Ref(first, second, "image", text)
    return Ref(None, segments[0], "image", text)


@dataclass(frozen=True)
class Owner:
    """The document a marker is in, as named in fields, messages and commit trailers."""

    kind: str
    namespace: str | None
    name: str
    line: int
    """Line of ``metadata`` (of the document's start without one), for messages."""
    locked: bool | str
    """The document's ``locked`` annotation: markers of a locked document change nothing.
    A string is a problem message (a value other than "true"/"false")."""

    @property
    def ref(self) -> str:
        """``Kind/namespace/name`` (``-`` for no namespace)."""
        return f"{self.kind}/{self.namespace or '-'}/{self.name}"


def owner(file: str, root: Node) -> Owner:
    """Kind and metadata of a document, with defaults for documents that have none.

    A Helm values file or a Kustomization has no ``metadata.name``: ``kind`` is then what
    it says (``-`` when nothing), ``name`` the file's stem, so trailers stay readable and
    never hold a blank. Raises Problem for a mapping that is ambiguous (duplicate keys).
    """
    line = int(root.start_mark.line) + 1
    top = mapping(Loc(root, True, line)) if isinstance(root, MappingNode) else None
    top = top or {}
    kind = scalar(top.get("kind")) or "-"
    metadata_loc = top.get("metadata")
    metadata = mapping(metadata_loc) or {}
    name = scalar(metadata.get("name")) or PurePosixPath(file).stem
    namespace = scalar(metadata.get("namespace")) or None
    annotations = {k: scalar(v) for k, v in (mapping(metadata.get("annotations")) or {}).items()}
    kind, name = (_no_blanks(kind), _no_blanks(name))
    return Owner(
        kind=kind,
        namespace=_no_blanks(namespace) if namespace else None,
        name=name,
        line=metadata_loc.line if metadata_loc is not None else line,
        locked=locked(annotations),
    )


def _no_blanks(text: str) -> str:
    return "_".join(text.split()) or "-"


@dataclass(frozen=True)
class Found:
    """A scalar value followed by a ``$imagepolicy`` comment (not yet proven well-formed)."""

    path: str
    """Key path of the value in its document, see :func:`format_path`."""
    node: ScalarNode
    comment: str
    """The comment's text after ``#``, as written."""
    comment_start: int
    line: int
    """1-based line of the value (and of the marker)."""

    def ref(self) -> Ref:
        """The marker's REF; Problem when the comment is not exactly a marker."""
        text = self.comment.strip()
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise Problem(
                f"the marker comment {text!r} is not valid JSON ({exc.msg}, column "
                f"{exc.colno}): write it exactly as {_EXAMPLE}"
            ) from None
        if not isinstance(data, dict) or set(data) != {KEY} or not isinstance(data[KEY], str):
            raise Problem(
                f"the marker comment {text!r} is not a JSON object with the single string "
                f"key {KEY!r}: write it exactly as {_EXAMPLE}"
            )
        return parse_ref(data[KEY])


def find(text: str, root: Node) -> list[Found]:
    """Every scalar value of the document followed by a ``$imagepolicy`` comment, in order.

    The walk is iterative and visits each node once, in document order, so a node shared
    through an anchor is seen where it is written (the anchor), never through an alias: an
    alias is written elsewhere and its comment, if any, is not the value's.
    """
    found: list[Found] = []
    seen: set[int] = set()
    stack: list[tuple[Node, tuple[str | int, ...]]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, ScalarNode):
            hit = _COMMENT.match(text, int(node.end_mark.index)) if path else None
            if hit is not None and KEY in hit.group(1):
                found.append(
                    Found(
                        path=format_path(path),
                        node=node,
                        comment=hit.group(1),
                        comment_start=hit.start(1) - 1,
                        line=int(node.end_mark.line) + 1,
                    )
                )
        elif isinstance(node, MappingNode):
            children: list[tuple[Node, tuple[str | int, ...]]] = []
            for key, value in node.value:
                if isinstance(key, ScalarNode):
                    children.append((value, (*path, str(key.value))))
            stack.extend(reversed(children))
        elif isinstance(node, SequenceNode):
            stack.extend(reversed([(item, (*path, i)) for i, item in enumerate(node.value)]))
    return found


def orphans(text: str, documents: list[Node], found: list[Found]) -> list[int]:
    """Offsets of ``$imagepolicy`` comments that no value claims (reported by the scan).

    Not orphans: markers claimed by a value, text inside a scalar (a ConfigMap documenting
    markers), and commented-out lines (the line's first non-blank character is ``#``).
    """
    claimed = [(f.comment_start, f.comment_start + len(f.comment) + 1) for f in found]
    scalars = _scalars_mentioning_markers(documents)
    result: list[int] = []
    for match in re.finditer(re.escape(KEY), text):
        at = match.start()
        if any(start <= at < end for start, end in claimed):
            continue
        if any(start <= at < end for start, end in scalars):
            continue
        line_start = max(text.rfind("\n", 0, at), text.rfind("\r", 0, at)) + 1
        if text[line_start:at].lstrip(" \t").startswith("#"):
            continue
        result.append(at)
    return result


def _scalars_mentioning_markers(documents: list[Node]) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    seen: set[int] = set()
    stack = list(documents)
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, ScalarNode):
            if KEY in str(node.value):
                spans.append((int(node.start_mark.index), int(node.end_mark.index)))
        elif isinstance(node, MappingNode):
            for key, value in node.value:
                stack.extend((key, value))
        elif isinstance(node, SequenceNode):
            stack.extend(node.value)
    return spans


def _check_part(part: str, value: str) -> None:
    """A marker for one part must sit on a value that looks like that part.

    Catches the marker put on the wrong line (``:tag`` on the ``repository:`` line) before
    the engine writes a tag over a repository name.
    """
    if part == "tag" and not _TAG.fullmatch(value):
        raise Problem(
            f"the marker says this value is a tag, but {value!r} is not one: put the "
            "marker with :tag on the tag's line (or use :name / :digest / no part)"
        )
    if part == "digest" and not _DIGEST.fullmatch(value):
        raise Problem(
            f"the marker says this value is a digest, but {value!r} is not one "
            "(algorithm:hex, e.g. sha256:...): put the marker with :digest on the digest's line"
        )


def check_marker_value(text: str, node: ScalarNode, part: str) -> None:
    """A marker's value must be a single-line string that looks like the part it claims."""
    if node.tag != STR_TAG:
        kind = str(node.tag).rsplit(":", 1)[-1]
        raise Problem(
            f"the value {node.value!r} reads as a YAML {kind}, not a string, so tools would "
            f'not see the tag as written: quote it (e.g. `tag: "{node.value}"`)'
        )
    value_span(text, node)
    _check_part(part, str(node.value))
