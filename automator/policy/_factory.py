"""``parse_policy``: one place that turns a SPEC (plus filter and extract) into a policy.

Strategies are looked up in ``_STRATEGIES``; adding one (``newest-build``, ``digest``,
``glob:``, ``regex:``) means writing its class and adding one entry there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from automator.errors import PolicyError
from automator.policy._strategies import AlphabeticalPolicy, NumericalPolicy, SemverPolicy
from automator.policy._tags import TagFilter
from automator.policy._types import Policy
from automator.policy.semver_range import Range

__all__ = ["SUPPORTED", "parse_policy"]

_Builder = Callable[[str, str | None, TagFilter], Policy]

SUPPORTED = "semver:RANGE, alphabetical[:asc|desc], numerical[:asc|desc]"
_LATER = frozenset({"newest-build", "digest", "glob", "regex", "regexp"})


def parse_policy(spec: str, *, filter: str | None = None, extract: str | None = None) -> Policy:
    """Build the policy for ``spec``; raise ``PolicyError`` quoting the spec and the fix.

    Everything is validated here (range grammar, filter regex, extract groups) so that a
    bad annotation is reported before any registry call is made for it.
    """
    name, sep, argument = spec.strip().partition(":")
    builder = _STRATEGIES.get(name.strip().lower())
    if builder is None:
        later = " is not supported yet" if name.strip().lower() in _LATER else " is unknown"
        raise PolicyError(
            f"policy {spec!r}: strategy {name.strip()!r}{later}. Fix: use one of {SUPPORTED}."
        )
    try:
        tag_filter = TagFilter.compile(filter, extract)
        return builder(spec, argument if sep else None, tag_filter)
    except PolicyError as exc:
        raise PolicyError(f"policy {spec!r}: {exc}") from exc


def _semver(spec: str, argument: str | None, tag_filter: TagFilter) -> Policy:
    if argument is None or not argument.strip():
        raise PolicyError(
            "semver needs a range. Fix: write e.g. 'semver:^1.2', 'semver:>=1.0.0 <2' "
            "or 'semver:*' for any release."
        )
    return SemverPolicy(spec, tag_filter, range=Range.parse(argument))


def _descending(argument: str | None) -> bool:
    order = "asc" if argument is None else argument.strip().lower()
    if order not in ("asc", "desc"):
        raise PolicyError(
            f"order {argument!r} is neither 'asc' nor 'desc'. Fix: write e.g. "
            "'alphabetical:asc' (greatest wins, the default) or 'numerical:desc' (smallest wins)."
        )
    return order == "desc"


def _alphabetical(spec: str, argument: str | None, tag_filter: TagFilter) -> Policy:
    return AlphabeticalPolicy(spec, tag_filter, descending=_descending(argument))


def _numerical(spec: str, argument: str | None, tag_filter: TagFilter) -> Policy:
    return NumericalPolicy(spec, tag_filter, descending=_descending(argument))


_STRATEGIES: Mapping[str, _Builder] = MappingProxyType(
    {"semver": _semver, "alphabetical": _alphabetical, "numerical": _numerical}
)
