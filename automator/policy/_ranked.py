"""The selection algorithm shared by every ranking strategy.

A strategy only says how to rank one value (or that it is ineligible) and in which
direction; this module turns that into a total, deterministic order (ties go to the
lexically greatest tag) and applies the no-downgrade rule, so no strategy can get those
wrong on its own.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from automator.policy._tags import TagFilter
from automator.policy._types import Selection

__all__ = ["RankedPolicy"]


class _Ordered(Protocol):
    def __lt__(self, other: Any, /) -> bool: ...


K = TypeVar("K", bound=_Ordered)


def _cmp(a: _Ordered, b: _Ordered) -> int:
    return int(b < a) - int(a < b)


@dataclass(frozen=True)
class RankedPolicy(ABC, Generic[K]):
    """Base of the strategies: rank values, best first, never below an eligible current tag."""

    spec: str
    tag_filter: TagFilter = field(default_factory=TagFilter)
    descending: bool = False
    """False: the greatest value wins (Flux ``asc``); True: the smallest wins (``desc``)."""

    @abstractmethod
    def _rank(self, value: str) -> K | None:
        """The value's rank, or ``None`` when the strategy cannot use it (skipped, no error)."""

    def select(self, tags: Iterable[str], current: str | None = None) -> Selection:
        """Rank the eligible tags and pick the best one that is not a downgrade."""
        ranked: dict[str, K] = {}
        for tag in tags:
            if tag not in ranked and (rank := self._eligible_rank(tag)) is not None:
                ranked[tag] = rank
        order = sorted(ranked.items(), key=functools.cmp_to_key(self._compare), reverse=True)
        candidates = tuple(tag for tag, _ in order)
        current_rank = None if current is None else self._eligible_rank(current)
        selected = self._pick(order[0] if order else None, current, current_rank)
        return Selection(selected, candidates, current_rank is not None)

    def _pick(self, best: tuple[str, K] | None, current: str | None, rank: K | None) -> str | None:
        if best is None:
            return None
        if current is None or rank is None:
            return best[0]
        # No downgrade, and no churn: an eligible current tag stays unless the best one ranks
        # strictly above it. The lexical tie-break only orders candidates among themselves;
        # it never replaces `1.2.3` with `v1.2.3`, which name the same version.
        return best[0] if self._rank_order(best[1], rank) > 0 else current

    def _eligible_rank(self, tag: str) -> K | None:
        value = self.tag_filter.value_of(tag)
        return None if value is None else self._rank(value)

    def _compare(self, a: tuple[str, K], b: tuple[str, K]) -> int:
        """Total order: the strategy's rank in its direction, then the tag string ascending."""
        return self._rank_order(a[1], b[1]) or _cmp(a[0], b[0])

    def _rank_order(self, a: K, b: K) -> int:
        """The strategy's order alone: positive when ``a`` is better than ``b``."""
        by_rank = _cmp(a, b)
        return -by_rank if self.descending else by_rank
