"""Where exactly an image value's characters are, and whether a new value fits there."""

from __future__ import annotations

from dataclasses import dataclass

from ruamel.yaml.nodes import Node

from automator.manifests._yaml import Problem

__all__ = ["Span", "check_new", "value_span"]

_LINE_BREAKS = frozenset("\r\n\x85\u2028\u2029")


@dataclass(frozen=True)
class Span:
    """``text[start:end]`` is the value as written, quotes included; ``quote`` is ``'``, ``"``
    or empty for a plain scalar."""

    start: int
    end: int
    quote: str


def value_span(text: str, node: Node) -> Span:
    """The characters of a single-line scalar, proven by comparing them with its value.

    The node's ``end_mark`` is the end of the scalar token itself (its ``start_mark`` may be
    an anchor or tag in front of it, and a plain scalar's end excludes trailing blanks and
    comments). Counting back the length of the value as it must be written gives the start;
    if the text there is not exactly that, the value uses escapes, folding or several lines,
    and we refuse rather than guess.
    """
    style = getattr(node, "style", None) or ""
    if style in ("|", ">"):
        raise Problem(
            "the image is a block scalar (| or >), which Automator does not edit: "
            "write it on one line, e.g. `image: repo/app:1.0`"
        )
    value = str(node.value)
    raw = f"{style}{value}{style}"
    end = int(node.end_mark.index)
    start = end - len(raw)
    if (
        start < int(node.start_mark.index)
        or text[start:end] != raw
        or not value
        or _LINE_BREAKS.intersection(raw)
    ):
        raise Problem(
            "the image is written across several lines or with escape sequences, which "
            "Automator does not edit: write it on one line without escapes"
        )
    return Span(start, end, style)


def check_new(new: str, quote: str) -> None:
    """Reject values that cannot be written literally in the existing quoting style.

    Changing the style would change bytes the user chose; a real image reference never
    needs it, so a value that would is a bug upstream and is reported, not written.
    """
    bad = (
        not new
        or new != new.strip()
        or _LINE_BREAKS.intersection(new)
        or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in new)
        or (quote == "'" and "'" in new)
        or (quote == '"' and ("\\" in new or '"' in new))
        or (not quote and (" #" in new or ": " in new or "\t" in new))
    )
    if bad:
        style = {"'": "single-quoted", '"': "double-quoted"}.get(quote, "plain")
        raise Problem(
            f"the new image {new!r} cannot be written as a {style} value without "
            "changing the file's quoting: check the image reference"
        )
