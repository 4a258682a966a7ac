"""The concrete strategies: ``semver:RANGE``, ``alphabetical``, ``numerical``, ``newest-build``
(also behind ``glob:`` and ``regex:``) and ``digest``."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from automator.policy._ranked import RankedPolicy, order_rejected
from automator.policy._tags import TagFilter
from automator.policy._types import Selection, Verdict
from automator.policy.semver_range import Range, VersionKey, parse_version

__all__ = [
    "AlphabeticalPolicy",
    "DigestPolicy",
    "NewestBuildPolicy",
    "NumericalPolicy",
    "SemverPolicy",
    "TagPattern",
]

# Plain decimal numbers only: "inf", "nan", "0x1p3" or "1_000" are not what people tag with.
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _subject(tag: str, value: str) -> str:
    """The tag, and what was compared for it when extract changed it."""
    return tag if tag == value else f"{tag} (compared as {value!r})"


@dataclass(frozen=True)
class SemverPolicy(RankedPolicy[VersionKey]):
    """Highest strict SemVer tag allowed by a Masterminds range."""

    range: Range = field(kw_only=True)

    def _rank(
        self, tag: str, value: str, created: Mapping[str, datetime] | None
    ) -> VersionKey | Verdict:
        parsed = parse_version(value)
        if parsed is None:
            return Verdict(
                tag,
                "not-a-version",
                f"{_subject(tag, value)} is not a version X.Y.Z (an optional leading 'v', "
                "'-prerelease' and '+build' are allowed).",
            )
        version, key = parsed
        if self.range.allows(version, key):
            return key
        if version.prerelease and self.range.allows_as_release(version):
            text = self.range.text
            if self.range.names_prerelease:
                why = (
                    f"the alternatives of the range {text} that admit its version name no "
                    "prerelease (add -0 to one of them to allow prereleases)"
                )
            else:
                why = f"the range {text} has none (add -0 to the range to allow them)"
            return Verdict(tag, "prerelease", f"{_subject(tag, value)} is a prerelease and {why}.")
        return Verdict(
            tag, "out-of-range", f"{_subject(tag, value)} is outside the range {self.range.text}."
        )

    def _best(self, tag: str, rank: VersionKey) -> str:
        return f"is the highest version the range {self.range.text} allows"

    def _worse(self) -> tuple[str, str]:
        return ("is a lower version than", "is the same version as")


@dataclass(frozen=True)
class AlphabeticalPolicy(RankedPolicy[str]):
    """Lexical order of the (extracted) tag, e.g. for ``RELEASE.2024-01-01T00-00-00Z`` tags."""

    def _rank(self, tag: str, value: str, created: Mapping[str, datetime] | None) -> str:
        return value

    def _best(self, tag: str, rank: str) -> str:
        return "sorts first " + ("(smallest, desc)" if self.descending else "(greatest, asc)")

    def _worse(self) -> tuple[str, str]:
        return ("sorts after" if self.descending else "sorts before", "sorts equal to")


@dataclass(frozen=True)
class NumericalPolicy(RankedPolicy[Decimal]):
    """Numeric order of the (extracted) tag, e.g. build numbers or timestamps.

    ``Decimal`` rather than ``float`` so that long timestamps such as ``20240101123456789``
    and ``20240101123456790`` stay distinct.
    """

    def _rank(
        self, tag: str, value: str, created: Mapping[str, datetime] | None
    ) -> Decimal | Verdict:
        if _NUMBER.fullmatch(value):
            return Decimal(value)
        return Verdict(
            tag,
            "not-a-number",
            f"{_subject(tag, value)} is not a number (numerical compares plain decimal "
            "numbers such as 42, 20240101 or 1.5).",
        )

    def _best(self, tag: str, rank: Decimal) -> str:
        return "is the smallest number" if self.descending else "is the largest number"

    def _worse(self) -> tuple[str, str]:
        return (
            "is a larger number than" if self.descending else "is a smaller number than",
            "is numerically equal to",
        )


@dataclass(frozen=True)
class TagPattern:
    """The ``glob:`` or ``regex:`` of a policy: which tags newest-build may rank."""

    kind: str
    source: str
    compiled: re.Pattern[str]

    def matches(self, value: str) -> bool:
        if self.kind == "glob":
            return self.compiled.fullmatch(value) is not None
        return self.compiled.search(value) is not None


@dataclass(frozen=True)
class NewestBuildPolicy(RankedPolicy[datetime]):
    """The most recently built image, by the creation time the engine fetched (``created``).

    ``glob:`` and ``regex:`` are this strategy behind a tag pattern, as in Flux v1. A tag
    without a known creation time is skipped with ``no-build-time``, never an error.
    """

    pattern: TagPattern | None = field(default=None, kw_only=True)

    @property
    def needs_created(self) -> bool:
        return True

    def _passes_strategy(self, tag: str, value: str) -> bool:
        return self.pattern is None or self.pattern.matches(value)

    def _rank(
        self, tag: str, value: str, created: Mapping[str, datetime] | None
    ) -> datetime | Verdict:
        if self.pattern is not None and not self.pattern.matches(value):
            return Verdict(
                tag,
                "filtered",
                f"{_subject(tag, value)} does not match the policy's {self.pattern.kind} "
                f"{self.pattern.source!r}.",
            )
        built = None if created is None else created.get(tag)
        if built is None:
            return Verdict(
                tag,
                "no-build-time",
                f"{tag} has no known build time (the registry gave no creation time for it), "
                "so it cannot be ranked by age.",
            )
        if built.utcoffset() is None:
            # Mixing naive and aware datetimes cannot be ordered: a caller bug, not data.
            raise ValueError(f"creation time of {tag!r} is not timezone-aware: {built!r}")
        return built

    def _best(self, tag: str, rank: datetime) -> str:
        return f"is the newest build (created {rank.isoformat()})"

    def _worse(self) -> tuple[str, str]:
        return ("was built before", "was built at the same time as")


@dataclass(frozen=True)
class DigestPolicy:
    """Follow the digest behind the current, mutable tag (``latest``, ``main``).

    The policy only keeps the current tag when the registry still lists it; the engine
    resolves the digest behind it and writes ``tag@sha256:…``.
    """

    spec: str
    tag_filter: TagFilter = field(default_factory=TagFilter)

    @property
    def needs_created(self) -> bool:
        return False

    @property
    def follows_digest(self) -> bool:
        return True

    def eligible(self, tags: Iterable[str]) -> list[str]:
        return [tag for tag in dict.fromkeys(tags) if isinstance(self.tag_filter.screen(tag), str)]

    def select(
        self,
        tags: Iterable[str],
        current: str | None = None,
        *,
        created: Mapping[str, datetime] | None = None,
    ) -> Selection:
        """``current`` when the registry lists it and no exclusion rejects it, else ``None``."""
        listed = dict.fromkeys(tags)
        rejected: list[Verdict] = []
        others = (
            f"the digest policy follows only the current tag {current}"
            if current is not None
            else "the digest policy follows the current tag and there is none"
        )
        for tag in listed:
            screened = self.tag_filter.screen(tag)
            if isinstance(screened, Verdict):
                rejected.append(screened)
            elif tag != current:
                rejected.append(Verdict(tag, "filtered", f"{tag} is not considered: {others}."))
        if current is None:
            return Selection(None, (), False, tuple(order_rejected(rejected)))
        screened = self.tag_filter.screen(current)
        if isinstance(screened, Verdict):
            if current not in listed:
                rejected.append(screened)
            return Selection(None, (), False, tuple(order_rejected(rejected)))
        if current not in listed:
            stay = Verdict(
                current,
                "current",
                f"{current} is the current tag but the registry does not list it, so there is "
                "no digest to follow and the manifest is left as it is.",
            )
            return Selection(None, (), False, (stay, *order_rejected(rejected)))
        keep = Verdict(
            current,
            "current",
            f"{current} is the current tag and the registry lists it; the digest behind it "
            "is followed.",
        )
        return Selection(current, (current,), True, (keep, *order_rejected(rejected)))
