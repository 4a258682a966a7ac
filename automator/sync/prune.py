"""Pruning: delete what Git no longer has, and only what is provably this sync's.

Why a module of its own: deciding what may be deleted is the one dangerous job of a
sync (a wrong answer deletes someone else's object, or a whole Namespace), so its rules
are kept together and apart from applying: our labels, the ``prune``/``reconcile``
annotations, reverse apply order, and a Namespace only when nothing foreign is in it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from automator.config import SyncSettings
from automator.errors import ClusterError, ClusterUnavailable
from automator.sync import order
from automator.sync.kube import Kube, ResourceType
from automator.sync.model import (
    ANNOTATION_PRUNE,
    ANNOTATION_RECONCILE,
    LABEL_NAME,
    LABEL_NAMESPACE,
    Change,
    Mapper,
    SyncReport,
    annotation,
    label,
    log_change,
)
from automator.sync.state import InventoryEntry

__all__ = ["Pruner"]


class Pruner:
    """Deletes the inventory entries Git dropped, through ``kube``, as ``sync`` allows."""

    def __init__(self, kube: Kube, sync: SyncSettings, map_fn: Mapper) -> None:
        self._kube = kube
        self._sync = sync
        self._map = map_fn

    def prune(
        self,
        gone: Sequence[InventoryEntry],
        desired_ids: set[order.ObjectId],
        report: SyncReport,
        *,
        dry_run: bool,
    ) -> list[InventoryEntry]:
        """Delete what Git no longer has, in reverse apply order; return what stays listed.

        A failed delete stays listed (retried next sync); an object we may not delete is
        dropped from the inventory: it is no longer ours to manage.
        """
        keep: list[InventoryEntry] = []
        for entry in sorted(gone, key=lambda e: order.delete_key(e.id)):
            name = str(entry.id)
            try:
                rtype = self._kube.served_type(entry.id.group, entry.id.kind, entry.version)
                if rtype is None:  # nothing serves the kind any more: no such object exists
                    change = Change(name, "skipped", "not pruned: its kind is no longer served")
                    log_change(change, dry_run)
                    report.changes.append(change)
                    continue
                live = self._kube.get(rtype, entry.id.name, entry.id.namespace)
                if live is None:
                    change = Change(name, "skipped", "not pruned: already gone from the cluster")
                    log_change(change, dry_run)
                    report.changes.append(change)
                    continue
                reason = self.prunable(live)
                if annotation(live, ANNOTATION_RECONCILE) == "disabled":
                    keep.append(entry)  # an incident's pause: prune it once re-enabled
                if reason is None and rtype.kind == "Namespace" and not rtype.group:
                    reason = self._namespace_blocker(entry.id.name, desired_ids)
                    if reason is not None:
                        keep.append(entry)  # ours: prune it once it is empty
                if reason is not None:
                    change = Change(name, "skipped", f"not pruned: {reason}")
                else:
                    if not dry_run:
                        self._kube.delete(rtype, entry.id.name, entry.id.namespace)
                    change = Change(name, "deleted", "removed from Git")
            except (ClusterError, ClusterUnavailable) as exc:
                change = Change(name, "failed", f"prune failed: {exc}")
                keep.append(entry)
            log_change(change, dry_run)
            report.changes.append(change)
        return keep

    def prunable(self, live: Mapping[str, Any]) -> str | None:
        """Why this live object must not be pruned, or None when it may be."""
        if (
            label(live, LABEL_NAME) != self._sync.name
            or label(live, LABEL_NAMESPACE) != self._sync.namespace
        ):
            return "it does not carry this sync's labels"
        if annotation(live, ANNOTATION_PRUNE) == "disabled":
            return f"{ANNOTATION_PRUNE} is disabled"
        if annotation(live, ANNOTATION_RECONCILE) == "disabled":
            return f"{ANNOTATION_RECONCILE} is disabled"
        return None

    def _namespace_blocker(self, namespace: str, desired_ids: set[order.ObjectId]) -> str | None:
        """Why deleting this Namespace would delete something that is not ours to delete.

        Deleting a Namespace deletes everything in it, so it is pruned only when it holds
        nothing still in Git and nothing without our labels (or protected), apart from
        what Kubernetes itself puts there or will collect with its owner.
        """
        if any(oid.namespace == namespace for oid in desired_ids):
            return "it still holds objects that are in Git"
        blockers: list[str] = []
        kinds = self._kube.kinds(namespaced_only=True)
        for listed in self._map(
            lambda versions: self._kube.list_served(versions, namespace=namespace), kinds
        ):
            if isinstance(listed, BaseException):
                return f"cannot check what it holds ({listed})"
            if listed is None:
                continue  # a kind this server does not serve
            rtype, items = listed
            for obj in items:
                if _incidental(rtype, obj) or self.prunable(obj) is None:
                    continue
                meta = obj.get("metadata") or {}
                blockers.append(f"{rtype.kind}/{meta.get('name')}")
        if blockers:
            listed = ", ".join(sorted(set(blockers))[:3])
            more = f" and {len(set(blockers)) - 3} more" if len(set(blockers)) > 3 else ""
            return f"it holds objects that are not this sync's to delete ({listed}{more})"
        return None


_INCIDENTAL_KINDS = frozenset({("", "Event"), ("events.k8s.io", "Event"), ("", "Endpoints")})
_INCIDENTAL_KINDS |= {("discovery.k8s.io", "EndpointSlice")}
_DEFAULT_OBJECTS = frozenset({("ServiceAccount", "default"), ("ConfigMap", "kube-root-ca.crt")})


def _incidental(rtype: ResourceType, obj: Mapping[str, Any]) -> bool:
    """Objects a namespace holds that are nobody's to protect: Kubernetes' own defaults,
    events and endpoints, things being deleted, and things collected with their owner."""
    meta = obj.get("metadata") or {}
    return (
        (rtype.group, rtype.kind) in _INCIDENTAL_KINDS
        or (rtype.kind, meta.get("name")) in _DEFAULT_OBJECTS
        or bool(meta.get("ownerReferences"))
        or bool(meta.get("deletionTimestamp"))
    )
