"""The policy layer: which registry tag a workload should run. Pure, no I/O.

``parse_policy(spec, filter=..., extract=..., ignore=...)`` validates a SPEC once and
returns a ``Policy``; ``policy.select(tags, current, created=...)`` returns a ``Selection``
whose ``verdicts`` say why every tag won or lost. Strategies: ``semver:RANGE``
(Masterminds v3 ranges, see ``semver_range``), ``alphabetical[:asc|desc]``,
``numerical[:asc|desc]``, ``newest-build`` (image creation time, which the engine fetches
for ``policy.eligible(tags)`` when ``policy.needs_created``), ``glob:PATTERN`` and
``regex:PATTERN`` (Flux v1: keep matching tags, then newest build) and ``digest`` (keep
the current tag; ``policy.follows_digest`` tells the engine to write its digest).
Signature and attestation tags (``*.sig``, ``*.att``, ``*.sbom``, ``sha256-*``) are never
candidates, ties go to the lexically greatest tag, and an eligible current tag is never
replaced by one that sorts below it.
"""

from __future__ import annotations

from automator.policy._factory import parse_policy
from automator.policy._types import REASONS, Policy, Selection, Verdict

__all__ = ["REASONS", "Policy", "Selection", "Verdict", "parse_policy"]
