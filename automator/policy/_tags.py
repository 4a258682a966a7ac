"""What every strategy does to a tag before ranking it: drop artefacts, ignore, filter, extract.

The filter and extract annotations are written for Flux, whose regexes are Go RE2; the
only RE2 spelling Python rejects that people actually use is the named group
``(?<name>…)``, so it is translated. Everything here is checked when the policy is built,
so a bad annotation fails before any registry call.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from automator.errors import PolicyError
from automator.policy._glob import compile_glob
from automator.policy._types import Verdict

__all__ = ["TagFilter", "compile_regex", "is_artefact_tag"]

_ARTEFACT_SUFFIXES = (".sig", ".att", ".sbom")
_ARTEFACT_PREFIX = "sha256-"

_GO_NAMED_GROUP = re.compile(r"\(\?<([A-Za-z_][A-Za-z0-9_]*)>")
_TEMPLATE_REF = re.compile(r"\$(?:\{(?P<braced>[^}]*)\}|(?P<bare>[A-Za-z0-9_]+)|(?P<dollar>\$))")
_NAME = re.compile(r"[0-9]+|[A-Za-z_][A-Za-z0-9_]*")


def is_artefact_tag(tag: str) -> bool:
    """Whether the tag is a cosign signature, attestation or SBOM, never a deployable image."""
    return tag.endswith(_ARTEFACT_SUFFIXES) or tag.startswith(_ARTEFACT_PREFIX)


@dataclass(frozen=True)
class TagFilter:
    """Artefact exclusion, ignore globs, the filter regex and the extract template.

    ``screen`` gives what the strategy ranks for a tag, or the verdict that rejects it.
    """

    pattern: re.Pattern[str] | None = None
    template: tuple[str | int, ...] | None = None
    source: str = ""
    """The filter as written (Go spelling), for explanations."""
    ignore: tuple[tuple[str, re.Pattern[str]], ...] = ()
    """The ignore globs as written, each with its compiled form."""
    ignore_any: re.Pattern[str] | None = None
    """All ignore globs in one alternation, so that screening costs one match per tag."""

    @classmethod
    def compile(
        cls, filter: str | None, extract: str | None, ignore: Sequence[str] = ()
    ) -> TagFilter:
        """Validate and compile the annotations; raise ``PolicyError`` saying what to fix."""
        if isinstance(ignore, str):
            raise TypeError("ignore must be a sequence of globs, not one string")
        globs = tuple(
            (glob.strip(), _compile_ignore(glob, i, len(ignore))) for i, glob in enumerate(ignore)
        )
        ignore_any = (
            re.compile("|".join(f"(?:{c.pattern})" for _, c in globs), re.DOTALL) if globs else None
        )
        if filter is None:
            if extract is not None:
                raise PolicyError(
                    f"extract {extract!r} is set without a filter; extract expands the filter's "
                    "groups. Fix: add a filter regex with named groups, e.g. "
                    "'^main-(?P<ts>[0-9]+)$' with extract '$ts'."
                )
            return cls(ignore=globs, ignore_any=ignore_any)
        pattern = compile_regex(filter, "filter")
        template = None if extract is None else _parse_template(extract, pattern, filter)
        return cls(pattern, template, filter, globs, ignore_any)

    def value_of(self, tag: str) -> str | None:
        """The string the strategy ranks for ``tag``, or ``None`` when the tag is rejected."""
        value = self.screen(tag)
        return value if isinstance(value, str) else None

    def screen(self, tag: str) -> str | Verdict:
        """The string the strategy ranks for ``tag``, or the verdict that rejects the tag."""
        if tag.endswith(_ARTEFACT_SUFFIXES) or tag.startswith(_ARTEFACT_PREFIX):
            return Verdict(
                tag,
                "excluded",
                f"{tag} is a signature, attestation or SBOM artefact "
                "(*.sig, *.att, *.sbom, sha256-*), never a deployable image.",
            )
        if self.ignore_any is not None and self.ignore_any.fullmatch(tag):
            glob = next(text for text, glob in self.ignore if glob.fullmatch(tag))
            return Verdict(tag, "ignored", f"{tag} matches the ignore glob {glob!r}.")
        if self.pattern is None:
            return tag
        match = self.pattern.search(tag)
        if match is None:
            return Verdict(tag, "filtered", f"{tag} does not match the filter {self.source!r}.")
        if self.template is None:
            return tag
        return "".join(
            part if isinstance(part, str) else (match.group(part) or "") for part in self.template
        )


def _compile_ignore(glob: str, index: int, count: int) -> re.Pattern[str]:
    if not glob.strip():
        raise PolicyError(
            f"ignore glob {index + 1} of {count} is empty. Fix: remove the empty entry from "
            "the comma-separated ignore-tags list, e.g. 'latest, *-dev, pr-*'."
        )
    return compile_glob(glob.strip(), "ignore glob")


def compile_regex(source: str, what: str) -> re.Pattern[str]:
    """Compile a Go-spelled regex (``what`` names it in errors: ``filter``, ``regex``)."""
    try:
        return re.compile(_translate_go_regex(source))
    except re.error as exc:
        raise PolicyError(
            f"{what} {source!r} is not a valid regular expression ({exc.msg} at position "
            f"{exc.pos}). Fix: correct the regex, e.g. '^v?[0-9]+\\.[0-9]+\\.[0-9]+$'."
        ) from exc


def _translate_go_regex(source: str) -> str:
    """Rewrite Go's ``(?<name>`` to Python's ``(?P<name>``, outside escapes and classes."""
    out: list[str] = []
    i, in_class = 0, False
    while i < len(source):
        char = source[i]
        if char == "\\":
            out.append(source[i : i + 2])
            i += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            # A ']' right after '[' or '[^' is a literal member, not the end of the class.
            for lead in ("^]", "]"):
                if source.startswith(lead, i + 1):
                    out.append(char + lead)
                    i += 1 + len(lead)
                    break
            else:
                out.append(char)
                i += 1
            continue
        elif named := _GO_NAMED_GROUP.match(source, i):
            out.append(f"(?P<{named[1]}>")
            i = named.end()
            continue
        out.append(char)
        i += 1
    return "".join(out)


def _parse_template(extract: str, pattern: re.Pattern[str], source: str) -> tuple[str | int, ...]:
    """Split ``$name``/``${name}``/``$1``/``${1}``/``$$`` into literals and group numbers."""
    if not extract:
        raise PolicyError(
            "extract is empty. Fix: remove it, or name the filter's groups, e.g. '$ts'."
        )
    parts: list[str | int] = []
    pos = 0
    for ref in [*_TEMPLATE_REF.finditer(extract), None]:
        literal = extract[pos : len(extract) if ref is None else ref.start()]
        if "$" in literal:
            raise PolicyError(
                f"extract {extract!r} has a '$' that names no group. Fix: write '$name', "
                "'${name}', '$1' or '${1}', and '$$' for a literal dollar."
            )
        parts.append(literal)
        if ref is None:
            break
        pos = ref.end()
        if ref["dollar"]:
            parts.append("$")
        else:
            parts.append(
                _group_number(ref["braced"] or ref["bare"] or "", extract, pattern, source)
            )
    return tuple(part for part in parts if part != "")


def _group_number(name: str, extract: str, pattern: re.Pattern[str], source: str) -> int:
    if _NAME.fullmatch(name):
        if name.isdigit() and int(name) <= pattern.groups:
            return int(name)
        if name in pattern.groupindex:
            return pattern.groupindex[name]
    named = ", ".join(f"${g}" for g in pattern.groupindex) or "none"
    raise PolicyError(
        f"extract {extract!r} refers to group {name!r}, which filter {source!r} does not have "
        f"(named groups: {named}; numbered groups: $0..${pattern.groups}). Fix: name a group "
        "the filter defines, e.g. filter '(?P<ts>[0-9]+)' with extract '$ts'; write '${1}x' "
        "rather than '$1x'."
    )
