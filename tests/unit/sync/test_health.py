"""Rollout health, on status blocks as kube-controller-manager writes them."""

from __future__ import annotations

from typing import Any

import pytest

from automator.sync.health import Health, assess


def deployment(status: dict[str, Any], *, generation: int = 2, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "prod", "generation": generation},
        "spec": {"replicas": 3, "progressDeadlineSeconds": 600, **spec},
        "status": status,
    }


AVAILABLE = {
    "type": "Available",
    "status": "True",
    "reason": "MinimumReplicasAvailable",
    "message": "Deployment has minimum availability.",
}
ROLLING = {
    "type": "Progressing",
    "status": "True",
    "reason": "ReplicaSetUpdated",
    "message": 'ReplicaSet "web-5d4f8b7c9" is progressing.',
}
DONE = {
    "type": "Progressing",
    "status": "True",
    "reason": "NewReplicaSetAvailable",
    "message": 'ReplicaSet "web-5d4f8b7c9" has successfully progressed.',
}
STUCK = {
    "type": "Progressing",
    "status": "False",
    "reason": "ProgressDeadlineExceeded",
    "message": 'ReplicaSet "web-5d4f8b7c9" has timed out progressing.',
}


DEPLOYMENTS = [
    pytest.param(
        deployment({}, generation=1),
        Health("progressing", "Waiting for the controller to observe generation 1 (it has seen 0)"),
        id="just created, no status yet",
    ),
    pytest.param(
        deployment(
            {
                "observedGeneration": 1,
                "replicas": 3,
                "updatedReplicas": 3,
                "readyReplicas": 3,
                "availableReplicas": 3,
                "conditions": [AVAILABLE, DONE],
            }
        ),
        Health("progressing", "Waiting for the controller to observe generation 2 (it has seen 1)"),
        id="image changed, status still describes the previous spec",
    ),
    pytest.param(
        deployment(
            {
                "observedGeneration": 2,
                "replicas": 4,
                "updatedReplicas": 2,
                "readyReplicas": 3,
                "availableReplicas": 3,
                "unavailableReplicas": 1,
                "conditions": [AVAILABLE, ROLLING],
            }
        ),
        Health("progressing", "Waiting for rollout: 2 of 3 replicas are updated"),
        id="mid-rollout",
    ),
    pytest.param(
        deployment(
            {
                "observedGeneration": 2,
                "replicas": 4,
                "updatedReplicas": 3,
                "readyReplicas": 4,
                "availableReplicas": 4,
                "conditions": [AVAILABLE, ROLLING],
            }
        ),
        Health("progressing", "Waiting for rollout: 1 old replicas are pending termination"),
        id="old replica still terminating",
    ),
    pytest.param(
        deployment(
            {
                "observedGeneration": 2,
                "replicas": 3,
                "updatedReplicas": 3,
                "readyReplicas": 2,
                "availableReplicas": 2,
                "unavailableReplicas": 1,
                "conditions": [AVAILABLE, ROLLING],
            }
        ),
        Health("progressing", "Waiting for rollout: 2 of 3 updated replicas are available"),
        id="last new replica not yet available",
    ),
    pytest.param(
        deployment(
            {
                "observedGeneration": 2,
                "replicas": 3,
                "updatedReplicas": 3,
                "readyReplicas": 3,
                "availableReplicas": 3,
                "conditions": [AVAILABLE, DONE],
            }
        ),
        Health("healthy", "Rolled out: 3 of 3 replicas are available"),
        id="complete",
    ),
    pytest.param(
        deployment(
            {
                "observedGeneration": 2,
                "replicas": 4,
                "updatedReplicas": 1,
                "readyReplicas": 3,
                "availableReplicas": 3,
                "unavailableReplicas": 1,
                "conditions": [AVAILABLE, STUCK],
            }
        ),
        Health(
            "failed",
            "Rollout made no progress for 600s (ProgressDeadlineExceeded): "
            'ReplicaSet "web-5d4f8b7c9" has timed out progressing.',
        ),
        id="progress deadline exceeded",
    ),
    pytest.param(
        deployment({"observedGeneration": 1, "replicas": 3, "updatedReplicas": 1}, paused=True),
        Health("healthy", "Rollout is paused (spec.paused): not waiting for it"),
        id="paused",
    ),
    pytest.param(
        deployment({"observedGeneration": 2}, replicas=0),
        Health("healthy", "Rolled out: 0 of 0 replicas are available"),
        id="scaled to zero",
    ),
]


@pytest.mark.parametrize(("obj", "expected"), DEPLOYMENTS)
def test_deployment_health_follows_kubectl_rollout_status(
    obj: dict[str, Any], expected: Health
) -> None:
    assert assess(obj) == expected


def statefulset(status: dict[str, Any], strategy: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": "prod", "generation": 2},
        "spec": {
            "replicas": 3,
            "updateStrategy": strategy or {"type": "RollingUpdate"},
        },
        "status": {"observedGeneration": 2, "replicas": 3, "collisionCount": 0, **status},
    }


ROLLING_STS = {
    "readyReplicas": 3,
    "availableReplicas": 3,
    "currentReplicas": 1,
    "updatedReplicas": 2,
    "currentRevision": "db-6c5d7f9b8",
    "updateRevision": "db-7f8d9c6d4",
}
DONE_STS = {
    "readyReplicas": 3,
    "availableReplicas": 3,
    "currentReplicas": 3,
    "updatedReplicas": 3,
    "currentRevision": "db-7f8d9c6d4",
    "updateRevision": "db-7f8d9c6d4",
}


STATEFULSETS = [
    pytest.param(
        statefulset({**ROLLING_STS, "readyReplicas": 2, "availableReplicas": 2}),
        Health("progressing", "Waiting for rollout: 2 of 3 pods are ready"),
        id="a pod is not ready",
    ),
    pytest.param(
        statefulset(ROLLING_STS),
        Health("progressing", "Waiting for rollout: 2 of 3 pods are at revision db-7f8d9c6d4"),
        id="rolling update in progress",
    ),
    pytest.param(
        statefulset(DONE_STS),
        Health("healthy", "Rolled out: 3 of 3 pods are ready"),
        id="complete",
    ),
    pytest.param(
        statefulset(
            {**ROLLING_STS, "updatedReplicas": 0},
            {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}},
        ),
        Health(
            "progressing",
            "Waiting for partitioned rollout: 0 of 1 pods are updated (partition 2)",
        ),
        id="partitioned, canary pod not updated yet",
    ),
    pytest.param(
        statefulset(
            {**ROLLING_STS, "updatedReplicas": 1},
            {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}},
        ),
        Health("healthy", "Partitioned rollout complete: 1 of 1 pods are updated (partition 2)"),
        id="partitioned, canary pod updated",
    ),
    pytest.param(
        statefulset(ROLLING_STS, {"type": "OnDelete"}),
        Health(
            "healthy",
            "3 of 3 pods are ready; updateStrategy OnDelete updates a pod only when it is "
            "deleted, so the rollout is not waited for",
        ),
        id="OnDelete",
    ),
]


@pytest.mark.parametrize(("obj", "expected"), STATEFULSETS)
def test_statefulset_health_waits_for_ready_pods_at_the_update_revision(
    obj: dict[str, Any], expected: Health
) -> None:
    assert assess(obj) == expected


def test_a_statefulset_the_controller_has_not_seen_is_progressing() -> None:
    obj = statefulset(DONE_STS)
    obj["metadata"]["generation"] = 3

    verdict = assess(obj)

    assert verdict is not None
    assert verdict.status == "progressing"


def daemonset(status: dict[str, Any], strategy: str = "RollingUpdate") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "agent", "namespace": "kube-system", "generation": 2},
        "spec": {"updateStrategy": {"type": strategy}},
        "status": {
            "observedGeneration": 2,
            "currentNumberScheduled": 3,
            "desiredNumberScheduled": 3,
            "numberMisscheduled": 0,
            **status,
        },
    }


DAEMONSETS = [
    pytest.param(
        daemonset({"updatedNumberScheduled": 1, "numberAvailable": 3, "numberReady": 3}),
        Health("progressing", "Waiting for rollout: 1 of 3 pods are updated"),
        id="rolling",
    ),
    pytest.param(
        daemonset(
            {
                "updatedNumberScheduled": 3,
                "numberAvailable": 2,
                "numberReady": 2,
                "numberUnavailable": 1,
            }
        ),
        Health("progressing", "Waiting for rollout: 2 of 3 updated pods are available"),
        id="last pod not available",
    ),
    pytest.param(
        daemonset({"updatedNumberScheduled": 3, "numberAvailable": 3, "numberReady": 3}),
        Health("healthy", "Rolled out: 3 of 3 pods are available"),
        id="complete",
    ),
    pytest.param(
        daemonset({"updatedNumberScheduled": 1, "numberAvailable": 3}, strategy="OnDelete"),
        Health(
            "healthy",
            "1 of 3 pods are updated; updateStrategy OnDelete updates a pod only when it is "
            "deleted, so the rollout is not waited for",
        ),
        id="OnDelete",
    ),
]


@pytest.mark.parametrize(("obj", "expected"), DAEMONSETS)
def test_daemonset_health_waits_for_every_node_to_run_the_new_pod(
    obj: dict[str, Any], expected: Health
) -> None:
    assert assess(obj) == expected


def job(status: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "migrate", "namespace": "prod", "generation": 1},
        "spec": {"completions": 1, "backoffLimit": 6, **spec},
        "status": status,
    }


JOBS = [
    pytest.param(
        job({"active": 1, "ready": 0, "terminating": 0, "startTime": "2026-01-01T00:00:00Z"}),
        Health("progressing", "Waiting for job: 0 of 1 pods succeeded, 1 running"),
        id="running",
    ),
    pytest.param(
        job(
            {
                "succeeded": 1,
                "ready": 0,
                "terminating": 0,
                "conditions": [
                    {
                        "type": "SuccessCriteriaMet",
                        "status": "True",
                        "reason": "CompletionsReached",
                        "message": "Reached expected number of succeeded pods",
                    },
                    {
                        "type": "Complete",
                        "status": "True",
                        "reason": "CompletionsReached",
                        "message": "Reached expected number of succeeded pods",
                    },
                ],
            }
        ),
        Health("healthy", "Job complete: 1 pods succeeded"),
        id="complete",
    ),
    pytest.param(
        job(
            {
                "failed": 7,
                "ready": 0,
                "terminating": 0,
                "conditions": [
                    {
                        "type": "FailureTarget",
                        "status": "True",
                        "reason": "BackoffLimitExceeded",
                        "message": "Job has reached the specified backoff limit",
                    },
                    {
                        "type": "Failed",
                        "status": "True",
                        "reason": "BackoffLimitExceeded",
                        "message": "Job has reached the specified backoff limit",
                    },
                ],
            }
        ),
        Health(
            "failed",
            "Job failed: BackoffLimitExceeded: Job has reached the specified backoff limit",
        ),
        id="failed",
    ),
    pytest.param(
        job(
            {
                "conditions": [
                    {
                        "type": "Suspended",
                        "status": "True",
                        "reason": "JobSuspended",
                        "message": "Job suspended",
                    }
                ]
            },
            suspend=True,
        ),
        Health("healthy", "Job is suspended (spec.suspend): not waiting for it"),
        id="suspended",
    ),
]


@pytest.mark.parametrize(("obj", "expected"), JOBS)
def test_job_health_follows_its_conditions(obj: dict[str, Any], expected: Health) -> None:
    assert assess(obj) == expected


def pod(status: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "tool", "namespace": "prod"},
        "spec": {"containers": [{"name": "app", "image": "app:1"}]},
        "status": status,
    }


def test_a_pod_in_crash_loop_has_failed_and_the_message_names_the_container() -> None:
    verdict = assess(
        pod(
            {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "False"}],
                "containerStatuses": [
                    {
                        "name": "app",
                        "ready": False,
                        "restartCount": 4,
                        "state": {
                            "waiting": {
                                "reason": "CrashLoopBackOff",
                                "message": "back-off 1m20s restarting failed container=app",
                            }
                        },
                    }
                ],
            }
        )
    )

    assert verdict == Health(
        "failed",
        "Container 'app' is waiting: CrashLoopBackOff: back-off 1m20s restarting failed "
        "container=app",
    )


def test_a_pod_being_created_is_progressing() -> None:
    verdict = assess(
        pod(
            {
                "phase": "Pending",
                "containerStatuses": [
                    {
                        "name": "app",
                        "ready": False,
                        "state": {"waiting": {"reason": "ContainerCreating"}},
                    }
                ],
            }
        )
    )

    assert verdict == Health(
        "progressing", "Waiting for pod: it is Pending, 0 of 1 containers are ready"
    )


def test_a_running_ready_pod_is_healthy_and_a_failed_one_has_failed() -> None:
    ready = pod({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]})
    failed = pod({"phase": "Failed", "reason": "Evicted", "message": "The node was low on memory."})

    assert assess(ready) == Health("healthy", "Pod is running and ready")
    assert assess(failed) == Health("failed", "Pod failed: Evicted: The node was low on memory.")


@pytest.mark.parametrize(
    "obj",
    [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}},
        {"apiVersion": "example.com/v1", "kind": "Deployment", "metadata": {"name": "d"}},
        {"apiVersion": "argoproj.io/v1alpha1", "kind": "Job", "metadata": {"name": "j"}},
    ],
)
def test_kinds_without_a_rollout_are_not_assessed(obj: dict[str, Any]) -> None:
    assert assess(obj) is None
