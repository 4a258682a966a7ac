"""The concrete strategies: ``semver:RANGE``, ``alphabetical`` and ``numerical``."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal

from automator.policy._ranked import RankedPolicy
from automator.policy.semver_range import Range, VersionKey, parse_tag, version_key

__all__ = ["AlphabeticalPolicy", "NumericalPolicy", "SemverPolicy"]

# Plain decimal numbers only: "inf", "nan", "0x1p3" or "1_000" are not what people tag with.
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


@dataclass(frozen=True)
class SemverPolicy(RankedPolicy[VersionKey]):
    """Highest strict SemVer tag allowed by a Masterminds range."""

    range: Range = field(kw_only=True)

    def _rank(self, value: str) -> VersionKey | None:
        version = parse_tag(value)
        if version is None or not self.range.allows(version):
            return None
        return version_key(version)


@dataclass(frozen=True)
class AlphabeticalPolicy(RankedPolicy[str]):
    """Lexical order of the (extracted) tag, e.g. for ``RELEASE.2024-01-01T00-00-00Z`` tags."""

    def _rank(self, value: str) -> str:
        return value


@dataclass(frozen=True)
class NumericalPolicy(RankedPolicy[Decimal]):
    """Numeric order of the (extracted) tag, e.g. build numbers or timestamps.

    ``Decimal`` rather than ``float`` so that long timestamps such as ``20240101123456789``
    and ``20240101123456790`` stay distinct.
    """

    def _rank(self, value: str) -> Decimal | None:
        return Decimal(value) if _NUMBER.fullmatch(value) else None
