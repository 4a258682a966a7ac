"""Which containers of a workload are automated, and with which policy.

Pure: annotations in, decisions out. Our own ``automator.gitops.io/`` annotations are the
contract; Flux v1 ``fluxcd.io/`` annotations are read so that a repository can migrate
without editing every workload, and ours win wherever both speak about the same thing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["PLATFORM", "Decision", "Policy", "automation", "decide", "locked"]

OURS = "automator.gitops.io/"
FLUX = "fluxcd.io/"
_AUTOMATED = OURS + "automated"
_LOCKED = OURS + "locked"
_POLICY = OURS + "policy"
_FLUX_AUTOMATED = FLUX + "automated"
_FLUX_LOCKED = FLUX + "locked"
_FLUX_IGNORE = FLUX + "ignore"
_FLUX_TAG = FLUX + "tag."
_FILTER = OURS + "filter."
_EXTRACT = OURS + "extract."
_IGNORE_TAGS = OURS + "ignore-tags."
_PIN_DIGEST = OURS + "pin-digest."
_PLATFORM = OURS + "platform."
_ROLLBACK_HOLD = OURS + "rollback-hold"
_TUNING = (_FILTER, _EXTRACT, _IGNORE_TAGS, _PIN_DIGEST, _PLATFORM, _ROLLBACK_HOLD + ".")
_PER_CONTAINER = (OURS + "policy.", *_TUNING, _FLUX_TAG)
_FLUX_PREFIXES = ("glob:", "semver:", "regex:")
PLATFORM = re.compile(r"[a-z0-9]+/[a-z0-9_]+(?:/[a-z0-9]+)?")
"""``os/arch[/variant]`` as in an OCI image index, e.g. ``linux/arm64``, ``linux/arm/v7``
(the ImagePolicy schema's ``spec.platform`` pattern is the same)."""


@dataclass(frozen=True)
class Policy:
    """The policy of one container, with the annotation it came from (for messages)."""

    spec: str
    filter: str | None
    extract: str | None
    source: str
    ignore_tags: tuple[str, ...] = ()
    pin_digest: bool = False
    platform: str | None = None
    rollback_hold: bool = True

    @property
    def explicit(self) -> bool:
        """True when the policy was set for this very container, not by a workload default."""
        return self.source != _POLICY


@dataclass(frozen=True)
class Decision:
    """Policies by container name (empty: nothing automated) and annotation problems."""

    policies: Mapping[str, Policy]
    problems: tuple[str, ...]


def _flag(annotations: Mapping[str, str | None], ours: str, flux: str) -> bool | str:
    """Our flag when set (must be "true"/"false"), else Flux's (only "true" counts, as in Flux v1).

    A string result is a problem message.
    """
    if ours in annotations:
        value = annotations[ours]
        if value in ("true", "false"):
            return value == "true"
        return f'annotation {ours} is {value!r}: set it to "true" or "false"'
    return annotations.get(flux) == "true"


def _flux_spec(pattern: str) -> str:
    """Flux v1 tag patterns: ``glob:`` is implied, ``regexp:`` means ``regex:``."""
    if pattern.startswith("regexp:"):
        return "regex:" + pattern[len("regexp:") :]
    if pattern.startswith(_FLUX_PREFIXES):
        return pattern
    return "glob:" + pattern


def locked(annotations: Mapping[str, str | None]) -> bool | str:
    """Whether the workload's ``locked`` annotation (ours, else Flux v1's) forbids any change.

    Marker comments inside a document obey it too: "never change this workload" means
    every field of it. A string result is a problem message.
    """
    return _flag(annotations, _LOCKED, _FLUX_LOCKED)


def automation(annotations: Mapping[str, str | None]) -> bool | str:
    """Whether the workload is automated at all: True, False, or a problem message.

    Not automated, locked and ``fluxcd.io/ignore``d workloads are False, and then nothing
    else about them is checked: annotations of a workload we will not touch are none of
    our business.
    """
    automated = _flag(annotations, _AUTOMATED, _FLUX_AUTOMATED)
    if automated is not True:
        return automated
    if _AUTOMATED not in annotations and annotations.get(_FLUX_IGNORE) == "true":
        return False
    locked = _flag(annotations, _LOCKED, _FLUX_LOCKED)
    if locked is True:
        return False
    return True if locked is False else locked


def decide(annotations: Mapping[str, str | None], containers: Sequence[str]) -> Decision:
    """Policies of the containers of an automated workload (see :func:`automation`).

    Per container the policy is, first match wins: ``automator.gitops.io/policy.<c>``,
    ``fluxcd.io/tag.<c>``, ``automator.gitops.io/policy`` (a container's own policy, even
    a Flux one, beats the workload-wide default). Containers without one are not automated
    (unlike Flux v1, whose default was "any newer build": too surprising to inherit).
    """
    problems: list[str] = []
    known = ", ".join(containers) or "none"
    for key in annotations:
        for prefix in _PER_CONTAINER:
            if key.startswith(prefix) and key[len(prefix) :] not in containers:
                problems.append(
                    f"annotation {key} names container {key[len(prefix) :]!r}, "
                    f"which this workload does not have (containers: {known}): "
                    "fix the container name in the annotation"
                )

    def text(key: str) -> str | None:
        value = annotations.get(key)
        if key in annotations and not value:
            problems.append(f"annotation {key} is empty: give it a value or remove it")
        return value or None

    policies: dict[str, Policy] = {}
    default = text(_POLICY)
    hold_default = _switch(_ROLLBACK_HOLD, text(_ROLLBACK_HOLD), True, problems)
    for name in containers:
        spec: str | None
        source = OURS + "policy." + name
        spec = text(source)
        if spec is None:
            source = _FLUX_TAG + name
            flux = text(source)
            spec = _flux_spec(flux) if flux is not None else None
        if spec is None and default is not None:
            source, spec = _POLICY, default
        tuning = {prefix: text(prefix + name) for prefix in _TUNING}
        if spec is None:
            for prefix, value in tuning.items():
                if value is not None:
                    problems.append(
                        f"annotation {prefix}{name} is set but container {name!r} has no "
                        f"policy: add {OURS}policy.{name} (or {_POLICY}) or remove it"
                    )
            continue
        policies[name] = Policy(
            spec,
            tuning[_FILTER],
            tuning[_EXTRACT],
            source,
            ignore_tags=_ignore_tags(_IGNORE_TAGS + name, tuning[_IGNORE_TAGS], problems),
            pin_digest=_pin_digest(_PIN_DIGEST + name, tuning[_PIN_DIGEST], problems),
            platform=_platform(_PLATFORM + name, tuning[_PLATFORM], problems),
            rollback_hold=_switch(
                f"{_ROLLBACK_HOLD}.{name}", tuning[_ROLLBACK_HOLD + "."], hold_default, problems
            ),
        )
    return Decision(policies, tuple(dict.fromkeys(problems)))


def _ignore_tags(key: str, value: str | None, problems: list[str]) -> tuple[str, ...]:
    """``"glob1, glob2"``: comma-separated globs, blanks around each ignored."""
    if value is None:
        return ()
    globs = tuple(part.strip() for part in value.split(","))
    if not all(globs):
        problems.append(
            f"annotation {key} is {value!r}, which has an empty pattern: write "
            'comma-separated globs without empty entries, e.g. "*-debug,latest"'
        )
        return ()
    return globs


def _pin_digest(key: str, value: str | None, problems: list[str]) -> bool:
    return _switch(key, value, False, problems)


def _switch(key: str, value: str | None, default: bool, problems: list[str]) -> bool:
    """A ``"true"``/``"false"`` annotation; ``default`` when unset (or wrong, reported)."""
    if value is None:
        return default
    if value in ("true", "false"):
        return value == "true"
    problems.append(f'annotation {key} is {value!r}: set it to "true" or "false"')
    return default


def _platform(key: str, value: str | None, problems: list[str]) -> str | None:
    if value is None or PLATFORM.fullmatch(value):
        return value
    problems.append(
        f"annotation {key} is {value!r}: write the platform as os/arch[/variant], "
        "e.g. linux/arm64 or linux/arm/v7"
    )
    return None
