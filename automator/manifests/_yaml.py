"""YAML access that never loses a byte: decoding, composing node graphs, walking them.

We work on ruamel's *composed* node graph rather than on constructed Python objects. A node
carries ``start_mark``/``end_mark`` whose ``index`` is the character offset in the decoded
text we handed in, so locating a value needs no line/column arithmetic (ruamel counts a lone
``\\r`` as a line break but ``\\x85`` not, CRLF as one; offsets sidestep all of that). Nodes
also keep the scalar style (plain, ``'``, ``"``), the anchor name and the tag, which is all
the surgical rewrite needs; constructing objects would only cost time.

The text is decoded by us (UTF-8, optional BOM remembered and re-emitted) and handed to
ruamel as ``str``, so ruamel never normalises newlines and its offsets are offsets into
exactly the text we splice.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from automator.errors import ManifestError

__all__ = [
    "STR_TAG",
    "Composer",
    "Loc",
    "Problem",
    "Source",
    "decode",
    "format_path",
    "items",
    "mapping",
    "scalar",
    "screen_documents",
]

BOM = b"\xef\xbb\xbf"
STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"


class Problem(Exception):
    """Something wrong inside one document; the caller adds file and object to the message."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


@dataclass(frozen=True)
class Source:
    """A manifest's text exactly as stored: only the BOM is set aside, and put back on encode."""

    path: str
    text: str
    bom: bool

    def encode(self, text: str) -> bytes:
        """Bytes for ``text`` in this file's encoding (UTF-8, BOM kept when there was one)."""
        return (BOM if self.bom else b"") + text.encode("utf-8")


def decode(path: str, data: bytes) -> Source:
    """Decode strictly as UTF-8 without touching newlines (no universal-newline reading)."""
    bom = data.startswith(BOM)
    try:
        text = data[len(BOM) :].decode("utf-8") if bom else data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(
            f"{path}: not UTF-8 (byte {exc.start}): save the file as UTF-8; "
            "it is left untouched and the other files are still processed"
        ) from exc
    return Source(path=path, text=text, bom=bom)


class Composer:
    """One ruamel instance, reused for every file of one scan or render call.

    Not shared between calls: ruamel parsers keep state, and a per-call instance keeps the
    package free of module-level mutable state (and safe to use from several threads).
    The pure-Python *safe* pipeline is used: we only compose, so the round-trip constructor
    buys nothing, and its comment bookkeeping makes composing about 25% slower.
    """

    def __init__(self) -> None:
        self._yaml = YAML(typ="safe", pure=True)
        # Redefining an anchor is valid YAML; ruamel would emit a warning for it.
        self._yaml.composer.warn_double_anchors = False

    def compose(self, source: Source, text: str | None = None) -> list[Node]:
        """Every document's root node, in order; a syntax error becomes a ManifestError.

        ``text`` (same length and lines as ``source.text``) is parsed instead when given.
        """
        with _reporting(source.path):
            return list(self._yaml.compose_all(source.text if text is None else text))

    def construct(self, node: Node) -> object:
        """The plain Python value of a composed node (dicts, lists, str, int, bool, ...).

        Only ImagePolicy documents are constructed, to validate them against the JSON Schema.
        """
        return self._yaml.constructor.construct_document(node)

    def resolve_plain(self, value: str) -> str:
        """The tag a plain (unquoted) scalar reading ``value`` resolves to, e.g. ``1.2`` is a
        float: the rewrite uses it to explain why a new value cannot be written unquoted."""
        return str(self._yaml.resolver.resolve(ScalarNode, value, (True, False)))

    def check_syntax(self, source: Source) -> None:
        """Raise ManifestError when the file is not valid YAML; build nothing.

        Used for files that cannot hold an automated workload: DESIGN §5 wants every file
        that does not parse reported, and running only the parser (no composition) keeps
        that check at a fraction of a full parse's cost.
        """
        with _reporting(source.path):
            for _ in self._yaml.parse(source.text):
                pass


@contextlib.contextmanager
def _reporting(path: str) -> Iterator[None]:
    """Turn ruamel's parse failures into one ManifestError naming the file and the fix."""
    try:
        yield
    except YAMLError as exc:
        raise ManifestError(_syntax_message(path, exc)) from exc
    except RecursionError as exc:
        raise ManifestError(
            f"{path}: nested too deeply to parse: simplify the file; "
            "it is left untouched and the other files are still processed"
        ) from exc


# A line starting with "---" or "..." (then a blank or the end) always delimits documents:
# YAML forbids such lines inside any scalar, so finding them textually is exact.
_MARKER = re.compile(r"^(?:---|\.\.\.)(?=[ \t\r\n]|\Z)", re.MULTILINE)
_NOT_A_BREAK = re.compile(r"[^\r\n]")


def screen_documents(text: str, tokens: Sequence[str]) -> str:
    """Blank out (with spaces) every ``---`` document that mentions none of ``tokens``.

    Parsing is the whole cost of a scan, and a workload is often filed with Services and
    large ConfigMaps. A blanked document still parses as an (empty) document, and every
    character keeps its offset and line, so document indexes, marks and line numbers are
    exactly those of the real text. Only the scan uses this; render parses the real text.
    """
    marks = [m for m in _MARKER.finditer(text) if m.group() == "---"]
    if not marks:
        return text
    parts: list[str] = []
    cursor = 0
    for mark in marks:
        end_match = _MARKER.search(text, mark.end())
        end = end_match.start() if end_match is not None else len(text)
        body = text[mark.end() : end]
        parts.append(text[cursor : mark.end()])
        parts.append(body if any(t in body for t in tokens) else _NOT_A_BREAK.sub(" ", body))
        cursor = end
    parts.append(text[cursor:])
    return "".join(parts)


_SIMPLE_KEY = re.compile(r"[A-Za-z0-9_$/-]+")


def format_path(segments: Sequence[str | int]) -> str:
    """A YAML key path without spaces, e.g. ``spec.values.image.tag`` or ``images[0].newTag``.

    It lands in messages and commit trailers (which split on spaces), so a key that is not
    a simple word (dots, spaces, ...) is written as a JSON string in brackets with spaces
    escaped: ``metadata.annotations["a.b/c"]``, ``x["a\\u0020b"]``.
    """
    parts: list[str] = []
    for segment in segments:
        if isinstance(segment, int):
            parts.append(f"[{segment}]")
        elif _SIMPLE_KEY.fullmatch(segment):
            parts.append(f".{segment}" if parts else segment)
        else:
            quoted = json.dumps(segment).replace(" ", "\\u0020")
            parts.append(f"[{quoted}]")
    return "".join(parts)


def _syntax_message(path: str, exc: YAMLError) -> str:
    where = path
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        if mark is not None:
            where = f"{path}:{mark.line + 1}"
        detail = " ".join(part for part in (exc.context, exc.problem) if part) or detail
    return (
        f"{where}: not valid YAML ({detail}): fix the syntax; "
        "the file is left untouched and the other files are still processed"
    )


@dataclass(frozen=True)
class Loc:
    """A node as reached from a document root.

    ``direct`` is False when the path went through an alias or a merge key (``<<``): the
    node is then written somewhere else and shared, so it must not be edited from here.
    ``via`` is the first shared node on the path (it carries the anchor, for messages), and
    ``line`` is the 1-based line where the value is *used* (its key's line), for messages.
    """

    node: Node
    direct: bool
    line: int
    via: Node | None = None


def _step(parent: Loc, child: Node, cursor: int, line: int) -> Loc:
    """Locate ``child`` of ``parent``; it is shared if it starts before where it is used.

    An alias refers to a node that was completely written earlier in the stream, so its
    start offset lies before the position of the alias; a node written in place starts at
    or after ``cursor`` (the end of its key, or of the previous sequence item).
    """
    here = child.start_mark.index >= cursor
    if parent.direct and here:
        return Loc(child, True, line)
    return Loc(child, False, line, parent.via if parent.via is not None else child)


def scalar(loc: Loc | None) -> str | None:
    """The text of a scalar node (any tag), else None."""
    if loc is not None and isinstance(loc.node, ScalarNode):
        value = loc.node.value
        return value if isinstance(value, str) else None
    return None


def mapping(loc: Loc | None) -> dict[str, Loc] | None:
    """Scalar-keyed entries of a mapping node, merge keys (``<<``) resolved; else None.

    Own keys win over merged ones, earlier merged mappings over later ones (YAML merge
    semantics). A key written twice is ambiguous (and invalid YAML), so it is a Problem.
    """
    if loc is None or not isinstance(loc.node, MappingNode):
        return None
    own: dict[str, Loc] = {}
    merged: list[Loc] = []
    cursor = loc.node.start_mark.index
    for key, value in loc.node.value:
        line = key.start_mark.line + 1
        child = _step(loc, value, max(cursor, key.end_mark.index), line)
        if child.direct:
            cursor = max(cursor, value.end_mark.index)
        if key.tag == _MERGE_TAG:
            merged.append(child)
            continue
        if not isinstance(key, ScalarNode):
            continue
        if key.value in own:
            raise Problem(f"key {key.value!r} is written twice: remove one of them", line)
        own[key.value] = child
    for source in merged:
        for part in items(source) if isinstance(source.node, SequenceNode) else [source]:
            for name, value_loc in (mapping(part) or {}).items():
                # A merged value is used where the merge key is: report that line.
                own.setdefault(name, replace(value_loc, line=source.line))
    return own


def items(loc: Loc | None) -> list[Loc]:
    """The items of a sequence node (empty for anything else), each with its own ``direct``."""
    if loc is None or not isinstance(loc.node, SequenceNode):
        return []
    result: list[Loc] = []
    cursor = loc.node.start_mark.index
    for child in loc.node.value:
        child_loc = _step(loc, child, cursor, _line_of(child, loc))
        if child_loc.direct:
            cursor = max(cursor, child.end_mark.index)
        result.append(child_loc)
    return result


def _line_of(child: Node, parent: Loc) -> int:
    """Where a sequence item is used: its own line when written here, else the parent's."""
    if child.start_mark.index >= parent.node.start_mark.index:
        return int(child.start_mark.line) + 1
    return parent.line
