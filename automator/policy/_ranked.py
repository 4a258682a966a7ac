"""The selection algorithm shared by every ranking strategy, and its explanations.

A strategy only says how to rank one tag (or which verdict rejects it) and in which
direction; this module turns that into a total, deterministic order (ties go to the
lexically greatest tag), applies the no-downgrade rule and writes one verdict per tag, so
no strategy can get those wrong on its own.

Cost: one screen per distinct tag, two C-level stable sorts (tag, then rank) instead of a
Python comparison function, and one short f-string per tag for its verdict.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from operator import attrgetter, itemgetter
from typing import Any, Generic, Protocol, TypeVar

from automator.policy._tags import TagFilter
from automator.policy._types import REASONS, Selection, Verdict

__all__ = ["RankedPolicy", "order_rejected"]


class _Ordered(Protocol):
    def __lt__(self, other: Any, /) -> bool: ...


K = TypeVar("K", bound=_Ordered)

_VERDICT_TAG = attrgetter("tag")
_BY_TAG = itemgetter(0)
_BY_RANK = itemgetter(1)


def _cmp(a: _Ordered, b: _Ordered) -> int:
    return int(b < a) - int(a < b)


def order_rejected(rejected: Iterable[Verdict]) -> list[Verdict]:
    """Ineligible verdicts grouped by reason (``REASONS`` order), then by tag."""
    by_reason: dict[str, list[Verdict]] = {}
    for verdict in rejected:
        by_reason.setdefault(verdict.reason, []).append(verdict)
    ordered: list[Verdict] = []
    for reason in REASONS:
        if reason in by_reason:
            ordered += sorted(by_reason[reason], key=_VERDICT_TAG)
    return ordered


@dataclass(frozen=True)
class RankedPolicy(ABC, Generic[K]):
    """Base of the ranking strategies: best first, never below an eligible current tag."""

    spec: str
    tag_filter: TagFilter = field(default_factory=TagFilter)
    descending: bool = False
    """False: the greatest value wins (Flux ``asc``); True: the smallest wins (``desc``)."""

    @property
    def needs_created(self) -> bool:
        return False

    @property
    def follows_digest(self) -> bool:
        return False

    @abstractmethod
    def _rank(self, tag: str, value: str, created: Mapping[str, datetime] | None) -> K | Verdict:
        """The tag's rank, or the verdict that makes it ineligible (skipped, never an error).

        ``value`` is what the filter and extract left of the tag.
        """

    @abstractmethod
    def _best(self, tag: str, rank: K) -> str:
        """Why the winner wins, as the end of a sentence: ``is the highest version …``."""

    def _worse(self) -> tuple[str, str]:
        """How a loser compares with the winner, strictly worse and tied, e.g.
        ``("is a lower version than", "is the same version as")``."""
        return ("ranks below", "ranks equal to")

    def _passes_strategy(self, tag: str, value: str) -> bool:
        """Whether the strategy accepts ``value`` before any metadata is known."""
        return not isinstance(self._rank(tag, value, None), Verdict)

    def eligible(self, tags: Iterable[str]) -> list[str]:
        """Distinct tags, first-seen order, that only lack metadata to be ranked."""
        seen: dict[str, bool] = {}
        for tag in tags:
            if tag not in seen:
                value = self.tag_filter.screen(tag)
                seen[tag] = isinstance(value, str) and self._passes_strategy(tag, value)
        return [tag for tag, ok in seen.items() if ok]

    def _classify(self, tag: str, created: Mapping[str, datetime] | None) -> K | Verdict:
        value = self.tag_filter.screen(tag)
        if isinstance(value, Verdict):
            return value
        return self._rank(tag, value, created)

    def select(
        self,
        tags: Iterable[str],
        current: str | None = None,
        *,
        created: Mapping[str, datetime] | None = None,
    ) -> Selection:
        """Rank the eligible tags, pick the best one that is not a downgrade, explain all."""
        ranked: dict[str, K] = {}
        rejected: dict[str, Verdict] = {}
        for tag in tags:
            if tag in ranked or tag in rejected:
                continue
            outcome = self._classify(tag, created)
            if isinstance(outcome, Verdict):
                rejected[tag] = outcome
            else:
                ranked[tag] = outcome
        items = list(ranked.items())
        current_rank: K | None = None
        unlisted: str | None = None  # an eligible current tag the registry did not list
        if current is not None:
            if current in ranked:
                current_rank = ranked[current]
            elif current not in rejected:
                outcome = self._classify(current, created)
                if isinstance(outcome, Verdict):
                    rejected[current] = outcome
                else:
                    current_rank, unlisted = outcome, current
                    items.append((current, outcome))  # explained, never a candidate
        # Two stable C-level sorts give the total order: rank in the strategy's direction,
        # ties to the lexically greatest tag (reverse=True keeps sort stability).
        order = sorted(items, key=_BY_TAG, reverse=True)
        order.sort(key=_BY_RANK, reverse=not self.descending)
        if unlisted is None:
            candidates = tuple(tag for tag, _ in order)
            best = order[0] if order else None
        else:
            candidates = tuple(tag for tag, _ in order if tag != unlisted)
            best = next((item for item in order if item[0] != unlisted), None)
        selected = self._pick(best, current, current_rank)
        verdicts = self._explain(order, selected, current, current_rank)
        verdicts += order_rejected(rejected.values())
        return Selection(selected, candidates, current_rank is not None, tuple(verdicts))

    def _pick(self, best: tuple[str, K] | None, current: str | None, rank: K | None) -> str | None:
        if best is None:
            return None
        if current is None or rank is None:
            return best[0]
        # No downgrade, and no churn: an eligible current tag stays unless the best one ranks
        # strictly above it. The lexical tie-break only orders candidates among themselves;
        # it never replaces `1.2.3` with `v1.2.3`, which name the same version.
        return best[0] if self._rank_order(best[1], rank) > 0 else current

    def _explain(
        self,
        order: list[tuple[str, K]],
        selected: str | None,
        current: str | None,
        current_rank: K | None,
    ) -> list[Verdict]:
        """Verdicts for the eligible tags (and an eligible current tag): winner first."""
        if current_rank is not None and (selected is None or selected == current):
            assert current is not None
            if len(order) == 1:
                why = "no other tag is eligible, so it stays"
            else:
                why = "no eligible tag ranks above it, so it stays (never a downgrade)"
            winner = Verdict(current, "current", f"{current} is the current tag and {why}.")
            return [winner, *self._losers(order, current, current_rank, "the current tag ")]
        if selected is None:
            return []
        rank = next(rank for tag, rank in order if tag == selected)
        best = f"{selected} {self._best(selected, rank)}"
        if current is not None and current != selected:
            best += f", replacing the current tag {current}"
        return [Verdict(selected, "selected", best + "."), *self._losers(order, selected, rank, "")]

    def _losers(
        self, order: list[tuple[str, K]], winner: str, winner_rank: K, role: str
    ) -> list[Verdict]:
        lower, equal = self._worse()
        rank_order = self._rank_order
        if role:
            tie = f"{role}{winner}, which stays because an equal rank never replaces it"
        else:
            tie = f"{winner}, which wins the tie as the lexically greater tag"
        verdicts = []
        for tag, rank in order:
            if tag == winner:
                continue
            if rank_order(winner_rank, rank) == 0:
                verdicts.append(Verdict(tag, "lower", f"{tag} {equal} {tie}."))
            else:
                verdicts.append(Verdict(tag, "lower", f"{tag} {lower} {role}{winner}."))
        return verdicts

    def _rank_order(self, a: K, b: K) -> int:
        """The strategy's order alone: positive when ``a`` is better than ``b``."""
        by_rank = _cmp(a, b)
        return -by_rank if self.descending else by_rank
