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

import fcntl
import itertools
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

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
from automator.sync import drift, order, render
from automator.sync.kube import Kube, ResourceType
from automator.sync.model import (
    ANNOTATION_FORCE,
    ANNOTATION_PRUNE,
    ANNOTATION_RECONCILE,
    LABEL_NAME,
    LABEL_NAMESPACE,
    Action,
    Change,
    Desired,
    DriftReport,
    Live,
    SyncReport,
    annotation,
    label,
    log_change,
)
from automator.sync.prune import Pruner
from automator.sync.record import StateStore
from automator.sync.rollout import HealthWaiter
from automator.sync.state import (
    InventoryEntry,
    SyncState,
    content_hash,
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

_FEW = 5
_REPORT_ONLY = "drifted from Git; sync.mode is report"
_APPLIED = frozenset({"created", "configured", "unchanged"})
_IGNORED_META = ("managedFields", "resourceVersion")


class Synchronizer:
    """Applies one config repo to one cluster; one instance per process, syncs in turn."""

    def __init__(self, settings: Settings, kube: Kube, source: GitRepo) -> None:
        self._settings = settings
        self._sync = settings.sync
        self._kube = kube
        self._source = source
        self._labels = {LABEL_NAME: self._sync.name, LABEL_NAMESPACE: self._sync.namespace}
        # the last clean render and its revision, reused while the revision is the same
        # (plain YAML only: a kustomization may pull remote bases that change under it)
        self._rendered: tuple[str, list[Desired]] | None = None
        self._interrupted = threading.Event()
        self._pruner = Pruner(kube, self._sync, self._map)
        self._health = HealthWaiter(kube, self._sync, self._interrupted, self._map)
        self._state = StateStore(kube, self._sync, self._map)

    def interrupt(self) -> None:
        """Cut the waits of a running sync short (shutdown): the applies already made
        stay, the health wait ends now, and the state says so. Later syncs run normally."""
        self._interrupted.set()

    @contextmanager
    def _clone_lock(self) -> Iterator[None]:
        """One user of the clone at a time (the daemon, `diff`, `sync --once` may overlap):
        the revision verified is then the revision rendered."""
        path = self._source.path
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_name(path.name + ".lock"), "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.info("sync_waiting_for_clone", clone=str(path))
                fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

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
        self._interrupted.clear()
        try:
            with self._clone_lock():
                self._run(report, dry_run=dry_run)
        except AutomatorError as exc:
            report.result = "failed"
            report.message = str(exc)
            log.error("sync_failed", error=str(exc))
        except Exception as exc:  # noqa: BLE001 - a bug must not kill the daemon
            report.result = "failed"
            report.message = f"internal error ({type(exc).__name__}); the next sync retries"
            log.error("sync_failed", error=type(exc).__name__, where=_where(exc))
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
        """Git (the fetched tip) against the live objects, on the fields Git sets.

        A field Git sets to ``false``/``0``/``[]`` that is absent live is ambiguous (the
        server omits such values from some fields and keeps them in others); a
        server-side dry-run settles it, so only real differences are reported. Objects
        the next sync would prune are reported too (``extra``).
        """
        with self._clone_lock():
            revision = self._source.sync()
            self._verify(revision)
            desired, errors = self._render(revision)
        live = self._live(desired)
        reports: list[DriftReport] = []

        def one(item: Desired) -> DriftReport | None:
            current = live.get(item)
            if current is None and not live.known_absent(item):
                current = self._kube.get(item.rtype, item.id.name, item.id.namespace)
            if current is None:
                return DriftReport(item.name, item.source, (), missing=True)
            if annotation(current, ANNOTATION_RECONCILE) == "disabled":
                return None
            strict = tuple(drift.compare(item.obj, current, strict=True))
            if not strict:
                return None
            try:
                if _same(self._kube.apply(item.obj, dry_run=True), current):
                    return None
            except ClusterError:
                pass  # the dry-run is only a tie-breaker: report what the comparison found
            lenient = tuple(drift.compare(item.obj, current))
            return DriftReport(item.name, item.source, lenient or strict)

        for result in self._map(one, desired):
            if isinstance(result, BaseException):
                errors.append(str(result))
            elif result is not None:
                reports.append(result)
        if self._sync.prune and not errors:
            reports.extend(self._would_prune({d.id for d in desired}))
        return revision, reports, errors

    def _would_prune(self, desired_ids: set[order.ObjectId]) -> list[DriftReport]:
        previous, _ = self._state.previous(rebuild=False)
        out: list[DriftReport] = []
        for entry in previous.inventory:
            if entry.id in desired_ids:
                continue
            rtype = self._kube.served_type(entry.id.group, entry.id.kind, entry.version)
            live = rtype and self._kube.get(rtype, entry.id.name, entry.id.namespace)
            if live and self._pruner.prunable(live) is None:
                out.append(DriftReport(str(entry.id), "", (), extra=True))
        return out

    def status(self) -> SyncState:
        """The state the last sync recorded in the cluster."""
        return self._state.status()

    # ------------------------------------------------------------------ the sync

    def _run(self, report: SyncReport, *, dry_run: bool) -> None:
        previous, inventory_ok = self._state.previous()
        try:
            report.revision = self._source.sync()
            self._verify(report.revision)
        except SignatureError as exc:
            report.result, report.message = "refused", str(exc)
            log.error("sync_commit_refused", revision=report.revision, reason=str(exc))
            self._state.record(report, previous, previous.inventory, applied=False)
            return
        except AutomatorError as exc:
            report.result, report.message = "failed", str(exc)
            log.error("sync_fetch_failed", revision=report.revision, error=str(exc))
            self._state.record(report, previous, previous.inventory, applied=False)
            return

        desired, render_errors = self._render(report.revision)
        report.errors.extend(render_errors)
        hashes = {entry.id: entry.hash for entry in previous.inventory}
        actions, live = self._apply_all(desired, hashes, report, dry_run=dry_run)

        # Every desired object is listed, applied or not (a timed-out apply may have
        # happened); the hash is that of the content last applied successfully.
        inventory: list[InventoryEntry] = [
            InventoryEntry(
                d.id,
                d.rtype.version,
                d.hash if actions.get(d.id) in _APPLIED else hashes.get(d.id, ""),
            )
            for d in desired
        ]
        desired_ids = {d.id for d in desired}
        gone = [e for e in previous.inventory if e.id not in desired_ids]
        if not self._sync.prune:
            pass  # as Flux: objects removed from Git while pruning is off are let go
        elif render_errors or not inventory_ok:
            why = "a file failed to render" if render_errors else "the inventory is incomplete"
            log.warning("sync_prune_skipped", reason=why)
            inventory.extend(gone)
        else:
            inventory.extend(self._pruner.prune(gone, desired_ids, report, dry_run=dry_run))

        if dry_run:
            report.health, report.health_message = "unknown", "not checked in a dry run"
        else:
            self._health.check(desired, report, live)
        failed = [c for c in report.changes if c.action == "failed"]
        if failed or report.errors:
            report.result = "failed"
            report.message = "; ".join([*report.errors, *(f"{c.id}: {c.message}" for c in failed)])
        elif report.health in ("failed", "progressing"):
            report.result = "failed"
            report.message = report.health_message
        applied = not report.errors and "failed" not in actions.values()
        self._state.record(report, previous, tuple(inventory), applied=applied)

    def _apply_all(
        self,
        desired: Sequence[Desired],
        hashes: Mapping[order.ObjectId, str],
        report: SyncReport,
        *,
        dry_run: bool,
    ) -> tuple[dict[order.ObjectId, Action], Live]:
        """Stage one, wait for CRDs, stage two; kinds in order, a kind's objects at once."""
        live = self._live(desired)
        actions: dict[order.ObjectId, Action] = {}
        # in a dry run, what stage one would create does not exist yet: objects in a new
        # Namespace or of a new CRD's kind cannot be dry-run applied, only announced
        pending: set[tuple[str, str]] = set()
        stage_one = [d for d in desired if order.is_stage_one(d.obj)]
        stage_two = [d for d in desired if not order.is_stage_one(d.obj)]
        for stage in (stage_one, stage_two):
            for _, group in itertools.groupby(
                sorted(stage, key=lambda d: order.sort_key(d.obj)),
                key=lambda d: order.sort_key(d.obj)[0],
            ):
                items = list(group)
                results = self._map(
                    lambda d: self._apply_one(
                        d, live.get(d), live.known_absent(d), hashes.get(d.id), dry_run
                    ),
                    items,
                )
                for item, result in zip(items, results, strict=True):
                    drifted: DriftReport | None = None
                    if isinstance(result, ClusterError) and dry_run and _waits_for(item, pending):
                        change = Change(
                            item.name, "created", "after its Namespace or CRD", item.source
                        )
                    elif isinstance(result, BaseException):
                        change = Change(item.name, "failed", str(result), item.source)
                    else:
                        change, drifted = result
                    if dry_run and change.action == "created":
                        pending.update(_provides(item.obj))
                    actions[item.id] = change.action
                    log_change(change, dry_run)
                    report.changes.append(change)
                    if drifted is not None:
                        report.drift.append(drifted)
                        log.warning(
                            "sync_drift",
                            object=item.name,
                            source=item.source,
                            fields=[d.path or "(whole object)" for d in drifted.differences],
                            missing=drifted.missing or None,
                            corrected=change.action != "skipped" and not dry_run,
                        )
            if stage is stage_one and not dry_run:
                self._wait_for_crds(stage_one, report)
        return actions, live

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

    def _render(self, revision: str) -> tuple[list[Desired], list[str]]:
        """Every desired object, prepared for the cluster, and the render errors.

        A daemon re-syncs the same revision most of the time: a clean render of plain
        YAML is kept and reused until the revision changes (the largest cost of an
        unchanged re-sync otherwise). Kustomize output and failed renders are redone.
        """
        if self._rendered is not None and self._rendered[0] == revision:
            return list(self._rendered[1]), []
        desired, errors = self._render_now()
        if not errors and not any(d.source.endswith("(kustomize)") for d in desired):
            self._rendered = (revision, desired)
        return list(desired), errors

    def _render_now(self) -> tuple[list[Desired], list[str]]:
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
        desired: list[Desired] = []
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

    def _prepare(self, item: render.Rendered, target_ns: str | None) -> Desired:
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
        return Desired(obj, oid, rtype, item.source, content_hash(obj))

    def _live(self, desired: Sequence[Desired]) -> Live:
        """The live state of every desired object, in LISTs rather than one GET each.

        One LIST per kind with our label selector finds what we applied before; for
        desired objects it did not return (new ones, or live ones without our labels),
        one unlabelled LIST per kind and namespace tells the two apart. An object no
        successful LIST could account for is fetched on its own later.
        """
        types = sorted({d.rtype for d in desired}, key=str)
        live = Live()
        listed: set[ResourceType] = set()
        selector = {LABEL_NAME: self._sync.name}
        for rtype, items in zip(
            types, self._map(lambda t: self._kube.list(t, labels=selector), types), strict=True
        ):
            if isinstance(items, BaseException):
                continue
            listed.add(rtype)
            for obj in items:
                if label(obj, LABEL_NAMESPACE) == self._sync.namespace:
                    live.objects[(rtype, order.ObjectId.from_obj(obj))] = obj
        missing: dict[tuple[ResourceType, str | None], set[order.ObjectId]] = {}
        for item in desired:
            if live.get(item) is None and item.rtype in listed:
                missing.setdefault((item.rtype, item.id.namespace), set()).add(item.id)
        # a few new objects are cheaper to GET than a namespace's worth of them to LIST
        groups = sorted((g for g, ids in missing.items() if len(ids) > _FEW), key=str)
        for group, items in zip(
            groups,
            self._map(lambda g: self._kube.list(g[0], namespace=g[1]), groups),
            strict=True,
        ):
            if isinstance(items, BaseException):
                continue
            found = {order.ObjectId.from_obj(obj): obj for obj in items}
            for oid in missing[group]:
                if oid in found:
                    live.objects[(group[0], oid)] = found[oid]
                else:
                    live.absent.add((group[0], oid))
        return live

    def _apply_one(
        self,
        item: Desired,
        current: dict[str, Any] | None,
        absent: bool,
        recorded_hash: str | None,
        dry_run: bool,
    ) -> tuple[Change, DriftReport | None]:
        if current is None and not absent:
            current = self._kube.get(item.rtype, item.id.name, item.id.namespace)
        if current is not None and annotation(current, ANNOTATION_RECONCILE) == "disabled":
            return Change(
                item.name, "skipped", "reconcile disabled on the live object", item.source
            ), None
        git_unchanged = recorded_hash == item.hash
        if current is None:
            # applied before from this very content, and gone: someone deleted it
            drifted = (
                DriftReport(item.name, item.source, (), missing=True) if git_unchanged else None
            )
            if drifted is not None and self._sync.mode == "report":
                return Change(item.name, "skipped", _REPORT_ONLY, item.source), drifted
            self._kube.apply(item.obj, dry_run=dry_run)
            return Change(item.name, "created", "", item.source), drifted
        # strict: an absent false/0/[] is a doubt, and doubts go to the dry-run below
        diffs = tuple(drift.compare(item.obj, current, strict=True))
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
        drifted = None
        if git_unchanged:
            shown = tuple(drift.compare(item.obj, current)) or diffs
            drifted = DriftReport(item.name, item.source, shown)
            if self._sync.mode == "report":
                return Change(item.name, "skipped", _REPORT_ONLY, item.source), drifted
        if not dry_run:
            self._kube.apply(item.obj)
        note = "corrected drift" if drifted is not None else ""
        return Change(item.name, "configured", note, item.source), drifted

    def _recreate(self, item: Desired, exc: ClusterError, dry_run: bool) -> Change:
        if annotation(item.obj, ANNOTATION_FORCE) != "true":
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
            if self._interrupted.wait(0.2):
                raise ClusterError(
                    f"{item.name}: deleted to recreate it when the synchronizer was stopping; "
                    "it is recreated on the next sync"
                )
        self._kube.apply(item.obj)
        return Change(item.name, "configured", "recreated (immutable field changed)", item.source)

    def _wait_for_crds(self, stage: Sequence[Desired], report: SyncReport) -> None:
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
                if self._interrupted.wait(0.2):
                    report.errors.append(f"stopped before {crd.name} was Established")
                    break

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


def _where(exc: BaseException) -> str:
    """file:line of the innermost frame: enough to find a bug, no local values."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb is not None else "?"


def _provides(obj: Mapping[str, Any]) -> set[tuple[str, str]]:
    """What a new stage-one object makes addressable: a namespace, or a CRD's kind."""
    if obj.get("kind") == "Namespace":
        return {("namespace", str((obj.get("metadata") or {}).get("name")))}
    if obj.get("kind") == "CustomResourceDefinition":
        spec = obj.get("spec") or {}
        names = spec.get("names") or {} if isinstance(spec, Mapping) else {}
        if isinstance(names, Mapping):
            return {("kind", f"{spec.get('group')}/{names.get('kind')}")}
    return set()


def _waits_for(item: Desired, pending: set[tuple[str, str]]) -> bool:
    return ("namespace", str(item.id.namespace)) in pending or (
        "kind",
        f"{item.id.group}/{item.id.kind}",
    ) in pending


def _condition(obj: Mapping[str, Any], kind: str) -> str | None:
    for cond in (obj.get("status") or {}).get("conditions") or ():
        if isinstance(cond, Mapping) and cond.get("type") == kind:
            status = cond.get("status")
            return status if isinstance(status, str) else None
    return None


def _immutable(exc: ClusterError) -> bool:
    return exc.status == 422 and "immutable" in str(exc)


def _same(preview: Mapping[str, Any], live: Mapping[str, Any]) -> bool:
    """Whether a dry-run result equals the live object (bookkeeping fields aside)."""
    return _strip(preview) == _strip(live)


def _strip(obj: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(obj)
    out.pop("status", None)  # the live copy may be older than the dry-run: not our field
    meta = dict(out.get("metadata") or {})
    for key in _IGNORED_META:
        meta.pop(key, None)
    out["metadata"] = meta
    return out
