"""The policy layer: which registry tag a workload should run. Pure, no I/O.

``parse_policy(spec, filter=..., extract=...)`` validates a SPEC once and returns a
``Policy``; ``policy.select(tags, current)`` returns a ``Selection``. Strategies:
``semver:RANGE`` (Masterminds v3 ranges, see ``semver_range``), ``alphabetical[:asc|desc]``
and ``numerical[:asc|desc]``. Signature and attestation tags (``*.sig``, ``*.att``,
``*.sbom``, ``sha256-*``) are never candidates, ties go to the lexically greatest tag, and
an eligible current tag is never replaced by one that sorts below it.
"""

from __future__ import annotations

from automator.policy._factory import parse_policy
from automator.policy._types import Policy, Selection

__all__ = ["Policy", "Selection", "parse_policy"]
