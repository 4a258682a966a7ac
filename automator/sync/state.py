"""What the synchronizer remembers between syncs, kept in the cluster (one ConfigMap).

The record holds the *inventory* (every object the last sync applied, with the apiVersion
needed to address it again and a hash of its Git content) and the outcome of the last
sync: revision, result, health and counts. Keeping it in the cluster, not on local disk,
means a restarted or rescheduled synchronizer pod still knows what it owns and can prune;
``automator sync --status`` reads it back. Pure: conversion to and from the ConfigMap
dict only; :mod:`automator.sync.syncer` does the I/O.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from automator.errors import AutomatorError, ClusterError
from automator.sync.order import ObjectId

__all__ = [
    "InventoryEntry",
    "SyncState",
    "content_hash",
    "state_configmap",
    "state_from_configmap",
    "state_name",
]

_FORMAT = "automator.gitops.io/sync-state.v1"
_MOVED = "moved to binaryData inventory.json.gz"


def state_name(sync_name: str) -> str:
    """The ConfigMap that holds one sync's state."""
    return f"automator-sync-{sync_name}"


def content_hash(obj: Mapping[str, Any]) -> str:
    """A stable hash of an object's Git content (key order and whitespace do not count)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class InventoryEntry:
    """One object the synchronizer applied: its identity, apiVersion and content hash."""

    id: ObjectId
    version: str
    hash: str = ""

    @property
    def api_version(self) -> str:
        return f"{self.id.group}/{self.version}" if self.id.group else self.version

    def to_json(self) -> dict[str, str]:
        return {"id": self.id.to_json(), "v": self.version, "h": self.hash}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> InventoryEntry:
        return cls(ObjectId.from_json(str(doc["id"])), str(doc["v"]), str(doc.get("h", "")))


@dataclass(frozen=True)
class SyncState:
    """The outcome of the last sync, as ``sync --status`` shows it."""

    revision: str | None = None
    result: str = "never"
    message: str = ""
    health: str = "unknown"
    health_message: str = ""
    time: str = ""
    applied_revision: str | None = None
    counts: Mapping[str, int] = field(default_factory=dict)
    inventory: tuple[InventoryEntry, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The state without its inventory (what ``sync --status --output json`` prints)."""
        return {
            "revision": self.revision,
            "applied_revision": self.applied_revision,
            "result": self.result,
            "message": self.message,
            "health": self.health,
            "health_message": self.health_message,
            "time": self.time,
            "counts": dict(self.counts),
            "objects": len(self.inventory),
        }


def state_configmap(state: SyncState, *, name: str, namespace: str) -> dict[str, Any]:
    """The ConfigMap to server-side apply for ``state``."""
    summary = state.to_json()
    summary.pop("objects")
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": state_name(name),
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "automator"},
            "annotations": {"automator.gitops.io/format": _FORMAT},
        },
        "data": {
            "state.json": json.dumps(summary, sort_keys=True),
            # not JSON on purpose: a release from before the move to binaryData then finds
            # the record unreadable and rebuilds the inventory, instead of trusting "[]"
            "inventory.json": _MOVED,
        },
        # gzip: a ConfigMap holds at most 1 MiB; plain JSON would fill it at ~10,000 objects
        "binaryData": {
            "inventory.json.gz": base64.b64encode(
                gzip.compress(
                    json.dumps(
                        [entry.to_json() for entry in state.inventory], separators=(",", ":")
                    ).encode(),
                    mtime=0,
                )
            ).decode()
        },
    }


def state_from_configmap(obj: Mapping[str, Any] | None) -> SyncState:
    """Read a state ConfigMap back; an absent one is the never-synced state."""
    if obj is None:
        return SyncState()
    meta = obj.get("metadata") or {}
    where = f"ConfigMap {meta.get('namespace')}/{meta.get('name')}"
    try:
        data = obj.get("data") or {}
        summary = json.loads(data.get("state.json") or "{}")
        inventory = tuple(InventoryEntry.from_json(doc) for doc in json.loads(_inventory(obj)))
        return SyncState(
            revision=_optional(summary.get("revision")),
            applied_revision=_optional(summary.get("applied_revision")),
            result=str(summary.get("result", "never")),
            message=str(summary.get("message", "")),
            health=str(summary.get("health", "unknown")),
            health_message=str(summary.get("health_message", "")),
            time=str(summary.get("time", "")),
            counts={str(k): int(v) for k, v in (summary.get("counts") or {}).items()},
            inventory=inventory,
        )
    except (ValueError, KeyError, TypeError, AttributeError, AutomatorError) as exc:
        raise ClusterError(
            f"{where}: the synchronizer's state is unreadable ({type(exc).__name__}: {exc}); "
            "it is rebuilt from the objects carrying this sync's labels; delete the "
            "ConfigMap if this repeats"
        ) from exc


def _inventory(obj: Mapping[str, Any]) -> str:
    """The inventory JSON: gzipped under ``binaryData``, else plain under ``data``."""
    packed = (obj.get("binaryData") or {}).get("inventory.json.gz")
    if not packed:
        plain = str((obj.get("data") or {}).get("inventory.json") or "[]")
        return "[]" if plain == _MOVED else plain
    try:
        return gzip.decompress(base64.b64decode(packed, validate=True)).decode()
    except (OSError, EOFError, binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError(f"binaryData inventory.json.gz does not decompress: {exc}") from exc


def _optional(value: object) -> str | None:
    return None if value is None else str(value)
