"""What one sync works on and reports, shared by the synchronizer and its helpers.

Why a module of its own: the synchronizer's jobs (applying, pruning, waiting for health,
recording state) live in separate modules, and all of them speak about the same things:
desired objects and their live copies, the per-object changes of a :class:`SyncReport`,
and the labels and annotations that mark what is ours. Keeping those here lets each job
module import them without importing :mod:`automator.sync.syncer` (no cycles).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog

from automator.sync import drift, order
from automator.sync.kube import ResourceType

__all__ = [
    "ANNOTATION_FORCE",
    "ANNOTATION_PRUNE",
    "ANNOTATION_RECONCILE",
    "LABEL_NAME",
    "LABEL_NAMESPACE",
    "Action",
    "Change",
    "Desired",
    "DriftReport",
    "Live",
    "Mapper",
    "SyncReport",
    "annotation",
    "label",
    "log_change",
]

log = structlog.get_logger(__name__)

LABEL_NAME = "automator.gitops.io/sync-name"
LABEL_NAMESPACE = "automator.gitops.io/sync-namespace"
ANNOTATION_FORCE = "automator.gitops.io/force"
ANNOTATION_PRUNE = "automator.gitops.io/prune"
ANNOTATION_RECONCILE = "automator.gitops.io/reconcile"

Action = Literal["created", "configured", "unchanged", "deleted", "skipped", "failed"]

Mapper = Callable[[Callable[[Any], Any], Iterable[Any]], list[Any]]
"""Runs a function over items in parallel, returning cluster errors instead of raising."""


@dataclass(frozen=True)
class Change:
    """What one sync did to one object (one change-set log line)."""

    id: str
    action: Action
    message: str = ""
    source: str = ""

    def to_json(self) -> dict[str, str]:
        return {"object": self.id, "action": self.action, "message": self.message}


@dataclass(frozen=True)
class DriftReport:
    """One object whose live state differs from Git on fields Git sets."""

    id: str
    source: str
    differences: tuple[drift.Difference, ...]
    missing: bool = False
    extra: bool = False  # in the cluster with our labels, gone from Git: the next sync prunes it


@dataclass
class SyncReport:
    """Everything one sync did, for the CLI, the daemon's metrics and the state record."""

    revision: str | None = None
    result: Literal["succeeded", "failed", "refused"] = "succeeded"
    message: str = ""
    changes: list[Change] = field(default_factory=list)
    drift: list[DriftReport] = field(default_factory=list)
    health: str = "healthy"
    health_message: str = ""
    errors: list[str] = field(default_factory=list)
    duration: float = 0.0
    requests: int = 0
    dry_run: bool = False

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for change in self.changes:
            out[change.action] = out.get(change.action, 0) + 1
        return out

    @property
    def ok(self) -> bool:
        return self.result == "succeeded"


@dataclass
class Live:
    """Live copies of desired objects, and the ones a LIST showed do not exist.

    Keyed by type *and* identity: one object listed at two versions (Git may use
    ``autoscaling/v1`` for one HPA and ``v2`` for another) comes back in two shapes, and
    each desired object must be compared with the shape of its own version.
    """

    objects: dict[tuple[ResourceType, order.ObjectId], dict[str, Any]] = field(default_factory=dict)
    absent: set[tuple[ResourceType, order.ObjectId]] = field(default_factory=set)

    def get(self, item: Desired) -> dict[str, Any] | None:
        return self.objects.get((item.rtype, item.id))

    def known_absent(self, item: Desired) -> bool:
        return (item.rtype, item.id) in self.absent


@dataclass
class Desired:
    obj: dict[str, Any]
    id: order.ObjectId
    rtype: ResourceType
    source: str
    hash: str

    @property
    def name(self) -> str:
        return str(self.id)


def label(obj: Mapping[str, Any], key: str) -> str | None:
    value = ((obj.get("metadata") or {}).get("labels") or {}).get(key)
    return value if isinstance(value, str) else None


def annotation(obj: Mapping[str, Any], key: str) -> str | None:
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(key)
    return value if isinstance(value, str) else None


def log_change(change: Change, dry_run: bool) -> None:
    """One ``sync_change`` log line (the change set, object by object)."""
    event = log.warning if change.action == "failed" else log.info
    event(
        "sync_change",
        object=change.id,
        action=change.action,
        message=change.message or None,
        source=change.source or None,
        dry_run=dry_run or None,
    )
