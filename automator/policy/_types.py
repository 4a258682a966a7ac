"""The types every caller of the policy layer sees: ``Policy``, ``Selection``, ``Verdict``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

__all__ = ["REASONS", "Policy", "Selection", "Verdict"]

REASONS = (
    "selected",
    "current",
    "lower",
    "excluded",
    "ignored",
    "filtered",
    "not-a-version",
    "prerelease",
    "out-of-range",
    "not-a-number",
    "no-build-time",
)
"""Every ``Verdict.reason``, in the order explanations list them.

``selected``: the tag to write. ``current``: the current tag stays (nothing eligible ranks
above it, or nothing is eligible). ``lower``: eligible but beaten (the detail names the
winner). The rest say why a tag was never eligible: ``excluded`` (signature, attestation or
SBOM artefact), ``ignored`` (an ignore glob matched), ``filtered`` (the filter regex, or the
policy's own glob or regex, did not match), ``not-a-version`` and ``prerelease`` and
``out-of-range`` (semver), ``not-a-number`` (numerical), ``no-build-time`` (newest-build, glob,
regex: the registry gave no creation time).
"""


@dataclass(frozen=True)
class Verdict:
    """Why one tag won or lost; ``detail`` is one sentence for ``check --explain`` and logs."""

    tag: str
    reason: str
    detail: str


@dataclass(frozen=True)
class Selection:
    """The outcome of applying a policy to a registry's tags.

    ``selected`` is the tag the manifest should carry: the current tag when nothing eligible
    sorts above it (never a downgrade), ``None`` when no tag is eligible (no change, never an
    empty tag). ``candidates`` lists every eligible tag, best first, for logs and dry runs.
    ``verdicts`` holds one verdict per distinct input tag, plus one for the current tag when
    it is not listed: the winner first, then the other eligible tags best first, then the
    ineligible ones grouped by reason (in ``REASONS`` order) and sorted by tag. The order
    depends only on the set of tags, never on the order the registry listed them in.
    """

    selected: str | None
    candidates: tuple[str, ...]
    current_is_candidate: bool
    verdicts: tuple[Verdict, ...] = ()

    def verdict(self, tag: str) -> Verdict | None:
        """The verdict for ``tag``, or ``None`` when the tag was not considered."""
        return next((v for v in self.verdicts if v.tag == tag), None)


@runtime_checkable
class Policy(Protocol):
    """A pure tag-selection rule built by ``parse_policy``; no I/O, safe to share."""

    @property
    def spec(self) -> str:
        """The policy SPEC as written, e.g. ``semver:^1.2``, for messages and logs."""
        ...

    @property
    def needs_created(self) -> bool:
        """True when ``select`` ranks by image creation time (``newest-build``, ``glob:``,
        ``regex:``): the engine must fetch those times for the ``eligible`` tags."""
        ...

    @property
    def follows_digest(self) -> bool:
        """True only for ``digest``: the engine resolves the selected tag's digest and writes
        ``tag@sha256:…``."""
        ...

    def eligible(self, tags: Iterable[str]) -> list[str]:
        """The distinct tags (in first-seen order) that survive exclusions, ignore globs, the
        filter and the strategy's own parse or range: the ones that only lack metadata."""
        ...

    def select(
        self,
        tags: Iterable[str],
        current: str | None = None,
        *,
        created: Mapping[str, datetime] | None = None,
    ) -> Selection:
        """Pick the tag to deploy from ``tags``; ``current`` is the tag in the manifest now.

        ``created`` maps tags to their timezone-aware image creation times; only the
        strategies with ``needs_created`` read it.
        """
        ...
