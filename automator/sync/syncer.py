"""One synchronization: Git revision -> rendered objects -> cluster, then prune and health.

The order of a sync, and why:

1. **Fetch** the branch (read-only) and, when ``sync.verify`` is set, verify the commit's
   signature. A refused commit stops here: the cluster is not touched.
2. **Render** each ``sync.paths`` entry (plain YAML or Kustomize). A path that fails to
   render is reported and skipped, and *pruning is off for that sync*: its objects are
   missing from the desired set only because it failed, not because Git removed them.
3. **Apply** in two stages, Flux style: cluster definitions (CRDs, Namespaces, cluster
   RBAC) first, then, once every new CRD is Established, everything else; within a stage,
   one kind at a time in a stable order, the objects of a kind in parallel.
   An object is only written when it would change. The cheap check comes first: when its
   Git content is the one recorded at the last apply (inventory hash) and the live object
   has every field Git sets (kubediff semantics), nothing is sent. Otherwise a server-side
   dry-run apply is compared with the live object, and only a real difference is applied,
   so resourceVersions of unchanged objects never move.
4. **Prune** what the previous inventory lists and Git no longer has, in reverse order;
   only objects carrying this sync's labels, never ``prune: disabled``; a failed delete
   stays in the inventory for the next sync.
5. **Health**: wait up to ``sync.timeout`` for workloads to roll out.
6. **State**: record revision, result, health and the new inventory in the cluster.
"""

from __future__ import annotations

import datetime as dt
import itertools
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog

from automator.config import Settings
from automator.errors import (
    AutomatorError,
    ClusterError,
    ClusterUnavailable,
    ManifestError,
    SignatureError,
)
from automator.gitrepo import GitRepo
from automator.sync import drift, health, order, render
from automator.sync.kube import Kube, ResourceType, api_group
from automator.sync.state import (
    InventoryEntry,
    SyncState,
    content_hash,
    state_configmap,
    state_from_configmap,
    state_name,
)

__all__ = [
    "ANNOTATION_FORCE",
    "ANNOTATION_PRUNE",
    "ANNOTATION_RECONCILE",
    "LABEL_NAME",
    "LABEL_NAMESPACE",
    "Change",
    "DriftReport",
    "SyncReport",
    "Synchronizer",
]

log = structlog.get_logger(__name__)

LABEL_NAME = "automator.gitops.io/sync-name"
LABEL_NAMESPACE = "automator.gitops.io/sync-namespace"
ANNOTATION_FORCE = "automator.gitops.io/force"
ANNOTATION_PRUNE = "automator.gitops.io/prune"
ANNOTATION_RECONCILE = "automator.gitops.io/reconcile"

Action = Literal["created", "configured", "unchanged", "deleted", "skipped", "failed"]
_POLL = 1.0
_IGNORED_META = ("managedFields", "resourceVersion")


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
class _Desired:
    obj: dict[str, Any]
    id: order.ObjectId
    rtype: ResourceType
    source: str
    hash: str

    @property
    def name(self) -> str:
        return str(self.id)


class Synchronizer:
    """Applies one config repo to one cluster; one instance per process, syncs in turn."""

    def __init__(self, settings: Settings, kube: Kube, source: GitRepo) -> None:
        self._settings = settings
        self._sync = settings.sync
        self._kube = kube
        self._source = source
        self._labels = {LABEL_NAME: self._sync.name, LABEL_NAMESPACE: self._sync.namespace}

    @classmethod
    def from_settings(cls, settings: Settings) -> Synchronizer:
        """The synchronizer ``automator sync`` runs: its own read-only clone, one cluster."""
        kube = Kube(settings.sync.kubeconfig, settings.sync.context)
        return cls(settings, kube, GitRepo(settings.git, settings.sync_clone_dir))

    def close(self) -> None:
        self._kube.close()

    # ------------------------------------------------------------------ public

    def run(self, *, dry_run: bool = False) -> SyncReport:
        """One sync. Never raises for a problem with the repo, an object or the cluster."""
        started = time.monotonic()
        requests_before = self._kube.requests
        report = SyncReport(dry_run=dry_run)
        try:
            self._run(report, dry_run=dry_run)
        except (ClusterUnavailable, ClusterError) as exc:
            report.result = "failed"
            report.message = str(exc)
            log.error("sync_failed", error=str(exc))
        report.duration = time.monotonic() - started
        report.requests = self._kube.requests - requests_before
        log.info(
            "sync_summary",
            revision=report.revision,
            result=report.result,
            dry_run=dry_run,
            health=report.health,
            duration=round(report.duration, 3),
            requests=report.requests,
            drifted=len(report.drift),
            **report.counts(),
        )
        return report

    def diff(self) -> tuple[str | None, list[DriftReport], list[str]]:
        """Git (the fetched tip) against the live objects, on the fields Git sets."""
        revision = self._source.sync()
        self._verify(revision)
        desired, errors = self._render()
        live = self._live(desired)
        reports: list[DriftReport] = []

        def one(item: _Desired) -> DriftReport | None:
            current = live.get(item.id)
            if current is None:
                current = self._kube.get(item.rtype, item.id.name, item.id.namespace)
            if current is None:
                return DriftReport(item.name, item.source, (), missing=True)
            diffs = tuple(drift.compare(item.obj, current))
            return DriftReport(item.name, item.source, diffs) if diffs else None

        for result in self._map(one, desired):
            if isinstance(result, BaseException):
                errors.append(str(result))
            elif result is not None:
                reports.append(result)
        return revision, reports, errors

    def status(self) -> SyncState:
        """The state the last sync recorded in the cluster."""
        return state_from_configmap(self._kube.get(_CONFIGMAP, *self._state_key()))

    # ------------------------------------------------------------------ the sync

    def _run(self, report: SyncReport, *, dry_run: bool) -> None:
        previous, state_ok = self._previous_state()
        try:
            report.revision = self._source.sync()
        except AutomatorError as exc:
            report.result, report.message = "failed", str(exc)
            log.error("sync_fetch_failed", error=str(exc))
            self._record(report, previous, previous.inventory)
            return
        try:
            self._verify(report.revision)
        except SignatureError as exc:
            report.result, report.message = "refused", str(exc)
            log.error("sync_commit_refused", revision=report.revision, reason=str(exc))
            self._record(report, previous, previous.inventory)
            return

        desired, render_errors = self._render()
        report.errors.extend(render_errors)
        hashes = {entry.id: entry.hash for entry in previous.inventory}
        stage_one = [d for d in desired if order.is_stage_one(d.obj)]
        stage_two = [d for d in desired if not order.is_stage_one(d.obj)]
        live = self._live(desired)

        applied: list[_Desired] = []
        for stage in (stage_one, stage_two):
            for _, group in itertools.groupby(
                sorted(stage, key=lambda d: order.sort_key(d.obj)),
                key=lambda d: order.sort_key(d.obj)[0],
            ):
                items = list(group)
                results = self._map(
                    lambda d: self._apply_one(d, live.get(d.id), hashes.get(d.id), dry_run),
                    items,
                )
                for item, result in zip(items, results, strict=True):
                    if isinstance(result, BaseException):
                        change = Change(item.name, "failed", str(result), item.source)
                        drifted = None
                    else:
                        change, drifted = result
                    self._log_change(change, dry_run)
                    report.changes.append(change)
                    if drifted is not None:
                        report.drift.append(drifted)
                    if change.action != "failed" or item.id in hashes:
                        applied.append(item)
            if stage is stage_one and not dry_run:
                self._wait_for_crds(stage_one, report)

        keep: list[InventoryEntry] = [
            InventoryEntry(d.id, d.rtype.version, d.hash if _succeeded(report, d) else "")
            for d in applied
        ]
        prune_ok = self._sync.prune and state_ok and not render_errors
        if not prune_ok and self._sync.prune:
            why = "the state record was unreadable" if not state_ok else "a path failed to render"
            log.warning("sync_prune_skipped", reason=why)
        desired_ids = {d.id for d in desired}
        gone = [e for e in previous.inventory if e.id not in desired_ids]
        if prune_ok:
            keep.extend(self._prune(gone, report, dry_run=dry_run))
        else:
            keep.extend(gone)

        if not dry_run:
            self._check_health(desired, report)
        failed = [c for c in report.changes if c.action == "failed"]
        if failed or render_errors:
            report.result = "failed"
            report.message = "; ".join([*render_errors, *(f"{c.id}: {c.message}" for c in failed)])
        elif report.health == "failed" or report.health == "progressing":
            report.result = "failed"
            report.message = report.health_message
        if not dry_run:
            self._record(report, previous, tuple(keep))

    # ------------------------------------------------------------------ steps

    def _verify(self, revision: str) -> None:
        verify = self._sync.verify
        if verify is None:
            return
        signature = self._source.verify_commit(
            revision,
            allowed_signers_file=verify.allowed_signers_file,
            keyring_file=verify.keyring_file,
        )
        log.info("sync_commit_verified", revision=revision, signer=signature.signer)

    def _render(self) -> tuple[list[_Desired], list[str]]:
        root = self._source.path
        errors: list[str] = []
        rendered: list[tuple[render.Rendered, str | None]] = []
        for entry in self._sync.paths:
            failures: list[ManifestError] = []
            try:
                objs = render.render_path(root, entry.path, errors=failures)
            except ManifestError as exc:
                failures.append(exc)
                objs = []
            for failure in failures:
                errors.append(str(failure))
                log.error("sync_render_failed", path=entry.path, error=str(failure))
            rendered.extend((r, entry.namespace) for r in objs)
        for item, _ in rendered:
            if item.obj.get("kind") == "CustomResourceDefinition":
                self._kube.learn_crd(item.obj)
        desired: list[_Desired] = []
        seen: dict[order.ObjectId, str] = {}
        for item, target_ns in rendered:
            try:
                prepared = self._prepare(item, target_ns)
            except (ClusterError, ClusterUnavailable) as exc:
                errors.append(f"{item.source}: {exc}")
                log.error("sync_object_invalid", source=item.source, error=str(exc))
                continue
            if prepared.id in seen:
                errors.append(
                    f"{prepared.name} is defined twice ({seen[prepared.id]} and "
                    f"{item.source}); keep one"
                )
                continue
            seen[prepared.id] = item.source
            desired.append(prepared)
        return desired, errors

    def _prepare(self, item: render.Rendered, target_ns: str | None) -> _Desired:
        obj = dict(item.obj)
        rtype = self._kube.resource_type(obj["apiVersion"], obj["kind"])
        meta = dict(obj.get("metadata") or {})
        if rtype.namespaced:
            meta["namespace"] = target_ns or meta.get("namespace") or "default"
        else:
            meta.pop("namespace", None)
        meta["labels"] = {**(meta.get("labels") or {}), **self._labels}
        obj["metadata"] = meta
        oid = order.ObjectId.from_obj(obj)
        return _Desired(obj, oid, rtype, item.source, content_hash(obj))

    def _live(self, desired: Sequence[_Desired]) -> dict[order.ObjectId, dict[str, Any]]:
        """The live objects carrying our labels, one LIST per type (not one GET each)."""
        types = {d.rtype for d in desired}
        out: dict[order.ObjectId, dict[str, Any]] = {}
        for items in self._map(
            lambda t: self._kube.list(t, labels={LABEL_NAME: self._sync.name}),
            sorted(types, key=str),
        ):
            if isinstance(items, BaseException):
                continue  # fall back to one GET per object
            for obj in items:
                if _label(obj, LABEL_NAMESPACE) == self._sync.namespace:
                    out[order.ObjectId.from_obj(obj)] = obj
        return out

    def _apply_one(
        self,
        item: _Desired,
        current: dict[str, Any] | None,
        recorded_hash: str | None,
        dry_run: bool,
    ) -> tuple[Change, DriftReport | None]:
        if current is None:
            current = self._kube.get(item.rtype, item.id.name, item.id.namespace)
        if current is not None and _annotation(current, ANNOTATION_RECONCILE) == "disabled":
            return Change(
                item.name, "skipped", "reconcile disabled on the live object", item.source
            ), None
        if current is None:
            self._kube.apply(item.obj, dry_run=dry_run)
            return Change(item.name, "created", "", item.source), None
        diffs = tuple(drift.compare(item.obj, current))
        git_unchanged = recorded_hash == item.hash
        if not diffs and git_unchanged:
            return Change(item.name, "unchanged", "", item.source), None
        try:
            preview = self._kube.apply(item.obj, dry_run=True)
        except ClusterError as exc:
            if not _immutable(exc):
                raise
            return self._recreate(item, exc, dry_run), None
        if _same(preview, current):
            return Change(item.name, "unchanged", "", item.source), None
        drifted = DriftReport(item.name, item.source, diffs) if git_unchanged and diffs else None
        if drifted is not None and self._sync.mode == "report":
            return (
                Change(item.name, "skipped", "drifted from Git; sync.mode is report", item.source),
                drifted,
            )
        if not dry_run:
            self._kube.apply(item.obj)
        return Change(item.name, "configured", "", item.source), drifted

    def _recreate(self, item: _Desired, exc: ClusterError, dry_run: bool) -> Change:
        if _annotation(item.obj, ANNOTATION_FORCE) != "true":
            raise ClusterError(
                f"{exc}; a field that cannot change was changed: revert it in Git, or add the "
                f'annotation {ANNOTATION_FORCE}: "true" to let the synchronizer recreate '
                "the object",
                status=exc.status,
                reason=exc.reason,
            ) from exc
        if dry_run:
            return Change(
                item.name, "configured", "would be recreated (immutable field)", item.source
            )
        self._kube.delete(item.rtype, item.id.name, item.id.namespace)
        deadline = time.monotonic() + self._sync.timeout
        while self._kube.get(item.rtype, item.id.name, item.id.namespace) is not None:
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"{item.name}: deleted to recreate it, but it was still there after "
                    f"{self._sync.timeout:g}s (finalizers?); it is recreated on the next sync"
                )
            time.sleep(0.2)
        self._kube.apply(item.obj)
        return Change(item.name, "configured", "recreated (immutable field changed)", item.source)

    def _wait_for_crds(self, stage: Sequence[_Desired], report: SyncReport) -> None:
        crds = [d for d in stage if d.obj.get("kind") == "CustomResourceDefinition"]
        deadline = time.monotonic() + self._sync.timeout
        for crd in crds:
            while True:
                live = self._kube.get(crd.rtype, crd.id.name)
                if live is not None and _condition(live, "Established") == "True":
                    break
                if time.monotonic() > deadline:
                    report.errors.append(
                        f"{crd.name} was not Established within {self._sync.timeout:g}s"
                    )
                    break
                time.sleep(0.2)

    def _prune(
        self, gone: Sequence[InventoryEntry], report: SyncReport, *, dry_run: bool
    ) -> list[InventoryEntry]:
        """Delete what Git no longer has; return the entries that must stay listed."""
        keep: list[InventoryEntry] = []
        for entry in sorted(gone, key=lambda e: order.delete_key(_stub(e)), reverse=False):
            name = str(entry.id)
            try:
                rtype = self._kube.resource_type(entry.api_version, entry.id.kind)
                live = self._kube.get(rtype, entry.id.name, entry.id.namespace)
                if live is None:
                    continue
                if (
                    _label(live, LABEL_NAME) != self._sync.name
                    or _label(live, LABEL_NAMESPACE) != self._sync.namespace
                ):
                    change = Change(
                        name, "skipped", "not pruned: it does not carry this sync's labels"
                    )
                elif _annotation(live, ANNOTATION_PRUNE) == "disabled":
                    change = Change(name, "skipped", f"not pruned: {ANNOTATION_PRUNE} is disabled")
                elif _annotation(live, ANNOTATION_RECONCILE) == "disabled":
                    change = Change(
                        name, "skipped", f"not pruned: {ANNOTATION_RECONCILE} is disabled"
                    )
                else:
                    if not dry_run:
                        self._kube.delete(rtype, entry.id.name, entry.id.namespace)
                    change = Change(name, "deleted")
            except (ClusterError, ClusterUnavailable) as exc:
                change = Change(name, "failed", f"prune failed: {exc}")
                keep.append(entry)
            self._log_change(change, dry_run)
            report.changes.append(change)
        return keep

    def _check_health(self, desired: Sequence[_Desired], report: SyncReport) -> None:
        skipped = {c.id for c in report.changes if c.action in ("skipped", "failed")}
        pending = [d for d in desired if d.name not in skipped and _assessable(d.obj)]
        deadline = time.monotonic() + self._sync.timeout
        verdicts: dict[str, health.Health] = {}
        while pending:
            results = self._map(
                lambda d: self._kube.get(d.rtype, d.id.name, d.id.namespace), pending
            )
            still: list[_Desired] = []
            for item, live in zip(pending, results, strict=True):
                if isinstance(live, BaseException) or live is None:
                    verdicts[item.name] = health.Health("progressing", "not found yet")
                    still.append(item)
                    continue
                verdict = health.assess(live) or health.Health("healthy", "")
                verdicts[item.name] = verdict
                if verdict.status == "progressing":
                    still.append(item)
            if any(v.status == "failed" for v in verdicts.values()) or not still:
                break
            if time.monotonic() + _POLL > deadline:
                break
            pending = still
            time.sleep(_POLL)
        failed = {k: v for k, v in verdicts.items() if v.status == "failed"}
        waiting = {k: v for k, v in verdicts.items() if v.status == "progressing"}
        for name, verdict in sorted(verdicts.items()):
            log.info("sync_health", object=name, health=verdict.status, message=verdict.message)
        if failed:
            report.health = "failed"
            report.health_message = "; ".join(
                f"{k}: {v.message}" for k, v in sorted(failed.items())
            )
        elif waiting:
            report.health = "progressing"
            report.health_message = "not healthy within sync.timeout: " + "; ".join(
                f"{k}: {v.message}" for k, v in sorted(waiting.items())
            )
        else:
            report.health, report.health_message = "healthy", ""

    # ------------------------------------------------------------------ state

    def _state_key(self) -> tuple[str, str]:
        return state_name(self._sync.name), self._sync.namespace

    def _previous_state(self) -> tuple[SyncState, bool]:
        try:
            return self.status(), True
        except ClusterError as exc:
            if exc.status:
                raise
            log.error("sync_state_unreadable", error=str(exc))
            return SyncState(), False

    def _record(
        self, report: SyncReport, previous: SyncState, inventory: tuple[InventoryEntry, ...]
    ) -> None:
        if report.dry_run:
            return
        applied = report.revision if report.result == "succeeded" else previous.applied_revision
        state = SyncState(
            revision=report.revision,
            applied_revision=applied,
            result=report.result,
            message=report.message[:2000],
            health=report.health,
            health_message=report.health_message[:2000],
            time=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            counts=report.counts(),
            inventory=inventory,
        )
        namespace = self._sync.namespace
        if self._kube.get(_NAMESPACE, namespace) is None:
            self._kube.apply(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
            )
        self._kube.apply(state_configmap(state, name=self._sync.name, namespace=namespace))

    # ------------------------------------------------------------------ helpers

    def _map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
        """``fn`` over ``items`` on ``sync.max_concurrency`` threads; errors are returned."""

        def safe(item: Any) -> Any:
            try:
                return fn(item)
            except (ClusterError, ClusterUnavailable) as exc:
                return exc

        items = list(items)
        if len(items) <= 1:
            return [safe(i) for i in items]
        with ThreadPoolExecutor(max_workers=self._sync.max_concurrency) as pool:
            return list(pool.map(safe, items))

    @staticmethod
    def _log_change(change: Change, dry_run: bool) -> None:
        event = log.warning if change.action == "failed" else log.info
        event(
            "sync_change",
            object=change.id,
            action=change.action,
            message=change.message or None,
            source=change.source or None,
            dry_run=dry_run or None,
        )


_CONFIGMAP = ResourceType("", "v1", "ConfigMap", "configmaps", True)
_NAMESPACE = ResourceType("", "v1", "Namespace", "namespaces", False)


def _succeeded(report: SyncReport, item: _Desired) -> bool:
    return not any(c.id == item.name and c.action in ("failed", "skipped") for c in report.changes)


def _stub(entry: InventoryEntry) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": entry.id.name}
    if entry.id.namespace:
        meta["namespace"] = entry.id.namespace
    return {"apiVersion": entry.api_version, "kind": entry.id.kind, "metadata": meta}


def _label(obj: Mapping[str, Any], key: str) -> str | None:
    value = ((obj.get("metadata") or {}).get("labels") or {}).get(key)
    return value if isinstance(value, str) else None


def _annotation(obj: Mapping[str, Any], key: str) -> str | None:
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(key)
    return value if isinstance(value, str) else None


def _condition(obj: Mapping[str, Any], kind: str) -> str | None:
    for cond in (obj.get("status") or {}).get("conditions") or ():
        if isinstance(cond, Mapping) and cond.get("type") == kind:
            status = cond.get("status")
            return status if isinstance(status, str) else None
    return None


def _immutable(exc: ClusterError) -> bool:
    return exc.status == 422 and "immutable" in str(exc)


def _assessable(obj: Mapping[str, Any]) -> bool:
    return obj.get("kind") in {"Deployment", "StatefulSet", "DaemonSet", "Job"} and api_group(
        str(obj.get("apiVersion", ""))
    ) in {"apps", "batch"}


def _same(preview: Mapping[str, Any], live: Mapping[str, Any]) -> bool:
    """Whether a dry-run result equals the live object (bookkeeping fields aside)."""
    return _strip(preview) == _strip(live)


def _strip(obj: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(obj)
    meta = dict(out.get("metadata") or {})
    for key in _IGNORED_META:
        meta.pop(key, None)
    out["metadata"] = meta
    return out
