"""The test control plane itself: the apiserver is the pinned one, RBAC is on, and workloads
really roll out (controller-manager, scheduler and kwok all take part) before any
synchronizer test relies on it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.kube import NODE_NAME, ControlPlane, pinned_kube_version

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

# Generous: two control planes share two cores under pytest -n 2.
ROLLOUT_TIMEOUT = 120.0

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: registry.example/team/web:1.0.0
"""

JOB = """\
apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: migrate
          image: registry.example/team/migrate:1.0.0
"""


def _condition(obj: dict[str, Any], kind: str) -> str | None:
    for condition in obj.get("status", {}).get("conditions", []):
        if condition.get("type") == kind:
            status: str = condition.get("status")
            return status
    return None


def test_the_apiserver_is_the_pinned_kubernetes_release(control_plane: ControlPlane) -> None:
    assert control_plane.get("/version")["gitVersion"] == pinned_kube_version()


def test_an_anonymous_request_is_refused(control_plane: ControlPlane) -> None:
    with control_plane.client(anonymous=True) as http:
        response = http.get("/api/v1/namespaces/default/secrets")
    assert response.status_code in (401, 403)


def test_the_kubeconfig_carries_the_admin_token(control_plane: ControlPlane) -> None:
    result = control_plane.kubectl("auth", "can-i", "*", "*", "--all-namespaces")
    assert result.stdout.strip() == "yes"


def test_a_deployment_applied_server_side_becomes_available_on_the_kwok_node(
    control_plane: ControlPlane, kube_namespace: str
) -> None:
    control_plane.kubectl(
        "apply", "--server-side", "--field-manager=automator-test", "-n", kube_namespace,
        "-f", "-", stdin=DEPLOYMENT,
    )  # fmt: skip
    path = f"/apis/apps/v1/namespaces/{kube_namespace}/deployments/web"

    def available() -> bool:
        deployment = control_plane.get(path)
        return (
            _condition(deployment, "Available") == "True"
            and deployment["status"].get("availableReplicas") == 2
        )

    control_plane.wait_for(available, timeout=ROLLOUT_TIMEOUT, what="deployment web available")

    deployment = control_plane.get(path)
    assert deployment["status"]["availableReplicas"] == 2
    assert deployment["status"]["updatedReplicas"] == 2
    managers = {entry["manager"] for entry in deployment["metadata"]["managedFields"]}
    assert "automator-test" in managers
    pods = control_plane.kubectl_json("get", "pods", "-n", kube_namespace, "-l", "app=web")
    assert len(pods["items"]) == 2
    for pod in pods["items"]:
        assert pod["spec"]["nodeName"] == NODE_NAME
        assert pod["status"]["phase"] == "Running"
        assert pod["status"].get("podIP")


def test_a_job_runs_to_completion(control_plane: ControlPlane, kube_namespace: str) -> None:
    control_plane.kubectl(
        "apply", "--server-side", "-n", kube_namespace, "-f", "-", stdin=JOB
    )  # fmt: skip
    path = f"/apis/batch/v1/namespaces/{kube_namespace}/jobs/migrate"

    control_plane.wait_for(
        lambda: _condition(control_plane.get(path), "Complete") == "True",
        timeout=ROLLOUT_TIMEOUT,
        what="job migrate complete",
    )

    job = control_plane.get(path)
    assert job["status"]["succeeded"] == 1
    assert job["status"].get("failed", 0) == 0
    pods = control_plane.kubectl_json("get", "pods", "-n", kube_namespace)
    assert [pod["status"]["phase"] for pod in pods["items"]] == ["Succeeded"]
