"""The two types every caller of the policy layer sees: ``Policy`` and its ``Selection``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["Policy", "Selection"]


@dataclass(frozen=True)
class Selection:
    """The outcome of applying a policy to a registry's tags.

    ``selected`` is the tag the manifest should carry: the current tag when nothing eligible
    sorts above it (never a downgrade), ``None`` when no tag is eligible (no change, never an
    empty tag). ``candidates`` lists every eligible tag, best first, for logs and dry runs.
    """

    selected: str | None
    candidates: tuple[str, ...]
    current_is_candidate: bool


@runtime_checkable
class Policy(Protocol):
    """A pure tag-selection rule built by ``parse_policy``; no I/O, safe to share."""

    @property
    def spec(self) -> str:
        """The policy SPEC as written, e.g. ``semver:^1.2``, for messages and logs."""
        ...

    def select(self, tags: Iterable[str], current: str | None = None) -> Selection:
        """Pick the tag to deploy from ``tags``; ``current`` is the tag in the manifest now."""
        ...
