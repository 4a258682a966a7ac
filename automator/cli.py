"""Command line: argument parsing, output formatting and exit codes; nothing else.

Exit codes (DESIGN §2): 0 success; 1 the run finished but some workloads failed;
2 bad usage or bad configuration (the message names the key and the fix); 3 drift found
(``diff`` only).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

import structlog

from automator import __version__
from automator.config import Settings, config_path, load_settings
from automator.daemon import run_daemon, run_sync_daemon
from automator.engine import TRAILER, CycleResult, Engine, Evaluation
from automator.errors import AutomatorError, ConfigError, PermanentError, PolicyError
from automator.images import ImageRef
from automator.log import configure_logging, redact_urls
from automator.policy import parse_policy
from automator.registry import RegistryClient
from automator.resolve import Resolver, check
from automator.sync import DriftReport, Synchronizer, SyncReport
from automator.sync.drift import render_text as render_drift
from automator.sync.drift import to_json as drift_json

__all__ = ["EXIT_CONFIG", "EXIT_DRIFT", "EXIT_FAILED", "EXIT_OK", "main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_DRIFT = 3

log = structlog.get_logger(__name__)


_DEFAULTS = {"config": None, "log_format": "console", "log_level": "info"}


def _common_options(*, suppress: bool) -> argparse.ArgumentParser:
    """The options every command takes, before or after the command name.

    Subcommands get ``SUPPRESS`` defaults so that an option given before the command
    (``automator --config f once``) is not overwritten by the subcommand's default.
    """
    common = argparse.ArgumentParser(add_help=False)

    def default(name: str) -> object:
        return argparse.SUPPRESS if suppress else _DEFAULTS[name]

    common.add_argument(
        "--config",
        metavar="FILE",
        default=default("config"),
        help="configuration file (default: $AUTOMATOR_CONFIG, then ./automator.yaml)",
    )
    common.add_argument("--log-format", choices=("json", "console"), default=default("log_format"))
    common.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default=default("log_level"),
    )
    return common


def _parser() -> argparse.ArgumentParser:
    common = _common_options(suppress=True)
    parser = argparse.ArgumentParser(
        prog="automator",
        description="GitOps image-update automator: new registry tags -> policy -> Git commit.",
        parents=[_common_options(suppress=False)],
    )
    parser.add_argument("--version", action="version", version=f"automator {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    once = sub.add_parser(
        "once", parents=[common], help="one full cycle: fetch, scan, update, commit, push"
    )
    once.add_argument(
        "--dry-run", action="store_true", help="compute and print changes, write nothing"
    )

    plan = sub.add_parser(
        "plan", parents=[common], help="what `once` would change, writing nothing"
    )
    plan.add_argument("--output", choices=("text", "json"), default="text")

    images = sub.add_parser(
        "images", parents=[common], help="every automated container and its candidates"
    )
    images.add_argument("--output", choices=("text", "json"), default="text")

    check = sub.add_parser(
        "check",
        parents=[common],
        help="resolve one image against one policy, no repo needed",
        description="Resolve IMAGE against --policy SPEC using its registry; with --tags, "
        "evaluate the policy offline on that tag list (IMAGE optional). The tag in IMAGE, if "
        "any, is the current one (no downgrade below it).",
    )
    check.add_argument("image", nargs="?", metavar="IMAGE", help="e.g. ghcr.io/org/app:1.2.0")
    check.add_argument("--policy", required=True, metavar="SPEC", help="e.g. semver:^1.2")
    check.add_argument("--filter", metavar="RE", help="only tags matching RE (search)")
    check.add_argument("--extract", metavar="TPL", help="compare $group expansion of --filter")
    check.add_argument("--ignore", metavar="GLOBS", help="comma-separated tag globs to skip")
    check.add_argument("--platform", metavar="OS/ARCH", help="platform for build times/digests")
    check.add_argument("--pin-digest", action="store_true", help="write tag@sha256:...")
    check.add_argument("--tags", metavar="T1,T2,...", help="evaluate offline on these tags")
    check.add_argument("--explain", action="store_true", help="say why every other tag lost")
    check.add_argument("--output", choices=("text", "json"), default="text")

    sub.add_parser("run", parents=[common], help="the daemon: run `once` every `interval`")

    sync = sub.add_parser(
        "sync", parents=[common], help="the synchronizer: apply the repo to the cluster"
    )
    sync.add_argument("--once", action="store_true", help="one sync, then exit")
    sync.add_argument(
        "--dry-run", action="store_true", help="one sync with server-side dry-run; writes nothing"
    )
    sync.add_argument("--status", action="store_true", help="show the last sync's recorded state")
    sync.add_argument("--output", choices=("text", "json"), default="text")

    diff = sub.add_parser(
        "diff", parents=[common], help="drift between Git and the cluster; exit 3 on drift"
    )
    diff.add_argument("--output", choices=("text", "json"), default="text")

    history = sub.add_parser(
        "history", parents=[common], help="the audit trail, read back from the Git log"
    )
    history.add_argument("--output", choices=("text", "json"), default="text")
    history.add_argument("--limit", type=int, default=100, help="commits to read (default 100)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``automator`` console script; returns the exit code."""
    try:
        return _main(argv)
    except BrokenPipeError:
        # `automator history | head`: the reader left; that is not an error of ours.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK


def _main(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    configure_logging(args.log_format, level=args.log_level)
    out = sys.stdout
    try:
        if args.command == "check":
            return _check(args, out)
        settings = load_settings(config_path(args.config))
        log.info("config_loaded", **_settings_summary(settings))
        return _dispatch(args, settings, out)
    except ConfigError as exc:
        print(f"automator: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except AutomatorError as exc:
        print(f"automator: {exc}", file=sys.stderr)
        return EXIT_FAILED


def _settings_summary(settings: Settings) -> dict[str, Any]:
    """What is worth logging once at start; secrets are references, never values."""
    return {
        "git_url": redact_urls(settings.git.url),
        "branch": settings.git.branch,
        "push_branch": settings.git.target_branch,
        "paths": list(settings.git.paths),
        "registries": [r.host for r in settings.registries],
        "interval_s": settings.interval,
        "workdir": str(settings.clone_dir),
    }


def _dispatch(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    if args.command == "run":
        return run_daemon(settings)
    if args.command in ("sync", "diff"):
        return _synchronizer(args, settings, out)
    engine = Engine.from_settings(settings)
    try:
        if args.command == "once":
            result = engine.run_once(dry_run=args.dry_run)
            _print_cycle(result, out, dry_run=args.dry_run)
            return _exit_code(result.invalid_policy, ok=result.ok)
        if args.command == "history":
            return _history(engine, out, output=args.output, limit=args.limit)
        evaluation = engine.evaluate(verify_writes=args.command == "plan")
        if args.command == "plan":
            _print_plan(evaluation, out, output=args.output)
        else:
            _print_images(evaluation, out, output=args.output)
        return _exit_code(evaluation.invalid_policy, ok=not evaluation.failures)
    finally:
        engine.close()


def _synchronizer(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    synchronizer = Synchronizer.from_settings(settings)
    try:
        if args.command == "diff":
            revision, drifted, errors = synchronizer.diff()
            _print_drift(revision, drifted, errors, out, output=args.output)
            if drifted:
                return EXIT_DRIFT
            return EXIT_FAILED if errors else EXIT_OK
        if args.status:
            state = synchronizer.status()
            if args.output == "json":
                out.write(json.dumps(state.to_json(), indent=2) + "\n")
            else:
                for key, value in state.to_json().items():
                    if isinstance(value, dict):
                        value = ", ".join(f"{k}={v}" for k, v in sorted(value.items())) or "-"
                    out.write(f"{key}: {'-' if value is None else value}\n")
            return EXIT_OK
        if args.once or args.dry_run:
            report = synchronizer.run(dry_run=args.dry_run)
            _print_sync(report, out, output=args.output)
            return EXIT_OK if report.ok else EXIT_FAILED
        return run_sync_daemon(settings, synchronizer)
    finally:
        synchronizer.close()


def _print_sync(report: SyncReport, out: TextIO, *, output: str) -> None:
    if output == "json":
        doc = {
            "revision": report.revision,
            "result": report.result,
            "message": report.message,
            "dry_run": report.dry_run,
            "health": report.health,
            "health_message": report.health_message,
            "counts": report.counts(),
            "changes": [c.to_json() for c in report.changes],
            "drift": [d.id for d in report.drift],
            "duration_s": round(report.duration, 3),
            "api_requests": report.requests,
        }
        out.write(json.dumps(doc, indent=2) + "\n")
        return
    for change in report.changes:
        note = f"  ({change.message})" if change.message else ""
        out.write(f"{change.action:<10} {change.id}{note}\n")
    counts = ", ".join(f"{n} {action}" for action, n in sorted(report.counts().items()))
    prefix = "dry run: " if report.dry_run else ""
    out.write(
        f"{prefix}{report.result} at {(report.revision or '-')[:12]}: {counts or 'no objects'}; "
        f"health {report.health}\n"
    )
    if report.message:
        out.write(f"{report.message}\n")


def _print_drift(
    revision: str | None,
    drifted: Sequence[DriftReport],
    errors: Sequence[str],
    out: TextIO,
    *,
    output: str,
) -> None:
    if output == "json":
        doc = {
            "revision": revision,
            "drift": [
                {
                    "object": d.id,
                    "source": d.source,
                    "missing": d.missing,
                    "extra": d.extra,
                    "differences": drift_json(d.differences),
                }
                for d in drifted
            ],
            "errors": list(errors),
        }
        out.write(json.dumps(doc, indent=2) + "\n")
        return
    for report in drifted:
        if report.missing:
            out.write(f"{report.id} ({report.source}): missing from the cluster\n")
        elif report.extra:
            out.write(f"{report.id}: not in Git any more; the next sync prunes it\n")
        else:
            out.write(render_drift(report.id, report.differences).rstrip("\n") + "\n")
    for error in errors:
        out.write(f"error: {error}\n")
    out.write(
        f"{len(drifted)} object(s) drifted from Git at {(revision or '-')[:12]}\n"
        if drifted
        else f"no drift at {(revision or '-')[:12]}\n"
    )


def _exit_code(invalid_policy: bool, *, ok: bool) -> int:
    """2 when a manifest carries a malformed policy (a configuration error the user must
    fix), 1 for other failures; in both cases every other workload was still processed."""
    if invalid_policy:
        return EXIT_CONFIG
    return EXIT_OK if ok else EXIT_FAILED


def _check(args: argparse.Namespace, out: TextIO) -> int:
    """``automator check``: bad policy/filter/extract/image is exit 2, registry trouble 1."""
    try:
        policy = parse_policy(
            args.policy,
            filter=args.filter,
            extract=args.extract,
            ignore=_split(args.ignore),
        )
        image = ImageRef.parse(args.image) if args.image else None
    except PermanentError as exc:
        print(f"automator: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    tags = _split(args.tags) if args.tags is not None else None
    if image is None and tags is None:
        print("automator: check needs IMAGE, or --tags for an offline check", file=sys.stderr)
        return EXIT_CONFIG
    path = config_path(args.config)
    explicit = args.config is not None or "AUTOMATOR_CONFIG" in os.environ
    settings = load_settings(path) if explicit or path.exists() else Settings.without_repo()
    registry = RegistryClient(settings) if tags is None else None
    try:
        resolver = Resolver.from_settings(registry, settings) if registry else None
        result = check(
            policy,
            image=image,
            tags=tags,
            resolver=resolver,
            platform=args.platform,
            pin_digest=args.pin_digest,
        )
    except PolicyError as exc:
        print(f"automator: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    finally:
        if registry is not None:
            registry.close()
    sel = result.selection
    doc: dict[str, Any] = {
        "image": str(image) if image else None,
        "policy": policy.spec,
        "filter": args.filter,
        "extract": args.extract,
        "current": image.tag if image else None,
        "selected": sel.selected,
        "new": result.new,
        "candidates": list(sel.candidates),
    }
    if args.explain:
        doc["explain"] = [
            {"tag": v.tag, "reason": v.reason, "detail": v.detail} for v in sel.verdicts
        ]
    if args.output == "json":
        json.dump(doc, out, indent=2)
        out.write("\n")
        return EXIT_OK
    print(f"policy:     {policy.spec}", file=out)
    print(
        f"selected:   {sel.selected or '(none: no tag qualifies, nothing would change)'}", file=out
    )
    if result.new:
        print(f"image:      {result.new}", file=out)
    print(
        f"candidates: {', '.join(sel.candidates[:10]) or '(none)'}"
        + (f" (+{len(sel.candidates) - 10} more)" if len(sel.candidates) > 10 else ""),
        file=out,
    )
    if args.explain:
        width = max((len(v.tag) for v in sel.verdicts), default=0)
        for v in sel.verdicts:
            print(f"  {v.tag:<{width}}  {v.reason:<14} {v.detail}", file=out)
    return EXIT_OK


def _split(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def _print_cycle(result: CycleResult, out: TextIO, *, dry_run: bool) -> None:
    verb = "would update" if dry_run else "updated"
    for c in result.changes:
        print(
            f"{verb} {c.field.file} {c.field.ref} {c.field.container}: {c.current} -> {c.new}",
            file=out,
        )
    for f in result.failures:
        print(f"FAILED {f}", file=out)
    tail = f", commit {result.commit}" if result.commit else ""
    held = f" ({result.held} held, see plan)" if result.held else ""
    print(
        f"{len(result.changes)} {verb}, {result.unchanged} unchanged{held}, "
        f"{len(result.failures)} failed{tail}",
        file=out,
    )


def _print_plan(evaluation: Evaluation, out: TextIO, *, output: str) -> None:
    changes = evaluation.changes
    if output == "json":
        # Changes only (DESIGN §2: what `once` would write); holds are in `images` and
        # in the text output, so a consumer counting elements counts writes.
        json.dump([c.as_dict() for c in changes], out, indent=2)
        out.write("\n")
        return
    for c in changes:
        ns = c.field.namespace or "-"
        print(
            f"{c.field.file}  {c.field.kind}/{ns}/{c.field.name}  {c.field.container}  "
            f"{c.current} -> {c.new}  ({c.field.policy})",
            file=out,
        )
    for r in evaluation.held:
        assert r.hold is not None
        print(
            f"HELD {r.field.file}  {r.field.ref}  {r.field.container}  {r.hold.current}: "
            f"{r.hold.reason}. To release: {r.hold.release}",
            file=out,
        )
    for f in evaluation.failures:
        print(f"FAILED {f}", file=out)
    print(
        f"{len(changes)} to update, {evaluation.unchanged} unchanged"
        + (f" ({len(evaluation.held)} held)" if evaluation.held else "")
        + f", {len(evaluation.failures)} failed",
        file=out,
    )


_RECENT = 5


def _print_images(evaluation: Evaluation, out: TextIO, *, output: str) -> None:
    rows: list[dict[str, Any]] = []
    for r in evaluation.results:
        f = r.field
        candidates = list(r.selection.candidates) if r.selection else []
        rows.append(
            {
                "file": f.file,
                "workload": f"{f.kind}/{f.namespace or '-'}/{f.name}",
                "container": f.container,
                "current": f.image,
                "policy": f.policy,
                "newest": candidates[0] if candidates else None,
                "new": r.new,
                "recent": candidates[:_RECENT],
                "error": r.failure.message if r.failure else None,
                "held": r.hold.as_dict() if r.hold else None,
            }
        )
    if output == "json":
        json.dump(rows, out, indent=2)
        out.write("\n")
        return
    for row in rows:
        print(f"{row['file']}  {row['workload']}  {row['container']}", file=out)
        print(f"    current: {row['current']}", file=out)
        print(f"    policy:  {row['policy']}", file=out)
        if row["error"]:
            print(f"    error:   {row['error']}", file=out)
            continue
        print(
            f"    newest:  {row['newest'] or '(no eligible tag)'}"
            + ("  <- will update" if row["new"] else ""),
            file=out,
        )
        if row["recent"]:
            print(f"    recent:  {', '.join(row['recent'])}", file=out)
        if row["held"]:
            print(f"    held:    {row['held']['reason']}", file=out)
            print(f"    release: {row['held']['release']}", file=out)


def _history(engine: Engine, out: TextIO, *, output: str, limit: int) -> int:
    engine.repo.sync()
    entries: list[dict[str, Any]] = []
    for commit in engine.repo.log(limit, grep_trailer=TRAILER):
        for key, value in commit.trailers:
            if key != TRAILER:
                continue
            entries.append(
                {
                    "commit": commit.sha,
                    "date": commit.date.isoformat(),
                    "author": commit.author_name,
                    **_parse_trailer(value),
                }
            )
    if output == "json":
        json.dump(entries, out, indent=2)
        out.write("\n")
    else:
        for e in entries:
            print(
                f"{e['commit'][:10]} {e['date']} {e['file']} {e['workload']} "
                f"{e['container']}: {e['old']} -> {e['new']}",
                file=out,
            )
    return EXIT_OK


def _parse_trailer(value: str) -> dict[str, str]:
    """``<file> <kind>/<ns>/<name> <container> <old> -> <new>`` back into fields.

    Parsed from the right: only the file path may contain spaces.
    """
    parts = value.rsplit(" ", 5)
    if len(parts) == 6 and parts[4] == "->" and parts[0]:
        file, workload, container, old, _, new = parts
        return {"file": file, "workload": workload, "container": container, "old": old, "new": new}
    return {"file": "", "workload": "", "container": "", "old": "", "new": value}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
