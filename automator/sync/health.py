"""Is a workload rolled out? The rules people know from ``kubectl rollout status``, Argo CD
health checks and kstatus, on live object dicts.

Pure: it reads the ``status`` the controllers wrote and never asks the cluster for more
(no Pods, no ReplicaSets), so one GET per workload is all a health check costs.

Every rule first checks ``status.observedGeneration`` against ``metadata.generation``:
until the controller has seen the latest spec, the rest of the status describes the
previous one, and a Deployment that was complete before an image change would look
complete right after it. Missing status counters count as 0, because the apiserver
leaves zero-valued fields out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from automator.sync.order import group_of

__all__ = ["Health", "HealthStatus", "assess"]

HealthStatus = Literal["healthy", "progressing", "failed"]

# Container waiting reasons that need a change (image, config) rather than time: the Pod
# is failed, as Argo CD marks it Degraded.
_BROKEN_WAITING = frozenset(
    {
        "CrashLoopBackOff",
        "ImagePullBackOff",
        "ErrImagePull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
    }
)


@dataclass(frozen=True)
class Health:
    """A verdict and the sentence behind it, numbers included, for logs and ``sync`` output.

    ``progressing`` means "wait and look again"; ``failed`` means waiting will not help.
    """

    status: HealthStatus
    message: str


def assess(obj: Mapping[str, Any]) -> Health | None:
    """The health of a live object, or None for kinds without a rollout (they are healthy
    once applied): Deployment, StatefulSet, DaemonSet, Job and Pod are assessed."""
    api_version = obj.get("apiVersion")
    group = group_of(api_version) if isinstance(api_version, str) else None
    rule = _RULES.get(str(obj.get("kind")))
    if rule is None:
        return None
    groups, check = rule
    if group is not None and group not in groups:
        return None  # a custom resource that shares a built-in kind's name
    return check(obj)


def _map(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _int(mapping: Mapping[str, Any], key: str, default: int = 0) -> int:
    value = mapping.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _conditions(status: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    conditions = status.get("conditions")
    if not isinstance(conditions, list):
        return {}
    return {str(c.get("type")): c for c in conditions if isinstance(c, Mapping)}


def _is_true(condition: Mapping[str, Any] | None) -> bool:
    return condition is not None and condition.get("status") == "True"


def _explain(condition: Mapping[str, Any]) -> str:
    """``Reason: message`` of a condition, whichever parts it has."""
    parts = [str(condition[k]) for k in ("reason", "message") if condition.get(k)]
    return ": ".join(parts) if parts else "no reason given"


def _not_observed(obj: Mapping[str, Any], status: Mapping[str, Any]) -> Health | None:
    """Progressing while the controller has not yet observed the latest generation."""
    generation = _int(_map(obj.get("metadata")), "generation", -1)
    observed = _int(status, "observedGeneration")
    if generation >= 0 and observed < generation:
        return Health(
            "progressing",
            f"Waiting for the controller to observe generation {generation} "
            f"(it has seen {observed})",
        )
    return None


def _strategy(spec: Mapping[str, Any]) -> Mapping[str, Any]:
    return _map(spec.get("updateStrategy"))


def _deployment(obj: Mapping[str, Any]) -> Health:
    spec, status = _map(obj.get("spec")), _map(obj.get("status"))
    if spec.get("paused") is True:
        # Argo CD calls this Suspended: it will not progress until resumed, so waiting
        # for it would only time out.
        return Health("healthy", "Rollout is paused (spec.paused): not waiting for it")
    pending = _not_observed(obj, status)
    if pending is not None:
        return pending
    progressing = _conditions(status).get("Progressing")
    if progressing is not None and progressing.get("reason") == "ProgressDeadlineExceeded":
        deadline = _int(spec, "progressDeadlineSeconds", 600)
        return Health(
            "failed",
            f"Rollout made no progress for {deadline}s (ProgressDeadlineExceeded): "
            f"{progressing.get('message') or 'no message'}",
        )
    wanted = _int(spec, "replicas", 1)
    updated = _int(status, "updatedReplicas")
    total = _int(status, "replicas")
    available = _int(status, "availableReplicas")
    if updated < wanted:
        return Health(
            "progressing", f"Waiting for rollout: {updated} of {wanted} replicas are updated"
        )
    if total > updated:
        return Health(
            "progressing",
            f"Waiting for rollout: {total - updated} old replicas are pending termination",
        )
    if available < updated:
        return Health(
            "progressing",
            f"Waiting for rollout: {available} of {updated} updated replicas are available",
        )
    return Health("healthy", f"Rolled out: {available} of {wanted} replicas are available")


def _statefulset(obj: Mapping[str, Any]) -> Health:
    spec, status = _map(obj.get("spec")), _map(obj.get("status"))
    pending = _not_observed(obj, status)
    if pending is not None:
        return pending
    wanted = _int(spec, "replicas", 1)
    ready = _int(status, "readyReplicas")
    updated = _int(status, "updatedReplicas")
    if ready < wanted:
        return Health("progressing", f"Waiting for rollout: {ready} of {wanted} pods are ready")
    strategy = _strategy(spec)
    if strategy.get("type") == "OnDelete":
        return Health(
            "healthy",
            f"{ready} of {wanted} pods are ready; updateStrategy OnDelete updates a pod only "
            "when it is deleted, so the rollout is not waited for",
        )
    partition = _int(_map(strategy.get("rollingUpdate")), "partition")
    if partition > 0:
        expected = max(wanted - partition, 0)
        if updated < expected:
            return Health(
                "progressing",
                f"Waiting for partitioned rollout: {updated} of {expected} pods are updated "
                f"(partition {partition})",
            )
        return Health(
            "healthy",
            f"Partitioned rollout complete: {updated} of {expected} pods are updated "
            f"(partition {partition})",
        )
    current, target = status.get("currentRevision"), status.get("updateRevision")
    if target is not None and current != target:
        return Health(
            "progressing",
            f"Waiting for rollout: {updated} of {wanted} pods are at revision {target}",
        )
    return Health("healthy", f"Rolled out: {ready} of {wanted} pods are ready")


def _daemonset(obj: Mapping[str, Any]) -> Health:
    spec, status = _map(obj.get("spec")), _map(obj.get("status"))
    pending = _not_observed(obj, status)
    if pending is not None:
        return pending
    desired = _int(status, "desiredNumberScheduled")
    updated = _int(status, "updatedNumberScheduled")
    available = _int(status, "numberAvailable")
    if _strategy(spec).get("type") == "OnDelete":
        return Health(
            "healthy",
            f"{updated} of {desired} pods are updated; updateStrategy OnDelete updates a pod "
            "only when it is deleted, so the rollout is not waited for",
        )
    if updated < desired:
        return Health(
            "progressing", f"Waiting for rollout: {updated} of {desired} pods are updated"
        )
    if available < desired:
        return Health(
            "progressing",
            f"Waiting for rollout: {available} of {desired} updated pods are available",
        )
    return Health("healthy", f"Rolled out: {available} of {desired} pods are available")


def _job(obj: Mapping[str, Any]) -> Health:
    spec, status = _map(obj.get("spec")), _map(obj.get("status"))
    conditions = _conditions(status)
    succeeded, active = _int(status, "succeeded"), _int(status, "active")
    # FailureTarget (Kubernetes 1.31+) comes before Failed, while pods are terminated.
    for kind in ("Failed", "FailureTarget"):
        if _is_true(conditions.get(kind)):
            return Health("failed", f"Job failed: {_explain(conditions[kind])}")
    if _is_true(conditions.get("Complete")) or _is_true(conditions.get("SuccessCriteriaMet")):
        return Health("healthy", f"Job complete: {succeeded} pods succeeded")
    if spec.get("suspend") is True or _is_true(conditions.get("Suspended")):
        return Health("healthy", "Job is suspended (spec.suspend): not waiting for it")
    completions = spec.get("completions")
    of = f" of {completions}" if isinstance(completions, int) else ""
    return Health(
        "progressing", f"Waiting for job: {succeeded}{of} pods succeeded, {active} running"
    )


def _pod(obj: Mapping[str, Any]) -> Health:
    status = _map(obj.get("status"))
    phase = status.get("phase") or "Pending"
    if phase == "Failed":
        reason = ": ".join(str(status[k]) for k in ("reason", "message") if status.get(k))
        return Health("failed", f"Pod failed: {reason or 'a container exited with an error'}")
    if phase == "Succeeded":
        return Health("healthy", "Pod completed")
    for key in ("initContainerStatuses", "containerStatuses"):
        statuses = status.get(key)
        for container in statuses if isinstance(statuses, list) else []:
            waiting = _map(_map(_map(container).get("state")).get("waiting"))
            if waiting.get("reason") in _BROKEN_WAITING:
                return Health(
                    "failed",
                    f"Container {_map(container).get('name')!r} is waiting: {_explain(waiting)}",
                )
    if phase == "Running" and _is_true(_conditions(status).get("Ready")):
        return Health("healthy", "Pod is running and ready")
    statuses = status.get("containerStatuses")
    containers = (
        [c for c in statuses if isinstance(c, Mapping)] if isinstance(statuses, list) else []
    )
    if not containers:
        return Health("progressing", f"Waiting for pod: it is {phase}")
    ready = sum(1 for c in containers if c.get("ready") is True)
    return Health(
        "progressing",
        f"Waiting for pod: it is {phase}, {ready} of {len(containers)} containers are ready",
    )


_Rule = tuple[frozenset[str], Callable[[Mapping[str, Any]], Health]]
_RULES: dict[str, _Rule] = {
    "Deployment": (frozenset({"apps", "extensions"}), _deployment),
    "StatefulSet": (frozenset({"apps"}), _statefulset),
    "DaemonSet": (frozenset({"apps", "extensions"}), _daemonset),
    "Job": (frozenset({"batch"}), _job),
    "Pod": (frozenset({""}), _pod),
}
