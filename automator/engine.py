"""One automation cycle, no scheduling: fetch, scan, resolve, rewrite, commit, push.

The engine is the only place that decides what an error means for the cycle:

* a *permanent* error on one workload (bad policy, bad image reference, broken file,
  unknown repository) is reported and that workload is skipped; the others go on;
* a *transient* registry error leaves the workloads of that repository unchanged this
  cycle (never an older or empty tag) and is reported;
* a rejected push (someone pushed first) restarts the write phase from the new remote
  tip: fetch, re-scan, re-apply, commit, push, up to ``push_retries`` times;
* a field a person changed back after our last write into it is *held* (see
  :mod:`automator.holds`): not a failure, reported in ``FieldResult.hold``.

Because :meth:`GitRepo.sync` hard-resets the work tree at the start of every attempt, a
process killed at any point leaves nothing behind that could leak into the next commit,
and the remote only ever sees complete commits.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import structlog

from automator.config import Settings
from automator.errors import (
    AutomatorError,
    ManifestError,
    PermanentError,
    PolicyError,
    PushRejected,
    TransientError,
)
from automator.gitrepo import GitRepo, UpdateRecord
from automator.holds import Hold, Rejection, held, rejection, release_hint
from automator.images import ImageRef
from automator.log import redact_urls
from automator.manifests import Change, ImageField, apply, render, scan
from automator.policy import Policy, Selection, parse_policy
from automator.registry import RegistryClient, RegistryMetrics
from automator.resolve import Lookup, Resolver, Target

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
    invalid_policy: bool = False
    """A malformed policy, filter, extract, ignore glob or platform: the user must fix the
    manifest, like a configuration error (``once``/``plan`` exit 2; the rest still runs)."""

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
    hold: Hold | None = None
    """Set when a person's rollback holds the field (DESIGN §5); then ``new`` is None."""


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
    def invalid_policy(self) -> bool:
        return any(f.invalid_policy for f in self.failures)

    @property
    def unchanged(self) -> int:
        return sum(1 for r in self.results if r.new is None and r.failure is None)

    @property
    def held(self) -> list[FieldResult]:
        return [r for r in self.results if r.hold is not None]


@dataclass
class CycleResult:
    """Outcome of :meth:`Engine.run_once`; ``ok`` decides the exit code."""

    changes: list[PlannedChange] = field(default_factory=list)
    unchanged: int = 0
    held: int = 0
    failures: list[Failure] = field(default_factory=list)
    commit: str | None = None
    revision: str | None = None
    attempts: int = 0
    duration: float = 0.0
    push_exhausted: bool = False
    """Every push attempt was rejected (``push_retries`` ran out); the commit stays local."""
    registries_failed: tuple[str, ...] = ()
    """Registry hosts a lookup failed transiently on this cycle (for notifications)."""

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def invalid_policy(self) -> bool:
        return any(f.invalid_policy for f in self.failures)


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
        before_push: Callable[[], None] | None = None,
    ) -> None:
        """``before_push`` runs right before every push and may raise to cancel it (leader
        election: a replica whose lease is not valid long enough must not push)."""
        self.settings = settings
        self.registry = registry
        self.repo = repo
        self._clock = clock
        self._before_push = before_push

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        metrics: RegistryMetrics | None = None,
        before_push: Callable[[], None] | None = None,
    ) -> Engine:
        """The production wiring: real registry client, working clone in ``clone_dir``."""
        return cls(
            settings,
            registry=RegistryClient(settings, metrics=metrics),
            repo=GitRepo(settings.git, settings.clone_dir),
            before_push=before_push,
        )

    def close(self) -> None:
        self.registry.close()

    # -- the read-only half -------------------------------------------------------------

    def evaluate(
        self, *, only: Callable[[ImageRef], bool] | None = None, verify_writes: bool = False
    ) -> Evaluation:
        """Sync the clone, scan manifests, list tags and pick the new values.

        ``verify_writes`` renders every change in memory, exactly as ``once`` would write
        it, so ``plan`` and ``--dry-run`` never promise a change that ``once`` refuses.

        ``only`` restricts the cycle to fields whose repository it accepts (a webhook
        names the repositories that changed); fields that cannot even be read are left
        to the next full cycle to report.
        """
        revision = self.repo.sync()
        scanned = scan(self.repo.path, self.settings.git.paths)
        failures = [Failure(_error_subject(e), str(e)) for e in scanned.errors]
        for failure in failures:
            log.warning("manifest_invalid", subject=failure.subject, error=failure.message)

        results: dict[int, FieldResult] = {}
        targets: dict[int, Target] = {}
        values: dict[int, ImageRef | None] = {}  # whole-image fields, parsed once
        for i, f in enumerate(scanned.fields):
            try:
                target, value = _target(f)
            except PermanentError as exc:
                if only is None:
                    results[i] = FieldResult(f, failure=self._fail(f, exc))
                continue
            if only is None or only(target.repo):
                targets[i], values[i] = target, value

        resolver = Resolver.from_settings(self.registry, self.settings)
        tags = resolver.tags(t.repo for t in targets.values())
        holdable = any(scanned.fields[i].rollback_hold for i in targets)
        updates = self.repo.updates(TRAILER) if holdable else {}
        rejections = _rejections(scanned.fields, targets, updates)
        # Held fields are also ranked with the rejected tag as the current one: the policy's
        # own no-downgrade comparison then says whether a tag is strictly newer than it.
        asked = {(i, False): t for i, t in targets.items()}
        for i, rej in rejections.items():
            if rej.tag is not None and not targets[i].policy.follows_digest:
                asked[(i, True)] = replace(targets[i], current=rej.tag)
        selected = resolver.select(asked, tags)
        selections = {i: selected[(i, False)] for i in targets}

        # Digests to write: the current tag's for `digest`, the selected tag's when pinned
        # (by annotation, by a `:digest` marker, or because the value already has one).
        wanted: dict[int, Lookup] = {}
        for i, t in targets.items():
            sel = selections[i]
            if isinstance(sel, Selection) and sel.selected is not None:
                f = scanned.fields[i]
                if _needs_digest(f, values[i], t, sel.selected):
                    wanted[i] = Lookup(t.repo, sel.selected, t.platform)
        digests = resolver.digests(wanted.values())

        for i, t in targets.items():
            f = scanned.fields[i]
            sel = selections[i]
            if isinstance(sel, AutomatorError):
                results[i] = FieldResult(f, t.policy, failure=self._fail(f, sel))
                continue
            digest: str | AutomatorError | None = None
            if i in wanted:
                digest = digests[wanted[i].key]
            if isinstance(digest, AutomatorError):
                results[i] = FieldResult(f, t.policy, sel, failure=self._fail(f, digest))
                continue
            new = _new_value(f, values[i], t, sel, digest)
            hold = None
            if i in rejections:
                above = selected.get((i, True))
                rej = rejections[i]
                if isinstance(above, AutomatorError) or held(rej, t.policy, above, new, f.part):
                    hold = self._hold(f, rej, updates[_key(f)], t.policy)
                    new = None
            if new is not None:
                log.info(
                    "update_planned",
                    file=f.file,
                    workload=f.ref,
                    container=f.container,
                    current=f.image,
                    new=new,
                    policy=f.policy,
                )
            results[i] = FieldResult(f, t.policy, sel, new=new, hold=hold)
        if verify_writes:
            planned = [PlannedChange(r.field, r.new) for r in results.values() if r.new]
            rendered, errors = render(self.repo.path, [Change(c.field, c.new) for c in planned])
            failures += [Failure(_error_subject(e), str(e)) for e in errors]
            for i, r in list(results.items()):
                if r.new is not None and r.field.file not in rendered:
                    results[i] = FieldResult(
                        r.field, r.policy, r.selection, failure=_not_written(r.field)
                    )
        ordered = tuple(results[i] for i in sorted(results))
        failures.extend(r.failure for r in ordered if r.failure is not None)
        return Evaluation(revision, ordered, tuple(failures))

    def _hold(self, f: ImageField, rej: Rejection, record: UpdateRecord, policy: Policy) -> Hold:
        """The hold, with the person's commit (one ``git log -1`` per held field)."""
        change = self.repo.last_change(f.file, record.commit)
        hold = Hold(
            current=f.image,
            rejected=rej.value,
            commit=record.commit,
            date=record.date,
            changed_in=change.sha if change else None,
            changed_by=f"{change.author_name} <{change.author_email}>" if change else None,
            subject=change.message.split("\n", 1)[0] if change else None,
            release=release_hint(
                rej, f.container, f.marker, by_digest=policy.follows_digest or f.part == "digest"
            ),
        )
        log.info(
            "update_held",
            file=f.file,
            workload=f.ref,
            container=f.container,
            current=f.image,
            rejected=rej.value,
            commit=record.commit,
            changed_in=hold.changed_in,
            changed_by=hold.changed_by,
            reason=hold.reason,
            release=hold.release,
        )
        return hold

    def _fail(self, f: ImageField, exc: AutomatorError) -> Failure:
        what = "field" if f.marker is not None else "container"
        subject = f"{f.file}:{f.line}: {f.ref} {what} {f.container}"
        invalid = isinstance(exc, PolicyError)
        message = f"annotation {f.source}: {exc}" if invalid else str(exc)
        failure = Failure(
            subject, message, transient=isinstance(exc, TransientError), invalid_policy=invalid
        )
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

    def run_once(
        self, *, dry_run: bool = False, only: Callable[[ImageRef], bool] | None = None
    ) -> CycleResult:
        """One whole cycle; never raises for workload-level problems."""
        started = self._clock()
        result = CycleResult()
        log.info("cycle_started", dry_run=dry_run)
        try:
            self._attempts(result, dry_run=dry_run, only=only)
        except AutomatorError as exc:
            result.failures.append(
                Failure(
                    f"git {redact_urls(self.settings.git.url)}",
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
            held=result.held,
            failed=len(result.failures),
            commit=result.commit,
            attempts=result.attempts,
            dry_run=dry_run,
            duration_s=round(result.duration, 3),
        )
        return result

    def _attempts(
        self,
        result: CycleResult,
        *,
        dry_run: bool,
        only: Callable[[ImageRef], bool] | None = None,
    ) -> None:
        max_attempts = self.settings.push_retries + 1
        for attempt in range(1, max_attempts + 1):
            result.attempts = attempt
            evaluation = self.evaluate(only=only, verify_writes=dry_run)
            result.revision = evaluation.revision
            result.unchanged = evaluation.unchanged
            result.held = len(evaluation.held)
            result.failures = list(evaluation.failures)
            result.registries_failed = _failing_registries(evaluation)
            changes = evaluation.changes
            if dry_run or not changes:
                result.changes = changes
                return
            applied = apply(self.repo.path, [Change(c.field, c.new) for c in changes])
            for err in applied.errors:
                result.failures.append(Failure(_error_subject(err), str(err)))
                log.warning("manifest_write_failed", error=str(err))
            written = set(applied.written)
            result.failures += [
                _not_written(c.field) for c in changes if c.field.file not in written
            ]
            changes = [c for c in changes if c.field.file in written]
            result.changes = changes
            if not changes:
                return
            sha = self.repo.commit(commit_message(changes), sorted(written))
            if sha is None:
                result.changes = []
                return
            if self._before_push is not None:
                self._before_push()  # raises (NotLeader) to cancel: the commit stays local
            try:
                self.repo.push()
            except PushRejected as exc:
                log.warning("push_rejected", attempt=attempt, error=str(exc))
                if attempt == max_attempts:
                    result.push_exhausted = True
                    raise
                continue
            result.commit = sha
            log.info("push_succeeded", commit=sha, changes=len(changes))
            return


def _failing_registries(evaluation: Evaluation) -> tuple[str, ...]:
    hosts: set[str] = set()
    for r in evaluation.results:
        if r.failure is not None and r.failure.transient:
            with contextlib.suppress(AutomatorError):
                hosts.add(ImageRef.parse(r.field.repository or r.field.image).registry)
    return tuple(sorted(hosts))


def _key(f: ImageField) -> tuple[str, str, str]:
    return (f.file, f.ref, f.container)


def _rejections(
    fields: Sequence[ImageField],
    targets: Mapping[int, Target],
    updates: Mapping[tuple[str, str, str], UpdateRecord],
) -> dict[int, Rejection]:
    """Fields a person changed after the automator's newest write into them."""
    out: dict[int, Rejection] = {}
    for i in targets:
        f = fields[i]
        record = updates.get(_key(f)) if f.rollback_hold else None
        rej = rejection(f.image, record.new, f.part) if record is not None else None
        if rej is not None:
            out[i] = rej
    return out


def _not_written(f: ImageField) -> Failure:
    """A change dropped because its file could not be edited (the file's error says why)."""
    return Failure(
        f"{f.file}:{f.line}: {f.ref} {f.container}",
        f"{f.image} was not updated: {f.file} could not be edited (see its error)",
    )


def _target(f: ImageField) -> tuple[Target, ImageRef | None]:
    """What one field asks of the registry, and (for a whole-image field) its parsed value.

    The target's ``repo`` is also the name a whole-image field is rewritten with: the
    ImagePolicy's ``spec.image`` for a marker, else the value's own spelling.
    PermanentError when the policy or a reference is malformed.
    """
    policy = parse_policy(f.policy, filter=f.filter, extract=f.extract, ignore=f.ignore_tags)
    if f.part == "image":
        value = ImageRef.parse(f.image)
        repo = ImageRef.parse(f.repository) if f.repository else value
        return Target(repo=repo, policy=policy, current=value.tag, platform=f.platform), value
    if f.repository is None:
        raise ManifestError(f"{f.file}:{f.line}: a {f.part} field needs an ImagePolicy image")
    current = f.image if f.part == "tag" else None
    repo = ImageRef.parse(f.repository)
    return Target(repo=repo, policy=policy, current=current, platform=f.platform), None


def _needs_digest(f: ImageField, value: ImageRef | None, t: Target, selected: str) -> bool:
    """Whether writing this field needs the selected tag's digest.

    ``digest`` policies and ``:digest`` markers always do. Otherwise a digest is looked up
    when the tag changes and the value is pinned (by annotation, or because it already
    carries a digest), or when pin-digest is asked for and the value has none yet; an
    unchanged, already pinned tag is never re-resolved (pinning means: do not move).
    """
    if f.part == "digest" or t.policy.follows_digest:
        return True
    if value is None:
        return False
    if selected != value.tag:
        return f.pin_digest or value.digest is not None
    return f.pin_digest and value.digest is None


def _new_value(
    f: ImageField, value: ImageRef | None, t: Target, sel: Selection, digest: str | None
) -> str | None:
    """The field's new text, or None when it already says the right thing."""
    if sel.selected is None:
        return None
    if f.part == "tag":
        new = sel.selected
    elif f.part == "digest":
        new = digest or f.image
    elif f.part == "name":
        new = t.repo.name
    else:
        assert value is not None  # whole-image fields always carry their parsed value
        base = t.repo
        if sel.selected == value.tag and base.name == value.name and digest in (None, value.digest):
            return None
        new = str(base.with_tag(sel.selected, digest))
    return None if new == f.image else new


def _error_subject(err: AutomatorError) -> str:
    text = str(err)
    return text.split(":", 1)[0] if ":" in text else "manifests"
