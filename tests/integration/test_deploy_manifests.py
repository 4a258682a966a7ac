"""The example manifests in deploy/ are what a user applies first: they must render,
carry a configuration Automator accepts, and be accepted by a real apiserver."""

from __future__ import annotations

from pathlib import Path

import pytest
from ruamel.yaml import YAML

from automator.config import Settings, settings_from_mapping
from automator.sync.render import render_path
from tests.support.kube import ControlPlane

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ["deploy/synchronizer.yaml", "deploy/automator.yaml"]


def _embedded_config(rel: str) -> Settings:
    (configmap,) = [r.obj for r in render_path(ROOT, rel) if r.obj["kind"] == "ConfigMap"]
    return settings_from_mapping(YAML(typ="safe").load(configmap["data"]["automator.yaml"]))


def test_the_synchronizer_example_carries_a_valid_configuration_for_sync() -> None:
    settings = _embedded_config("deploy/synchronizer.yaml")
    assert settings.sync.paths[0].path == "clusters/prod"
    assert settings.sync.listen == "0.0.0.0:8081"
    objs = [r.obj for r in render_path(ROOT, "deploy/synchronizer.yaml")]
    (deployment,) = [o for o in objs if o["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    # the hook secret the config names is really handed to the process
    assert settings.sync.webhook_secret_env in {e["name"] for e in container["env"]}


def test_the_automator_example_runs_two_replicas_that_may_touch_only_their_lease() -> None:
    settings = _embedded_config("deploy/automator.yaml")
    assert settings.http.listen == "0.0.0.0:8080"
    assert settings.leader_election is not None
    objs = [r.obj for r in render_path(ROOT, "deploy/automator.yaml")]
    assert not [o for o in objs if o["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    (role,) = [o for o in objs if o["kind"] == "Role"]
    (binding,) = [o for o in objs if o["kind"] == "RoleBinding"]
    (deployment,) = [o for o in objs if o["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 2
    # the Role covers leases only, in the Lease's namespace, and names the Lease where
    # RBAC allows (create cannot be limited by name)
    assert role["metadata"]["namespace"] == settings.leader_election.namespace
    for rule in role["rules"]:
        assert rule["apiGroups"] == ["coordination.k8s.io"]
        assert rule["resources"] == ["leases"]
        assert set(rule["verbs"]) <= {"get", "create", "update"}
        if set(rule["verbs"]) != {"create"}:
            assert rule["resourceNames"] == [settings.leader_election.lease]
    assert {v for rule in role["rules"] for v in rule["verbs"]} == {"get", "create", "update"}
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": pod["serviceAccountName"],
            "namespace": "automator-system",
        }
    ]
    (container,) = pod["containers"]
    assert "POD_NAME" in {e["name"] for e in container["env"]}


@pytest.mark.parametrize("rel", MANIFESTS)
def test_the_example_is_accepted_by_a_real_apiserver(control_plane: ControlPlane, rel: str) -> None:
    control_plane.kubectl(
        "apply",
        "--server-side",
        "--field-manager=test",
        "-f",
        "-",
        stdin="apiVersion: v1\nkind: Namespace\nmetadata: {name: automator-system}\n",
    )
    done = control_plane.kubectl(
        "apply", "--server-side", "--dry-run=server", "--field-manager=test", "-f", str(ROOT / rel)
    )
    assert "deployment.apps/automator" in done.stdout
    assert "(server dry run)" in done.stdout
