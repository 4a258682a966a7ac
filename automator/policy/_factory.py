"""``parse_policy``: one place that turns a SPEC (plus filter, extract, ignore) into a policy.

Strategies are looked up in ``_STRATEGIES``; adding one means writing its class and adding
one entry there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType

from automator.errors import PolicyError
from automator.policy._glob import compile_glob
from automator.policy._strategies import (
    AlphabeticalPolicy,
    DigestPolicy,
    NewestBuildPolicy,
    NumericalPolicy,
    SemverPolicy,
    TagPattern,
)
from automator.policy._tags import TagFilter, compile_regex
from automator.policy._types import Policy
from automator.policy.semver_range import Range

__all__ = ["SUPPORTED", "parse_policy"]

_Builder = Callable[[str, str | None, TagFilter], Policy]

SUPPORTED = (
    "semver:RANGE, alphabetical[:asc|desc], numerical[:asc|desc], newest-build, digest, "
    "glob:PATTERN, regex:PATTERN"
)


def parse_policy(
    spec: str,
    *,
    filter: str | None = None,
    extract: str | None = None,
    ignore: Sequence[str] = (),
) -> Policy:
    """Build the policy for ``spec``; raise ``PolicyError`` quoting the spec and the fix.

    Everything is validated here (range grammar, glob and regex, filter regex, extract
    groups, ignore globs) so that a bad annotation is reported before any registry call is
    made for it. ``ignore`` is the ignore-tags annotation already split at commas.
    """
    name, sep, argument = spec.strip().partition(":")
    builder = _STRATEGIES.get(name.strip().lower())
    if builder is None:
        raise PolicyError(
            f"policy {spec!r}: strategy {name.strip()!r} is unknown. Fix: use one of {SUPPORTED}."
        )
    try:
        tag_filter = TagFilter.compile(filter, extract, ignore)
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


def _no_argument(name: str, argument: str | None, fix: str) -> None:
    if argument is not None:
        raise PolicyError(f"{name} takes no argument, but {argument!r} follows it. Fix: {fix}")


def _newest_build(spec: str, argument: str | None, tag_filter: TagFilter) -> Policy:
    _no_argument(
        "newest-build",
        argument,
        "write 'newest-build' alone; to choose tags, use 'glob:PATTERN', 'regex:PATTERN' "
        "or a filter annotation.",
    )
    return NewestBuildPolicy(spec, tag_filter)


def _digest(spec: str, argument: str | None, tag_filter: TagFilter) -> Policy:
    _no_argument(
        "digest",
        argument,
        "write 'digest' alone; it follows the digest behind the tag the manifest has now.",
    )
    return DigestPolicy(spec, tag_filter)


def _glob(spec: str, argument: str | None, tag_filter: TagFilter) -> Policy:
    source = (argument or "").strip()
    if not source:
        raise PolicyError(
            "glob needs a pattern. Fix: write e.g. 'glob:main-*', 'glob:v1.?.*' or "
            "'newest-build' for any tag."
        )
    pattern = TagPattern("glob", source, compile_glob(source))
    return NewestBuildPolicy(spec, tag_filter, pattern=pattern)


def _regex(spec: str, argument: str | None, tag_filter: TagFilter) -> Policy:
    source = (argument or "").strip()
    if not source:
        raise PolicyError(
            "regex needs a pattern. Fix: write e.g. 'regex:^main-[0-9a-f]{7}$' or "
            "'newest-build' for any tag."
        )
    pattern = TagPattern("regex", source, compile_regex(source, "regex"))
    return NewestBuildPolicy(spec, tag_filter, pattern=pattern)


_STRATEGIES: Mapping[str, _Builder] = MappingProxyType(
    {
        "semver": _semver,
        "alphabetical": _alphabetical,
        "numerical": _numerical,
        "newest-build": _newest_build,
        "digest": _digest,
        "glob": _glob,
        "regex": _regex,
        "regexp": _regex,
    }
)
