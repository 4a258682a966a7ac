"""A person's rollback wins (DESIGN §5): when to hold a field at the value a person chose.

Pure: the engine gives the field's value now, the value the automator last wrote into it
(the newest ``Automator-Update`` line on the checkout branch) and the policy's own
selections; this module says whether the write the policy wants must wait. Everything is
decided from Git history and the tree, so restarts and several replicas agree.

The rule. The automator last wrote ``N`` into a field and the tree now says ``V != N``:
a person changed it afterwards (``git revert``, or an edit by hand), so ``N`` is
*rejected*. From then on a tag is written only when it ranks strictly above ``N`` under
the field's own policy, the comparison the no-downgrade rule already makes: the policy
selects with ``N`` as the current tag, and anything else than ``N`` ranks above it.

* ``V`` above ``N`` (the person moved forward): no hold, no-downgrade covers it.
* ``V == N`` (the person put it back): no hold.
* ``V`` in another repository than ``N``: a different image, no hold.
* the policy no longer admits ``N`` at all (a person changed the range or filter): the
  person's new policy is the newer decision, no hold. Except when ``N`` only lacks a
  build time (deleted from the registry under ``newest-build``): the order cannot be
  decided, so the hold stays.
* ``digest`` policies and ``:digest`` fields: the rejected digest is never written again;
  any other digest ends the hold.

A newer write by the automator is a newer ``Automator-Update`` line, so an old hold ends
by itself. ``rollback-hold.<container>: "false"`` (or ``spec.rollbackHold: false``) turns
holds off for a field.
"""

from __future__ import annotations

from dataclasses import dataclass

from automator.errors import AutomatorError
from automator.images import ImageRef
from automator.policy import Policy, Selection

__all__ = ["Hold", "Rejection", "held", "rejection", "release_hint"]


@dataclass(frozen=True)
class Rejection:
    """The value the automator wrote into a field and a person then changed."""

    value: str
    """The rejected field value, exactly as the automator wrote it."""
    tag: str | None
    """Its tag (None for a digest-only value): the floor a new tag must rank above."""
    digest: str | None
    current_tag: str | None
    """The tag the field carries now, the person's choice."""


def _split(value: str, part: str) -> tuple[str | None, str | None, str | None] | None:
    """(repository name, tag, digest) of a field value; None when it does not parse."""
    if part == "tag":
        return None, value, None
    if part == "digest":
        return None, None, value
    try:
        ref = ImageRef.parse(value)
    except AutomatorError:
        return None
    return ref.canonical, ref.tag, ref.digest


def rejection(current: str, written: str, part: str) -> Rejection | None:
    """What a person rejected, when the field no longer says what the automator wrote.

    ``part`` is the field's part (``image``, ``tag``, ``digest``, ``name``); a ``name``
    field carries no version, so it is never held.
    """
    if current == written or part == "name":
        return None
    now, then = _split(current, part), _split(written, part)
    if now is None or then is None or now[0] != then[0]:
        return None
    return Rejection(written, then[1], then[2], now[1])


def _digest_of(value: str, part: str) -> str | None:
    split = _split(value, part)
    return split[2] if split else None


def held(
    rej: Rejection,
    policy: Policy,
    above: Selection | None,
    new: str | None,
    part: str,
) -> bool:
    """Whether the rejection holds the field this cycle.

    ``above`` is the policy's selection over the same tags with the rejected tag as the
    current one (None when the field follows digests); ``new`` is the value the policy
    would write without the hold.
    """
    if rej.tag is None or policy.follows_digest or part == "digest":
        if new is None:
            return False
        return new == rej.value or (rej.digest is not None and _digest_of(new, part) == rej.digest)
    if rej.current_tag == rej.tag or above is None:
        return False  # same tag (only a digest changed by hand), or nothing to compare
    if not above.current_is_candidate:
        # Only a missing build time keeps it (the order is unknown, not changed).
        verdict = above.verdict(rej.tag)
        return verdict is not None and verdict.reason == "no-build-time"
    if above.selected not in (None, rej.tag):
        return False  # a tag strictly newer than the rejected one: the hold ends
    # Last: did the person move forward to a tag the registry does not list (yet)?
    forward = (
        rej.current_tag is not None
        and not policy.needs_created
        and policy.select([rej.current_tag], rej.tag).selected == rej.current_tag
    )
    return not forward


@dataclass(frozen=True)
class Hold:
    """Why a field is held, for ``images``, ``plan`` and the ``update_held`` log event."""

    current: str
    rejected: str
    commit: str
    """The automator commit that wrote the rejected value."""
    date: str
    changed_in: str | None = None
    """The newest commit since then that touched the file: the person's change."""
    changed_by: str | None = None
    subject: str | None = None
    release: str = ""

    @property
    def reason(self) -> str:
        who = f" by {self.changed_by} in {self.changed_in[:10]}" if self.changed_in else ""
        if self.subject:
            who += f" ({self.subject!r})"
        return (
            f"{self.rejected} was written by {self.commit[:10]} and changed back to "
            f"{self.current}{who}; the automator keeps the person's choice"
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "current": self.current,
            "rejected": self.rejected,
            "commit": self.commit,
            "date": self.date,
            "changed_in": self.changed_in,
            "changed_by": self.changed_by,
            "reason": self.reason,
            "release": self.release,
        }


def release_hint(
    rej: Rejection, container: str, marker: str | None, *, by_digest: bool = False
) -> str:
    """How a person ends the hold, in one sentence; ``by_digest`` for digest policies."""
    newer = (
        f"a digest other than {rej.digest or rej.value} ends the hold"
        if by_digest or rej.tag is None
        else f"a tag newer than {rej.tag} ends the hold"
    )
    if marker is None:
        switch = f'annotate the workload automator.gitops.io/rollback-hold.{container}: "false"'
    else:
        switch = f"set spec.rollbackHold: false in the ImagePolicy the marker {marker!r} names"
    return f"{newer}; or set the value to {rej.value} yourself; or {switch} to turn holds off"
