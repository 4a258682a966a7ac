"""Masterminds/semver v3 constraint ranges, and strict parsing of image tags as versions.

Flux and most GitOps users write ranges in the Masterminds grammar (``^1.2``, ``>=1.0.0-0``,
``1.2.x``, ``1.2 - 1.4.5``, ``>=1 <2 || 3.x``). python-semver does not implement that
grammar, so it lives here. Semantics follow Masterminds v3 (``constraints.go`` and its
test tables), including its partial-version rules (``<=1.2`` admits every ``1.2.z``, ``>1.2``
needs ``1.3.0`` or more, ``<1.x`` means ``<1.0.0``) and its group-level prerelease rule: a
prerelease version satisfies an AND group only if some constraint of that group names a
prerelease. One documented deviation: ``^*`` (caret on a wildcard major) admits every
version as the upstream documentation says, where upstream code admits only ``0.0.0``
(Masterminds/semver issue #317).

Tags are parsed strictly (``X.Y.Z`` with an optional leading ``v``, ``-prerelease`` and
``+build``, no leading zeros): registries are full of ``latest``, ``1.2`` and ``sha-…`` tags
and a policy must skip them, never guess what they mean.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol, TypeAlias

import semver

from automator.errors import PolicyError

__all__ = [
    "MAX_RANGE_GROUPS",
    "MAX_RANGE_LENGTH",
    "Range",
    "TagVersion",
    "VersionKey",
    "VersionLike",
    "parse_tag",
    "parse_version",
    "version_key",
]

MAX_RANGE_LENGTH = 512
"""Longest range accepted (Masterminds' limit): a range is written by a person."""

MAX_RANGE_GROUPS = 32
"""Most ``||`` alternatives accepted (Masterminds' limit)."""

_NUM = r"(?:0|[1-9][0-9]*)"
_PRE_ID = r"(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
_BUILD = r"[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*"
_TAG_RE = re.compile(
    rf"v?(?P<major>{_NUM})\.(?P<minor>{_NUM})\.(?P<patch>{_NUM})"
    rf"(?:-(?P<pre>{_PRE_ID}(?:\.{_PRE_ID})*))?"
    rf"(?:\+(?P<build>{_BUILD}))?"
)

# Go's regexp \s is ASCII [ \t\n\f\r]; Python's \s also matches \v and Unicode spaces.
_WS = "[ \t\n\f\r]"
_SEG = r"[0-9]+|[xX*]"
_ATOM_RE = re.compile(
    rf"(?P<op>!=|>=|=>|<=|=<|~>|[=<>~^])?{_WS}*"
    rf"(?P<version>v?(?P<major>{_SEG})(?:\.(?P<minor>{_SEG}))?(?:\.(?P<patch>{_SEG}))?"
    rf"(?:-(?P<pre>{_BUILD}))?(?:\+{_BUILD})?)"
)
_WS_RE = re.compile(f"{_WS}*")
_HYPHEN_RE = re.compile(f"{_WS}+-{_WS}+")
_OP_ALIASES = {"": "=", "=>": ">=", "=<": "<=", "~>": "~"}

_FIX = (
    "Fix: write constraints such as '>=1.2.3', '^1.2', '~1.2.0', '1.2.x', '1.2 - 1.4.5', "
    "joined by spaces or commas (AND) and '||' (OR)."
)

VersionKey: TypeAlias = tuple[int, int, int, int, tuple[tuple[int, int, str], ...]]


class VersionLike(Protocol):
    """What ranges read of a version: ``semver.Version`` and ``TagVersion`` both fit."""

    @property
    def major(self) -> int: ...
    @property
    def minor(self) -> int: ...
    @property
    def patch(self) -> int: ...
    @property
    def prerelease(self) -> str | None: ...


class TagVersion(NamedTuple):
    """A parsed tag version without ``semver.Version``'s validation cost (hot path)."""

    major: int
    minor: int
    patch: int
    prerelease: str | None
    build: str | None


def parse_version(tag: str) -> tuple[TagVersion, VersionKey] | None:
    """Like ``parse_tag``, plus the sort key, cheaply: what ranking 100,000 tags needs."""
    match = _TAG_RE.fullmatch(tag)
    if match is None:
        return None
    major_s, minor_s, patch_s, pre, build = match.groups()  # the five named groups, in order
    major, minor, patch = int(major_s), int(minor_s), int(patch_s)
    key: VersionKey = (
        (major, minor, patch, 1, ()) if pre is None else _key(major, minor, patch, pre)
    )
    return TagVersion(major, minor, patch, pre, build), key


def parse_tag(tag: str) -> semver.Version | None:
    """The version a tag names, or ``None`` when the tag is not strict ``[v]X.Y.Z[-pre][+build]``.

    ``None`` rather than an exception because most registry tags are not versions and that is
    normal, not an error.
    """
    match = _TAG_RE.fullmatch(tag)
    if match is None:
        return None
    return semver.Version(
        int(match["major"]),
        int(match["minor"]),
        int(match["patch"]),
        prerelease=match["pre"],
        build=match["build"],
    )


def version_key(version: VersionLike) -> VersionKey:
    """A sort key that orders versions by SemVer 2 precedence and ignores build metadata.

    A release sorts above its prereleases; prerelease identifiers compare numerically when
    numeric, lexically otherwise, numeric below alphanumeric, and a shorter prefix first.
    """
    return _key(version.major, version.minor, version.patch, version.prerelease or "")


def _key(major: int, minor: int, patch: int, pre: str) -> VersionKey:
    if not pre:
        return (major, minor, patch, 1, ())
    ids = tuple(
        (0, int(p), "") if p.isascii() and p.isdigit() else (1, 0, p) for p in pre.split(".")
    )
    return (major, minor, patch, 0, ids)


@dataclass(frozen=True)
class _Constraint:
    """One ``OP VERSION`` term; wildcard or missing parts make it "dirty" as in Masterminds."""

    op: str
    major: int
    minor: int
    patch: int
    pre: str
    major_dirty: bool
    minor_dirty: bool
    patch_dirty: bool
    key: VersionKey = field(init=False, repr=False, compare=False)
    predicate: Callable[[_Constraint, VersionLike, VersionKey], bool] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        # Both precomputed: ``allows`` runs once per tag and term, 100,000s of times.
        object.__setattr__(self, "key", _key(self.major, self.minor, self.patch, self.pre))
        object.__setattr__(self, "predicate", _PREDICATES[self.op])

    @property
    def dirty(self) -> bool:
        return self.major_dirty or self.minor_dirty or self.patch_dirty

    def allows(self, v: VersionLike, vkey: VersionKey) -> bool:
        """Whether ``v`` satisfies this term, prerelease admission already decided by the group."""
        return self.predicate(self, v, vkey)


def _eq(c: _Constraint, v: VersionLike, vkey: VersionKey) -> bool:
    # A wildcard or partial version ("1.2", "1.x", "*") means "~" rather than "equal".
    return _tilde(c, v, vkey) if c.dirty else vkey == c.key


def _ne(c: _Constraint, v: VersionLike, vkey: VersionKey) -> bool:
    if not c.dirty:
        return vkey != c.key
    if v.major != c.major:
        return True
    if c.minor_dirty:
        return False
    if v.minor != c.minor:
        return True
    if c.patch_dirty:
        # "!=4.1-alpha" excludes 4.1.z-alpha only; "!=4.1" excludes all of 4.1.z.
        return (v.prerelease or "") != c.pre
    # Only "!=*" gets here: upstream treats it as "!=0.0.0".
    return vkey != c.key


def _gt(c: _Constraint, v: VersionLike, vkey: VersionKey) -> bool:
    if not c.dirty or c.major_dirty:
        return vkey > c.key  # upstream reads ">*" as ">0.0.0"
    if v.major != c.major:
        return v.major > c.major
    if c.minor_dirty:
        return False  # ">1" needs 2.0.0 or more
    return v.minor > c.minor  # ">1.2" needs 1.3.0 or more


def _lt(c: _Constraint, v: VersionLike, vkey: VersionKey) -> bool:
    return vkey < c.key  # "<1.2" and "<1.2.x" both mean "<1.2.0"


def _ge(c: _Constraint, v: VersionLike, vkey: VersionKey) -> bool:
    return vkey >= c.key


def _le(c: _Constraint, v: VersionLike, vkey: VersionKey) -> bool:
    if not c.dirty:
        return vkey <= c.key
    # "<=1.2" admits every 1.2.z; "<=1" every 1.y.z; upstream reads "<=*" as "<=0.0.z".
    if v.major > c.major:
        return False
    return not (v.major == c.major and v.minor > c.minor and not c.minor_dirty)


def _tilde(c: _Constraint, v: VersionLike, vkey: VersionKey) -> bool:
    if vkey < c.key:
        return False
    if (c.major, c.minor, c.patch) == (0, 0, 0) and not (c.minor_dirty or c.patch_dirty):
        return True  # "~*" and "~0.0.0" admit everything
    if v.major != c.major:
        return False
    return c.minor_dirty or v.minor == c.minor


def _caret(c: _Constraint, v: VersionLike, vkey: VersionKey) -> bool:
    if vkey < c.key:
        return False
    if c.major_dirty:
        return True  # "^*": documented as "any" upstream (see module docstring)
    if c.major > 0 or c.minor_dirty:
        return v.major == c.major  # ^1.2.3, ^1.2, ^1, ^0
    if v.major > 0:
        return False
    if c.minor > 0 or c.patch_dirty:
        return v.minor == c.minor  # ^0.2.3, ^0.2, ^0.0
    return v.minor == 0 and v.patch == c.patch  # ^0.0.3


_PREDICATES: dict[str, Callable[[_Constraint, VersionLike, VersionKey], bool]] = {
    "=": _eq,
    "!=": _ne,
    ">": _gt,
    "<": _lt,
    ">=": _ge,
    "<=": _le,
    "~": _tilde,
    "^": _caret,
}


@dataclass(frozen=True)
class _Group:
    """An AND group: one ``||`` alternative."""

    terms: tuple[_Constraint, ...]
    admits_prereleases: bool = field(init=False, compare=False)
    """Whether some term names a prerelease: the group's prerelease opt-in."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "admits_prereleases", any(term.pre for term in self.terms))

    def allows(self, version: VersionLike, vkey: VersionKey) -> bool:
        if version.prerelease and not self.admits_prereleases:
            return False
        # Hot path (once per tag): a plain loop avoids a generator per call.
        for term in self.terms:  # noqa: SIM110
            if not term.predicate(term, version, vkey):
                return False
        return True


@dataclass(frozen=True)
class Range:
    """A parsed Masterminds range: OR of AND groups of constraints. Build one with ``parse``."""

    text: str
    groups: tuple[_Group, ...]

    @classmethod
    def parse(cls, text: str) -> Range:
        """Parse ``text``; raise ``PolicyError`` naming the offending part and the fix."""
        if len(text) > MAX_RANGE_LENGTH:
            raise PolicyError(
                f"semver range {text[:40]!r}... is {len(text)} characters long; "
                f"the limit is {MAX_RANGE_LENGTH}. Fix: simplify the range."
            )
        alternatives = text.split("||")
        if len(alternatives) > MAX_RANGE_GROUPS:
            raise PolicyError(
                f"semver range {text!r} has {len(alternatives)} '||' alternatives; "
                f"the limit is {MAX_RANGE_GROUPS}. Fix: simplify the range."
            )
        return cls(text, tuple(_parse_group(text, alt) for alt in alternatives))

    def allows(self, version: VersionLike, vkey: VersionKey | None = None) -> bool:
        """Whether ``version`` satisfies the range (build metadata ignored).

        Pass ``vkey`` when it is already computed (``parse_version`` gives both).
        """
        if vkey is None:
            vkey = version_key(version)
        for group in self.groups:  # noqa: SIM110 (hot path, see _Group.allows)
            if group.allows(version, vkey):
                return True
        return False

    @property
    def names_prerelease(self) -> bool:
        """Whether any alternative opts into prereleases by naming one (``>=1.0.0-0``)."""
        return any(group.admits_prereleases for group in self.groups)

    def allows_as_release(self, version: VersionLike) -> bool:
        """Whether an alternative that admits no prereleases would allow ``version`` if it
        were not a prerelease: the prerelease rule, and nothing else, rejects it.

        This is the classic surprise (``2.0.0-rc.1`` satisfies ``<2.0.0`` by precedence but
        is not admitted), so explanations name it separately from "out of range".
        """
        vkey = version_key(version)
        return any(
            all(term.allows(version, vkey) for term in group.terms)
            for group in self.groups
            if not group.admits_prereleases
        )


def _parse_group(text: str, group: str) -> _Group:
    """Split one ``||`` alternative into terms separated by whitespace or one comma."""
    pos = _skip_ws(group, 0)
    if pos == len(group):
        raise PolicyError(
            f"semver range {text!r} has an empty alternative; use '*' to allow any version. {_FIX}"
        )
    terms: list[_Constraint] = []
    while True:
        atom = _match_atom(text, group, pos)
        hyphen = _HYPHEN_RE.match(group, atom.end())
        if hyphen is None:
            terms.append(_to_constraint(atom))
            pos = atom.end()
        else:
            upper = _match_atom(text, group, hyphen.end())
            if atom["op"] or upper["op"]:
                raise PolicyError(
                    f"semver range {text!r}: the hyphen range "
                    f"{group[atom.start() : upper.end()].strip()!r} must join two bare "
                    f"versions, as in '1.2 - 1.4.5'. {_FIX}"
                )
            terms += [_to_constraint(atom, ">="), _to_constraint(upper, "<=")]
            pos = upper.end()
        after = _skip_ws(group, pos)
        if after == len(group):
            return _Group(tuple(terms))
        if group[after] == ",":
            pos = after + 1
        elif after > pos:
            pos = after
        else:
            raise _bad_term(text, group, pos)


def _skip_ws(group: str, pos: int) -> int:
    match = _WS_RE.match(group, pos)
    return match.end() if match else pos


def _match_atom(text: str, group: str, pos: int) -> re.Match[str]:
    atom = _ATOM_RE.match(group, _skip_ws(group, pos))
    if atom is None:
        raise _bad_term(text, group, pos)
    return atom


def _bad_term(text: str, group: str, pos: int) -> PolicyError:
    rest = group[pos:].strip()
    if not rest:
        return PolicyError(f"semver range {text!r} ends where a constraint is expected. {_FIX}")
    return PolicyError(f"semver range {text!r}: cannot parse {rest.split()[0]!r}. {_FIX}")


def _to_constraint(atom: re.Match[str], op: str | None = None) -> _Constraint:
    """Build a term as Masterminds does: wildcards and missing parts read as 0 and mark dirt."""
    major, minor, patch = atom["major"], atom["minor"], atom["patch"]
    major_dirty = _is_wild(major)
    minor_dirty = not major_dirty and (minor is None or _is_wild(minor))
    patch_dirty = not (major_dirty or minor_dirty) and (patch is None or _is_wild(patch))
    raw_op = (atom["op"] or "") if op is None else op
    return _Constraint(
        op=_OP_ALIASES.get(raw_op, raw_op),
        major=0 if major_dirty else int(major),
        minor=0 if major_dirty or minor_dirty else int(minor),
        patch=0 if major_dirty or minor_dirty or patch_dirty else int(patch),
        pre=atom["pre"] or "",
        major_dirty=major_dirty,
        minor_dirty=minor_dirty,
        patch_dirty=patch_dirty,
    )


def _is_wild(part: str | None) -> bool:
    return part in ("x", "X", "*")
