"""One automation cycle, no scheduling: fetch, scan, resolve, rewrite, commit, push.

The engine is the only place that decides what an error means for the cycle:

* a *permanent* error on one workload (bad policy, bad image reference, broken file,
  unknown repository) is reported and that workload is skipped; the others go on;
* a *transient* registry error leaves the workloads of that repository unchanged this
  cycle (never an older or empty tag) and is reported;
* a rejected push (someone pushed first) restarts the write phase from the new remote
  tip: fetch, re-scan, re-apply, commit, push, up to ``push_retries`` times.

Because :meth:`GitRepo.sync` hard-resets the work tree at the start of every attempt, a
process killed at any point leaves nothing behind that could leak into the next commit,
and the remote only ever sees complete commits.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import structlog

from automator.config import Settings
from automator.errors import (
    AutomatorError,
    GitUnavailable,
    PermanentError,
    PushRejected,
    TransientError,
)
from automator.gitrepo import GitRepo
from automator.images import ImageRef
from automator.manifests import Change, ImageField, apply, render, scan
from automator.policy import Policy, Selection, parse_policy
from automator.registry import RegistryClient

__all__ = [
    "TRAILER",
    "CycleResult",
    "Engine",
    "Evaluation",
    "Failure",
    "FieldResult",
    "PlannedChange",
    "commit_message",
]

log = structlog.get_logger(__name__)

TRAILER = "Automator-Update"
"""Git trailer key of every change line; ``history`` reads the audit trail back from it."""


@dataclass(frozen=True)
class PlannedChange:
    """One image value to rewrite."""

    field: ImageField
    new: str

    @property
    def current(self) -> str:
        return self.field.image

    @property
    def trailer(self) -> str:
        f = self.field
        return f"{f.file} {f.ref} {f.container} {f.image} -> {self.new}"

    def as_dict(self) -> dict[str, object]:
        """The ``plan --output json`` element (DESIGN §2)."""
        f = self.field
        return {
            "file": f.file,
            "kind": f.kind,
            "namespace": f.namespace,
            "name": f.name,
            "container": f.container,
            "init": f.init,
            "current": f.image,
            "new": self.new,
            "policy": f.policy,
            "line": f.line,
        }


@dataclass(frozen=True)
class Failure:
    """A workload (or file) that could not be processed this cycle, and why."""

    subject: str
    message: str
    transient: bool = False

    def __str__(self) -> str:
        """``subject: message``, without repeating a subject the message already names."""
        if self.message.startswith(self.subject):
            return self.message
        return f"{self.subject}: {self.message}"

    def as_dict(self) -> dict[str, object]:
        return {"subject": self.subject, "error": self.message, "transient": self.transient}


@dataclass(frozen=True)
class FieldResult:
    """Everything the engine learned about one automated container."""

    field: ImageField
    policy: Policy | None = None
    selection: Selection | None = None
    new: str | None = None
    failure: Failure | None = None


@dataclass(frozen=True)
class Evaluation:
    """The read-only half of a cycle: what is there and what should change."""

    revision: str
    results: tuple[FieldResult, ...]
    failures: tuple[Failure, ...]

    @property
    def changes(self) -> list[PlannedChange]:
        return [PlannedChange(r.field, r.new) for r in self.results if r.new is not None]

    @property
    def unchanged(self) -> int:
        return sum(1 for r in self.results if r.new is None and r.failure is None)


@dataclass
class CycleResult:
    """Outcome of :meth:`Engine.run_once`; ``ok`` decides the exit code."""

    changes: list[PlannedChange] = field(default_factory=list)
    unchanged: int = 0
    failures: list[Failure] = field(default_factory=list)
    commit: str | None = None
    revision: str | None = None
    attempts: int = 0
    duration: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures


def commit_message(changes: Sequence[PlannedChange]) -> str:
    """Subject, one human line per change, then one ``Automator-Update`` trailer each."""
    if len(changes) == 1:
        c = changes[0]
        subject = f"Update {c.field.name}/{c.field.container} to {_tag_of(c.new)}"
    else:
        subject = f"Update {len(changes)} images"
    body = [
        f"- {c.field.file}: {c.field.ref} {c.field.container}: {c.current} -> {c.new}"
        for c in changes
    ]
    trailers = [f"{TRAILER}: {c.trailer}" for c in changes]
    return "\n".join([subject, "", *body, "", *trailers]) + "\n"


def _tag_of(image: str) -> str:
    try:
        ref = ImageRef.parse(image)
    except AutomatorError:
        return image
    return ref.tag or ref.digest or image


class Engine:
    """Runs cycles against one config repo with one registry client."""

    def __init__(
        self,
        settings: Settings,
        *,
        registry: RegistryClient,
        repo: GitRepo,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.repo = repo
        self._clock = clock

    @classmethod
    def from_settings(cls, settings: Settings) -> Engine:
        """The production wiring: real registry client, working clone in ``clone_dir``."""
        return cls(
            settings,
            registry=RegistryClient(settings),
            repo=GitRepo(settings.git, settings.clone_dir),
        )

    def close(self) -> None:
        self.registry.close()

    # -- the read-only half -------------------------------------------------------------

    def evaluate(self) -> Evaluation:
        """Sync the clone, scan manifests, list tags and pick the new images."""
        revision = self.repo.sync()
        scanned = scan(self.repo.path, self.settings.git.paths)
        failures = [Failure(_error_subject(e), str(e)) for e in scanned.errors]
        for failure in failures:
            log.warning("manifest_invalid", subject=failure.subject, error=failure.message)

        prepared: list[tuple[ImageField, ImageRef, Policy] | FieldResult] = []
        for f in scanned.fields:
            try:
                ref = ImageRef.parse(f.image)
                policy = parse_policy(f.policy, filter=f.filter, extract=f.extract)
            except PermanentError as exc:
                prepared.append(FieldResult(f, failure=self._fail(f, exc)))
                continue
            prepared.append((f, ref, policy))

        wanted = {item[1].canonical: item[1] for item in prepared if isinstance(item, tuple)}
        tags = self._list_all_tags(wanted.values())

        results: list[FieldResult] = []
        for item in prepared:
            if isinstance(item, FieldResult):
                results.append(item)
                continue
            f, ref, policy = item
            listed = tags[ref.canonical]
            if isinstance(listed, AutomatorError):
                results.append(FieldResult(f, policy, failure=self._fail(f, listed)))
                continue
            results.append(self._decide(f, ref, policy, listed))
        failures.extend(r.failure for r in results if r.failure is not None)
        return Evaluation(revision, tuple(results), tuple(failures))

    def _list_all_tags(self, refs: Iterable[ImageRef]) -> dict[str, list[str] | AutomatorError]:
        """One ``tags/list`` per distinct repository, ``max_concurrency`` at a time."""

        def one(ref: ImageRef) -> tuple[str, list[str] | AutomatorError]:
            try:
                return ref.canonical, self.registry.list_tags(ref)
            except AutomatorError as exc:
                log.warning(
                    "registry_scan_failed",
                    image=ref.canonical,
                    error=str(exc),
                    transient=isinstance(exc, TransientError),
                )
                return ref.canonical, exc

        refs = list(refs)
        if not refs:
            return {}
        workers = min(self.settings.max_concurrency, len(refs))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="scan") as pool:
            return dict(pool.map(one, refs))

    def _decide(self, f: ImageField, ref: ImageRef, policy: Policy, tags: list[str]) -> FieldResult:
        selection = policy.select(tags, current=ref.tag)
        if selection.selected is None or selection.selected == ref.tag:
            return FieldResult(f, policy, selection)
        digest: str | None = None
        if ref.digest is not None:
            # The manifest pins a digest: keep it pinned, to the new tag's digest.
            try:
                digest = self.registry.digest(ref, selection.selected)
            except AutomatorError as exc:
                return FieldResult(f, policy, selection, failure=self._fail(f, exc))
        new = str(ref.with_tag(selection.selected, digest))
        log.info(
            "update_planned",
            file=f.file,
            workload=f.ref,
            container=f.container,
            current=f.image,
            new=new,
            policy=f.policy,
        )
        return FieldResult(f, policy, selection, new=new)

    def _fail(self, f: ImageField, exc: AutomatorError) -> Failure:
        subject = f"{f.file}: {f.ref} container {f.container}"
        failure = Failure(subject, str(exc), transient=isinstance(exc, TransientError))
        log.warning(
            "workload_failed",
            file=f.file,
            workload=f.ref,
            container=f.container,
            error=str(exc),
            transient=failure.transient,
        )
        return failure

    # -- the writing half ---------------------------------------------------------------

    def preview(self, evaluation: Evaluation) -> dict[str, bytes]:
        """New file contents for a dry run, computed in memory."""
        files, _ = render(self.repo.path, [Change(c.field, c.new) for c in evaluation.changes])
        return files

    def run_once(self, *, dry_run: bool = False) -> CycleResult:
        """One whole cycle; never raises for workload-level problems."""
        started = self._clock()
        result = CycleResult()
        log.info("cycle_started", dry_run=dry_run)
        try:
            self._attempts(result, dry_run=dry_run)
        except AutomatorError as exc:
            result.failures.append(
                Failure(
                    f"git {self.settings.git.url}",
                    str(exc),
                    transient=isinstance(exc, TransientError),
                )
            )
            log.error("cycle_failed", error=str(exc))
        result.duration = self._clock() - started
        log.info(
            "cycle_finished",
            updated=len(result.changes),
            unchanged=result.unchanged,
            failed=len(result.failures),
            commit=result.commit,
            attempts=result.attempts,
            dry_run=dry_run,
            duration_s=round(result.duration, 3),
        )
        return result

    def _attempts(self, result: CycleResult, *, dry_run: bool) -> None:
        max_attempts = self.settings.push_retries + 1
        for attempt in range(1, max_attempts + 1):
            result.attempts = attempt
            evaluation = self.evaluate()
            result.revision = evaluation.revision
            result.unchanged = evaluation.unchanged
            result.failures = list(evaluation.failures)
            changes = evaluation.changes
            if dry_run or not changes:
                result.changes = changes
                return
            applied = apply(self.repo.path, [Change(c.field, c.new) for c in changes])
            for err in applied.errors:
                result.failures.append(Failure(_error_subject(err), str(err)))
                log.warning("manifest_write_failed", error=str(err))
            written = set(applied.written)
            changes = [c for c in changes if c.field.file in written]
            result.changes = changes
            if not changes:
                return
            sha = self.repo.commit(commit_message(changes), sorted(written))
            if sha is None:
                result.changes = []
                return
            try:
                self.repo.push()
            except PushRejected as exc:
                log.warning("push_rejected", attempt=attempt, error=str(exc))
                if attempt == max_attempts:
                    raise
                continue
            except GitUnavailable:
                raise
            result.commit = sha
            log.info("push_succeeded", commit=sha, changes=len(changes))
            return


def _error_subject(err: AutomatorError) -> str:
    text = str(err)
    return text.split(":", 1)[0] if ":" in text else "manifests"
