"""State and inventory in the cluster: what the last sync did and which objects are ours.

Why a module of its own: the record is the synchronizer's memory between syncs (and
processes): the inventory pruning trusts, rebuilt from our labels when the record is
missing, and the result and health ``automator sync --status`` shows. Its encoding is
pure (:mod:`automator.sync.state`); reading, rebuilding and writing it is this module.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import structlog

from automator.config import SyncSettings
from automator.errors import ClusterError
from automator.sync import order
from automator.sync.kube import Kube, ResourceType
from automator.sync.model import LABEL_NAME, LABEL_NAMESPACE, Mapper, SyncReport, label
from automator.sync.state import (
    InventoryEntry,
    SyncState,
    state_configmap,
    state_from_configmap,
    state_name,
)

__all__ = ["StateStore"]

log = structlog.get_logger(__name__)

_CONFIGMAP = ResourceType("", "v1", "ConfigMap", "configmaps", True)
_NAMESPACE = ResourceType("", "v1", "Namespace", "namespaces", False)


class StateStore:
    """Reads and writes one sync's state ConfigMap in ``sync.namespace``."""

    def __init__(self, kube: Kube, sync: SyncSettings, map_fn: Mapper) -> None:
        self._kube = kube
        self._sync = sync
        self._map = map_fn
        self._namespace_ready = False

    def status(self) -> SyncState:
        """The state the last sync recorded in the cluster."""
        return state_from_configmap(self._kube.get(_CONFIGMAP, *self._state_key()))

    def _state_key(self) -> tuple[str, str]:
        return state_name(self._sync.name), self._sync.namespace

    def previous(self, *, rebuild: bool = True) -> tuple[SyncState, bool]:
        """The recorded state, and whether its inventory can be trusted for pruning.

        With no record (first sync, or someone deleted it) or an unreadable one, the
        inventory is rebuilt from the objects that carry this sync's labels, so objects
        removed from Git meanwhile are still pruned; if that scan is incomplete, pruning
        is off for this sync.
        """
        try:
            state = self.status()
            if state.result != "never":
                return state, True
        except ClusterError as exc:
            if exc.status:
                raise
            log.error("sync_state_unreadable", error=str(exc))
            state = SyncState()
        if not rebuild:
            return state, False
        inventory, complete = self._owned_objects()
        return replace(state, inventory=inventory), complete

    def _owned_objects(self) -> tuple[tuple[InventoryEntry, ...], bool]:
        """Every live object carrying this sync's labels, one LIST per kind (at its
        preferred served version)."""
        selector = {LABEL_NAME: self._sync.name}
        found: dict[str, InventoryEntry] = {}
        complete = True
        kinds = self._kube.kinds()
        for listed in self._map(
            lambda versions: self._kube.list_served(versions, labels=selector), kinds
        ):
            if isinstance(listed, BaseException):
                complete = False
                continue
            if listed is None:
                continue  # a kind this server does not serve
            rtype, items = listed
            for obj in items:
                uid = str((obj.get("metadata") or {}).get("uid", ""))
                if label(obj, LABEL_NAMESPACE) == self._sync.namespace and uid not in found:
                    oid = order.ObjectId.from_obj(obj)
                    found[uid] = InventoryEntry(oid, rtype.version, "")
        if found:
            log.info("sync_inventory_rebuilt", objects=len(found), complete=complete)
        return tuple(found.values()), complete

    def record(
        self,
        report: SyncReport,
        previous: SyncState,
        inventory: tuple[InventoryEntry, ...],
        *,
        applied: bool,
    ) -> None:
        """Write the state record (never in a dry run).

        ``applied``: this revision's objects all went in, whatever their health; a fetch
        failure or refused commit carries the previous health, since nothing changed.
        """
        if report.dry_run:
            return
        nothing_done = report.result == "refused" or not report.changes
        if nothing_done and not applied:
            report.health = previous.health if previous.result != "never" else "unknown"
            report.health_message = previous.health_message
        state = SyncState(
            revision=report.revision,
            applied_revision=report.revision if applied else previous.applied_revision,
            result=report.result,
            message=report.message[:2000],
            health=report.health,
            health_message=report.health_message[:2000],
            time=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            counts=report.counts(),
            inventory=inventory,
        )
        record = state_configmap(state, name=self._sync.name, namespace=self._sync.namespace)
        if not self._namespace_ready:
            self._ensure_state_namespace()
        try:
            self._kube.apply(record)
        except ClusterError as exc:
            if exc.status != 404:
                raise
            self._ensure_state_namespace()  # someone deleted sync.namespace meanwhile
            self._kube.apply(record)
        self._namespace_ready = True

    def _ensure_state_namespace(self) -> None:
        namespace = self._sync.namespace
        if self._kube.get(_NAMESPACE, namespace) is None:
            self._kube.apply(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
            )
