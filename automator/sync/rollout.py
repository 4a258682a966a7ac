"""Waiting for health: after applying, poll workloads until they roll out or time out.

Why a module of its own: judging one object is a pure rule (:mod:`automator.sync.health`);
waiting for many is I/O with its own concerns (a deadline of ``sync.timeout``, one
labelled LIST per kind and namespace per round instead of a GET per workload, objects
taken over by someone else, and a shutdown that cuts the wait short).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import structlog

from automator.config import SyncSettings
from automator.errors import ClusterError, ClusterUnavailable
from automator.sync import health, order
from automator.sync.kube import Kube, ResourceType, api_group
from automator.sync.model import LABEL_NAME, Desired, Live, Mapper, SyncReport, label

__all__ = ["HealthWaiter"]

log = structlog.get_logger(__name__)

_POLL = 1.0


class HealthWaiter:
    """Sets a report's health from the live workloads it applied; ``interrupted`` ends the
    wait early."""

    def __init__(
        self, kube: Kube, sync: SyncSettings, interrupted: threading.Event, map_fn: Mapper
    ) -> None:
        self._kube = kube
        self._sync = sync
        self._interrupted = interrupted
        self._map = map_fn

    def check(self, desired: Sequence[Desired], report: SyncReport, live: Live) -> None:
        """Wait up to ``sync.timeout`` for workloads to roll out.

        An unchanged workload is judged from the LIST taken before applying (no request);
        the others are polled with one labelled LIST per kind and namespace per round,
        not one GET per workload.
        """
        actions = {c.id: c.action for c in report.changes}
        candidates = [
            d
            for d in desired
            if actions.get(d.name) not in ("skipped", "failed") and _assessable(d.obj)
        ]
        verdicts: dict[str, health.Health] = {}
        pending: list[Desired] = []
        for item in candidates:
            seen = live.get(item) if actions.get(item.name) == "unchanged" else None
            verdict = health.assess(seen) if seen is not None else None
            if verdict is not None and verdict.status == "healthy":
                verdicts[item.name] = verdict
            else:
                pending.append(item)
        deadline = time.monotonic() + self._sync.timeout
        while pending:
            results = self._poll(pending)
            still: list[Desired] = []
            for item, current in zip(pending, results, strict=True):
                if isinstance(current, ClusterError):
                    verdicts[item.name] = health.Health("failed", f"cannot read it: {current}")
                    continue
                if isinstance(current, BaseException) or current is None:
                    reason = str(current) if current is not None else "not found yet"
                    verdicts[item.name] = health.Health("progressing", reason)
                    still.append(item)
                    continue
                if label(current, LABEL_NAME) != self._sync.name:
                    verdicts[item.name] = health.Health("healthy", "taken over (no sync labels)")
                    continue
                verdict = health.assess(current) or health.Health("healthy", "")
                verdicts[item.name] = verdict
                if verdict.status == "progressing":
                    still.append(item)
            if any(v.status == "failed" for v in verdicts.values()) or not still:
                break
            if time.monotonic() + _POLL > deadline:
                break
            pending = still
            if self._interrupted.wait(_POLL):
                for item in still:
                    verdicts[item.name] = health.Health(
                        "progressing", "not checked further: the synchronizer was stopping"
                    )
                break
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

    def _poll(self, items: Sequence[Desired]) -> list[dict[str, Any] | BaseException | None]:
        """The live copies of ``items``, one labelled LIST per kind and namespace."""
        groups = sorted({(d.rtype, d.id.namespace) for d in items}, key=str)
        selector = {LABEL_NAME: self._sync.name}
        found: dict[tuple[ResourceType, order.ObjectId], dict[str, Any]] = {}
        failures: dict[tuple[ResourceType, str | None], BaseException] = {}
        for group, listed in zip(
            groups,
            self._map(lambda g: self._kube.list(g[0], namespace=g[1], labels=selector), groups),
            strict=True,
        ):
            if isinstance(listed, BaseException):
                failures[group] = listed
                continue
            for obj in listed:
                found[(group[0], order.ObjectId.from_obj(obj))] = obj
        out: list[dict[str, Any] | BaseException | None] = []
        for item in items:
            failure = failures.get((item.rtype, item.id.namespace))
            seen = found.get((item.rtype, item.id))
            if failure is None and seen is None:
                # not under our labels: gone, or someone took it over (rare: one GET)
                try:
                    seen = self._kube.get(item.rtype, item.id.name, item.id.namespace)
                except (ClusterError, ClusterUnavailable) as exc:
                    failure = exc
            out.append(failure or seen)
        return out


def _assessable(obj: Mapping[str, Any]) -> bool:
    return obj.get("kind") in {"Deployment", "StatefulSet", "DaemonSet", "Job"} and api_group(
        str(obj.get("apiVersion", ""))
    ) in {"apps", "batch"}
