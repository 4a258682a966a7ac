"""The synchronizer on a real control plane: etcd, kube-apiserver, controller-manager,
scheduler and kwok (fake nodes that run pods), started by the ``control_plane`` fixture.

Each test has its own config repo, its own sync name (so its own inventory and state),
its own target namespace and, where it defines a CRD, its own API group: tests share the
cluster but never each other's objects.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from automator.config import Settings
from automator.sync import Synchronizer, SyncReport
from tests.support.kube import ControlPlane
from tests.support.sync import SyncRig
from tests.support.sync import actions as _actions
from tests.support.sync import configmap as _configmap

pytestmark = [pytest.mark.integration, pytest.mark.cluster]


def _crd(group: str) -> str:
    return f"""\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.{group}
spec:
  group: {group}
  scope: Namespaced
  names: {{plural: widgets, singular: widget, kind: Widget, listKind: WidgetList}}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                size: {{type: integer}}
"""


def _widget(group: str, name: str, size: int) -> str:
    return f"""\
apiVersion: {group}/v1
kind: Widget
metadata:
  name: {name}
spec:
  size: {size}
"""


def _deployment(name: str, *, replicas: int = 2, extra: str = "", deadline: int = 600) -> str:
    return f"""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
  progressDeadlineSeconds: {deadline}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
{extra}      containers:
        - name: app
          image: registry.example/{name}:1.0.0
          resources:
            requests: {{cpu: 100m, memory: 64Mi}}
"""


class Rig(SyncRig):
    """One config repo plus the settings of one synchronizer pointed at the test cluster."""

    timeout = "90s"

    def __init__(self, root: Path, cluster: ControlPlane, namespace: str) -> None:
        super().__init__(root, cluster, namespace)
        self.group = f"t{uuid.uuid4().hex[:8]}.example.com"
        self.extra: dict[str, Any] = {}

    def settings(self, **sync: Any) -> Settings:
        return super().settings(**{**self.extra, **sync})

    def sync(self, **sync: Any) -> SyncReport:
        synchronizer = Synchronizer.from_settings(self.settings(**sync))
        try:
            return synchronizer.run()
        finally:
            synchronizer.close()

    def cli(self, *args: str, **sync: Any) -> subprocess.CompletedProcess[str]:
        config = self.root / "automator.yaml"
        config.write_text(json.dumps(_jsonable(self.settings(**sync))))
        env = {**os.environ, "KUBECONFIG": str(self.cluster.kubeconfig)}
        return subprocess.run(
            [sys.executable, "-m", "automator", "--config", str(config), *args],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=240,
        )

    def get(self, kind: str, name: str, *, namespace: str | None = None) -> dict[str, Any] | None:
        ns = ["-n", namespace or self.namespace] if namespace != "" else []
        proc = self.cluster.kubectl("get", kind, name, *ns, "-o", "json", check=False)
        if proc.returncode != 0:
            return None
        doc: dict[str, Any] = json.loads(proc.stdout)
        return doc

    def patch(self, kind: str, name: str, patch: Mapping[str, Any]) -> None:
        """Edit a live object in the test namespace by hand, with a JSON merge patch."""
        self.cluster.kubectl(
            "patch", kind, name, "-n", self.namespace, "--type=merge", "-p", json.dumps(patch)
        )


def _jsonable(settings: Settings) -> Any:
    return json.loads(settings.model_dump_json(exclude_none=True))


@pytest.fixture
def rig(tmp_path: Path, control_plane: ControlPlane, kube_namespace: str) -> Rig:
    return Rig(tmp_path, control_plane, kube_namespace)


def test_first_apply_creates_a_crd_and_its_objects_then_a_resync_writes_nothing(rig: Rig) -> None:
    rig.commit(
        {
            "deploy/crd.yaml": _crd(rig.group),
            "deploy/widgets.yaml": _widget(rig.group, "alpha", 1)
            + "---\n"
            + _widget(rig.group, "beta", 2),
            "deploy/config.yaml": _configmap("settings", "one"),
        }
    )
    first = rig.sync()
    assert first.ok, first.message
    actions = _actions(first)
    assert (
        actions[f"CustomResourceDefinition.apiextensions.k8s.io/widgets.{rig.group}"] == "created"
    )
    assert actions[f"Widget.{rig.group}/{rig.namespace}/alpha"] == "created"
    assert actions[f"ConfigMap/{rig.namespace}/settings"] == "created"
    widget = rig.get(f"widgets.{rig.group}", "beta")
    assert widget is not None
    assert widget["spec"] == {"size": 2}
    assert widget["metadata"]["labels"]["automator.gitops.io/sync-name"] == rig.name
    raw = rig.cluster.get(f"/apis/{rig.group}/v1/namespaces/{rig.namespace}/widgets/beta")
    managers = {m["manager"] for m in raw["metadata"]["managedFields"]}
    assert "automator" in managers
    versions = {name: rig.get("configmap", name) for name in ("settings",)}

    second = rig.sync()
    assert second.ok, second.message
    assert set(_actions(second).values()) == {"unchanged"}
    after = rig.get("configmap", "settings")
    assert after is not None
    assert versions["settings"] is not None
    assert (
        after["metadata"]["resourceVersion"] == versions["settings"]["metadata"]["resourceVersion"]
    )
    # An unchanged resync costs one LIST per kind plus the state record, not a request per
    # object: ten more objects of a kind already there add no request.
    more = {f"deploy/more-{i}.yaml": _configmap(f"more-{i}", str(i)) for i in range(10)}
    rig.commit(more)
    assert rig.sync().ok
    third = rig.sync()
    assert set(_actions(third).values()) == {"unchanged"}
    assert len(third.changes) == len(second.changes) + 10
    assert third.requests == second.requests


def test_an_update_in_git_configures_only_the_changed_object(rig: Rig) -> None:
    rig.commit({"deploy/a.yaml": _configmap("a", "1"), "deploy/b.yaml": _configmap("b", "1")})
    assert rig.sync().ok
    before_b = rig.get("configmap", "b")
    rig.commit({"deploy/a.yaml": _configmap("a", "2")})
    report = rig.sync()
    assert report.ok, report.message
    assert _actions(report) == {
        f"ConfigMap/{rig.namespace}/a": "configured",
        f"ConfigMap/{rig.namespace}/b": "unchanged",
    }
    a = rig.get("configmap", "a")
    b = rig.get("configmap", "b")
    assert a is not None
    assert a["data"] == {"value": "2"}
    assert b is not None
    assert before_b is not None
    assert b["metadata"]["resourceVersion"] == before_b["metadata"]["resourceVersion"]


def test_an_object_removed_from_git_is_pruned_but_a_protected_one_is_not(rig: Rig) -> None:
    rig.commit(
        {
            "deploy/keep.yaml": _configmap("keep", "1"),
            "deploy/gone.yaml": _configmap("gone", "1"),
            "deploy/protected.yaml": _configmap(
                "protected", "1", {"automator.gitops.io/prune": "disabled"}
            ),
        }
    )
    assert rig.sync().ok
    rig.commit({}, remove=("deploy/gone.yaml", "deploy/protected.yaml"))
    report = rig.sync()
    assert report.ok, report.message
    actions = _actions(report)
    assert actions[f"ConfigMap/{rig.namespace}/gone"] == "deleted"
    assert actions[f"ConfigMap/{rig.namespace}/protected"] == "skipped"
    assert rig.get("configmap", "gone") is None
    assert rig.get("configmap", "protected") is not None
    assert rig.get("configmap", "keep") is not None
    # the protected object left the inventory: the next sync does not mention it again
    again = rig.sync()
    assert f"ConfigMap/{rig.namespace}/protected" not in _actions(again)


def test_an_object_without_our_labels_is_never_pruned(rig: Rig) -> None:
    rig.commit(
        {"deploy/x.yaml": _configmap("adopted", "1"), "deploy/other.yaml": _configmap("other", "1")}
    )
    assert rig.sync().ok
    rig.cluster.kubectl(
        "label", "configmap", "adopted", "-n", rig.namespace, "automator.gitops.io/sync-name-"
    )
    rig.commit({}, remove=("deploy/x.yaml",))
    report = rig.sync()
    assert _actions(report)[f"ConfigMap/{rig.namespace}/adopted"] == "skipped"
    assert rig.get("configmap", "adopted") is not None


def test_a_hand_edit_is_found_by_diff_and_corrected_by_the_next_sync(rig: Rig) -> None:
    rig.commit({"deploy/app.yaml": _deployment("web", replicas=2)})
    assert rig.sync().ok
    rig.cluster.kubectl("scale", "deployment", "web", "-n", rig.namespace, "--replicas=5")

    diff = rig.cli("diff")
    assert diff.returncode == 3, diff.stderr
    assert f"Deployment.apps/{rig.namespace}/web" in diff.stdout
    assert "spec.replicas" in diff.stdout
    as_json = rig.cli("diff", "--output", "json")
    assert as_json.returncode == 3
    doc = json.loads(as_json.stdout)
    (entry,) = doc["drift"]
    assert any(d["path"] == "spec.replicas" for d in entry["differences"])

    report = rig.sync()
    assert report.ok, report.message
    assert _actions(report)[f"Deployment.apps/{rig.namespace}/web"] == "configured"
    assert [d.id for d in report.drift] == [f"Deployment.apps/{rig.namespace}/web"]
    live = rig.get("deployment", "web")
    assert live is not None
    assert live["spec"]["replicas"] == 2
    clean = rig.cli("diff")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "no drift" in clean.stdout


def test_report_mode_reports_drift_and_leaves_it(rig: Rig) -> None:
    rig.commit({"deploy/c.yaml": _configmap("c", "git")})
    assert rig.sync().ok
    rig.patch("configmap", "c", {"data": {"value": "hand"}})
    report = rig.sync(mode="report")
    assert _actions(report)[f"ConfigMap/{rig.namespace}/c"] == "skipped"
    assert [d.id for d in report.drift] == [f"ConfigMap/{rig.namespace}/c"]
    live = rig.get("configmap", "c")
    assert live is not None
    assert live["data"]["value"] == "hand"


def test_reconcile_disabled_on_the_live_object_leaves_it_alone(rig: Rig) -> None:
    rig.commit({"deploy/c.yaml": _configmap("c", "git")})
    assert rig.sync().ok
    rig.cluster.kubectl(
        "annotate", "configmap", "c", "-n", rig.namespace, "automator.gitops.io/reconcile=disabled"
    )
    rig.commit({"deploy/c.yaml": _configmap("c", "newer")})
    report = rig.sync()
    assert _actions(report)[f"ConfigMap/{rig.namespace}/c"] == "skipped"
    live = rig.get("configmap", "c")
    assert live is not None
    assert live["data"]["value"] == "git"


def test_an_unsigned_commit_is_refused_and_the_cluster_stays_as_it_was(
    rig: Rig, tmp_path: Path
) -> None:
    key = tmp_path / "signer"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ops", "-f", str(key)], check=True
    )
    signers = tmp_path / "allowed_signers"
    signers.write_text(f"ops@example.com {key.with_suffix('.pub').read_text().strip()}\n")
    rig.extra = {"verify": {"allowed_signers_file": str(signers)}}

    rig.commit({"deploy/a.yaml": _configmap("signed", "1")}, sign_with=key)
    good = rig.sync()
    assert good.ok, good.message
    assert rig.get("configmap", "signed") is not None

    unsigned = rig.commit({"deploy/b.yaml": _configmap("unsigned", "1")})
    refused = rig.sync()
    assert refused.result == "refused"
    assert unsigned[:7] in refused.message
    assert refused.changes == []
    assert rig.get("configmap", "unsigned") is None

    status = rig.cli("sync", "--status", "--output", "json")
    assert status.returncode == 0, status.stderr
    state = json.loads(status.stdout)
    assert state["result"] == "refused"
    assert state["revision"] == unsigned
    assert state["applied_revision"] != unsigned


def test_a_rollout_that_becomes_healthy_is_reported_healthy(rig: Rig) -> None:
    rig.commit({"deploy/app.yaml": _deployment("ok", replicas=2)})
    report = rig.sync()
    assert report.ok, report.message
    assert report.health == "healthy"
    live = rig.get("deployment", "ok")
    assert live is not None
    assert live["status"].get("availableReplicas") == 2


def test_a_rollout_that_misses_its_deadline_fails_the_sync(rig: Rig) -> None:
    # No node matches the selector, so the pods stay Pending and the Deployment
    # controller marks the rollout ProgressDeadlineExceeded after 2 seconds.
    pin = '      nodeSelector: {no-such-node: "true"}\n'
    rig.commit({"deploy/app.yaml": _deployment("stuck", replicas=1, extra=pin, deadline=2)})
    report = rig.sync()
    assert report.result == "failed"
    assert report.health == "failed"
    assert "stuck" in report.health_message
    once = rig.cli("sync", "--once")
    assert once.returncode == 1
    assert "health failed" in once.stdout


def test_an_immutable_change_is_reported_and_forced_recreation_fixes_it(rig: Rig) -> None:
    rig.commit({"deploy/app.yaml": _deployment("sel", replicas=1)})
    assert rig.sync().ok
    changed = _deployment("sel", replicas=1).replace("{app: sel}", "{app: sel2}")
    rig.commit({"deploy/app.yaml": changed})
    refused = rig.sync()
    assert refused.result == "failed"
    change = next(c for c in refused.changes if c.id.endswith("/sel"))
    assert change.action == "failed"
    assert "automator.gitops.io/force" in change.message

    forced = changed.replace(
        "metadata:\n  name: sel\n",
        'metadata:\n  name: sel\n  annotations:\n    automator.gitops.io/force: "true"\n',
        1,
    )
    rig.commit({"deploy/app.yaml": forced})
    report = rig.sync()
    assert report.ok, report.message
    assert _actions(report)[f"Deployment.apps/{rig.namespace}/sel"] == "configured"
    live = rig.get("deployment", "sel")
    assert live is not None
    assert live["spec"]["selector"]["matchLabels"] == {"app": "sel2"}


def test_a_kustomize_overlay_is_rendered_and_applied(rig: Rig) -> None:
    rig.commit(
        {
            "deploy/base/kustomization.yaml": "resources: [cm.yaml]\n",
            "deploy/base/cm.yaml": _configmap("base", "1"),
            "deploy/kustomization.yaml": (
                "resources: [base]\nnamePrefix: prod-\ncommonLabels: {tier: web}\n"
            ),
        }
    )
    report = rig.sync()
    assert report.ok, report.message
    live = rig.get("configmap", "prod-base")
    assert live is not None
    assert live["metadata"]["labels"]["tier"] == "web"


def test_a_broken_file_is_reported_the_others_still_sync_and_nothing_is_pruned(rig: Rig) -> None:
    rig.commit({"deploy/a.yaml": _configmap("a", "1"), "deploy/b.yaml": _configmap("b", "1")})
    assert rig.sync().ok
    rig.commit(
        {
            "deploy/a.yaml": _configmap("a", "2"),
            "deploy/b.yaml": "kind: ConfigMap\nmetadata: [not, a, mapping\n",
        }
    )
    report = rig.sync()
    assert report.result == "failed"
    assert "deploy/b.yaml" in report.message
    assert _actions(report) == {f"ConfigMap/{rig.namespace}/a": "configured"}
    a = rig.get("configmap", "a")
    assert a is not None
    assert a["data"] == {"value": "2"}
    # b vanished from the desired set only because its file broke: it must not be pruned
    assert rig.get("configmap", "b") is not None


def test_report_mode_keeps_reporting_drift_on_later_syncs_and_never_recreates(rig: Rig) -> None:
    rig.commit({"deploy/c.yaml": _configmap("c", "git"), "deploy/d.yaml": _configmap("d", "git")})
    assert rig.sync().ok
    rig.patch("configmap", "c", {"data": {"value": "x"}})
    rig.cluster.kubectl("delete", "configmap", "d", "-n", rig.namespace)
    for _ in range(2):
        report = rig.sync(mode="report")
        assert _actions(report)[f"ConfigMap/{rig.namespace}/c"] == "skipped"
        assert _actions(report)[f"ConfigMap/{rig.namespace}/d"] == "skipped"
        assert sorted(d.id for d in report.drift) == [
            f"ConfigMap/{rig.namespace}/c",
            f"ConfigMap/{rig.namespace}/d",
        ]
    live = rig.get("configmap", "c")
    assert live is not None
    assert live["data"]["value"] == "x"
    assert rig.get("configmap", "d") is None
    # back in correct mode, both are put back
    corrected = rig.sync()
    assert _actions(corrected)[f"ConfigMap/{rig.namespace}/c"] == "configured"
    assert _actions(corrected)[f"ConfigMap/{rig.namespace}/d"] == "created"
    assert rig.get("configmap", "d") is not None


def test_a_hand_removal_of_a_false_git_sets_is_found_and_corrected(rig: Rig) -> None:
    # the server keeps false in pointer fields and drops it from others; the comparison
    # alone cannot tell, the dry-run does
    no_token = "      automountServiceAccountToken: false\n"
    rig.commit({"deploy/app.yaml": _deployment("tok", replicas=1, extra=no_token)})
    assert rig.sync().ok
    patch = {"spec": {"template": {"spec": {"automountServiceAccountToken": None}}}}
    rig.patch("deployment", "tok", patch)
    diff = rig.cli("diff")
    assert diff.returncode == 3, diff.stdout + diff.stderr
    assert "automountServiceAccountToken" in diff.stdout
    report = rig.sync()
    assert _actions(report)[f"Deployment.apps/{rig.namespace}/tok"] == "configured"
    live = rig.get("deployment", "tok")
    assert live is not None
    assert live["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    assert rig.cli("diff").returncode == 0


def test_a_namespace_removed_from_git_is_not_pruned_while_it_holds_what_is_not_ours(
    rig: Rig,
) -> None:
    ns = f"{rig.namespace}-extra"
    namespace = f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n"
    kept = _configmap("kept", "1").replace("metadata:\n", f"metadata:\n  namespace: {ns}\n", 1)
    rig.extra = {"paths": [{"path": "deploy"}]}
    rig.commit({"deploy/ns.yaml": namespace, "deploy/kept.yaml": kept})
    assert rig.sync().ok
    rig.cluster.kubectl("create", "configmap", "by-hand", "-n", ns)

    rig.commit({}, remove=("deploy/ns.yaml",))
    still_in_git = rig.sync()
    assert _actions(still_in_git)[f"Namespace/{ns}"] == "skipped"
    assert rig.get("namespace", ns, namespace="") is not None

    rig.commit({}, remove=("deploy/kept.yaml",), keep_tree=True)
    report = rig.sync()
    actions = _actions(report)
    assert actions[f"ConfigMap/{ns}/kept"] == "deleted"
    assert actions[f"Namespace/{ns}"] == "skipped"
    assert "ConfigMap/by-hand" in next(
        c.message for c in report.changes if c.id == f"Namespace/{ns}"
    )
    assert rig.get("configmap", "by-hand", namespace=ns) is not None

    rig.cluster.kubectl("delete", "configmap", "by-hand", "-n", ns)
    emptied = rig.sync()
    assert _actions(emptied)[f"Namespace/{ns}"] == "deleted"


def test_a_lost_state_record_is_rebuilt_from_labels_so_removed_objects_are_still_pruned(
    rig: Rig,
) -> None:
    rig.commit({"deploy/a.yaml": _configmap("a", "1"), "deploy/b.yaml": _configmap("b", "1")})
    assert rig.sync().ok
    rig.cluster.kubectl(
        "patch",
        "configmap",
        f"automator-sync-{rig.name}",
        "-n",
        "automator-system",
        "--type=merge",
        "-p",
        '{"binaryData":{"inventory.json.gz":"bm90IGd6aXA="}}',  # "not gzip"
    )
    rig.commit({}, remove=("deploy/b.yaml",))
    report = rig.sync()
    assert report.ok, report.message
    assert _actions(report)[f"ConfigMap/{rig.namespace}/b"] == "deleted"
    assert rig.get("configmap", "b") is None
    assert rig.get("configmap", "a") is not None


def test_one_kind_at_two_versions_in_git_is_compared_at_each_objects_own_version(rig: Rig) -> None:
    def hpa(name: str, api_version: str, spec: str) -> str:
        return (
            f"apiVersion: {api_version}\nkind: HorizontalPodAutoscaler\nmetadata:\n"
            f"  name: {name}\nspec:\n  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment,"
            f" name: web}}\n  minReplicas: 1\n  maxReplicas: 3\n{spec}"
        )

    rig.commit(
        {
            "deploy/v1.yaml": hpa("h1", "autoscaling/v1", "  targetCPUUtilizationPercentage: 70\n"),
            "deploy/v2.yaml": hpa(
                "h2",
                "autoscaling/v2",
                "  metrics:\n    - type: Resource\n      resource:\n        name: cpu\n"
                "        target: {type: Utilization, averageUtilization: 70}\n",
            ),
        }
    )
    assert rig.sync().ok
    again = rig.sync()
    assert set(_actions(again).values()) == {"unchanged"}
    assert again.drift == []
    assert rig.cli("diff").returncode == 0


def test_a_deleted_state_namespace_is_recreated_by_a_long_running_synchronizer(
    rig: Rig,
) -> None:
    rig.extra = {"namespace": f"st-{rig.name}"}
    rig.commit({"deploy/a.yaml": _configmap("a", "1")})
    synchronizer = Synchronizer.from_settings(rig.settings())
    try:
        assert synchronizer.run().ok
        rig.cluster.kubectl("delete", "namespace", f"st-{rig.name}", "--wait=true")
        rig.commit({"deploy/a.yaml": _configmap("a", "2")})
        report = synchronizer.run()
        assert report.ok, report.message
        assert synchronizer.status().result == "succeeded"
    finally:
        synchronizer.close()


def test_an_object_paused_with_reconcile_disabled_and_removed_from_git_is_pruned_once_resumed(
    rig: Rig,
) -> None:
    rig.commit({"deploy/a.yaml": _configmap("a", "1"), "deploy/b.yaml": _configmap("b", "1")})
    assert rig.sync().ok
    rig.cluster.kubectl(
        "annotate", "configmap", "b", "-n", rig.namespace, "automator.gitops.io/reconcile=disabled"
    )
    rig.commit({}, remove=("deploy/b.yaml",))
    paused = rig.sync()
    assert _actions(paused)[f"ConfigMap/{rig.namespace}/b"] == "skipped"
    assert rig.get("configmap", "b") is not None
    rig.cluster.kubectl(
        "annotate", "configmap", "b", "-n", rig.namespace, "automator.gitops.io/reconcile-"
    )
    resumed = rig.sync()
    assert _actions(resumed)[f"ConfigMap/{rig.namespace}/b"] == "deleted"
    assert rig.get("configmap", "b") is None


def test_a_dry_run_announces_objects_that_wait_for_a_new_crd_or_namespace(rig: Rig) -> None:
    ns = f"{rig.namespace}-dry"
    widget = _widget(rig.group, "w", 1).replace("metadata:\n", f"metadata:\n  namespace: {ns}\n", 1)
    rig.extra = {"paths": [{"path": "deploy"}]}
    rig.commit(
        {
            "deploy/crd.yaml": _crd(rig.group),
            "deploy/ns.yaml": f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n",
            "deploy/widget.yaml": widget,
        }
    )
    synchronizer = Synchronizer.from_settings(rig.settings())
    try:
        report = synchronizer.run(dry_run=True)
    finally:
        synchronizer.close()
    assert report.ok, report.message
    assert report.health == "unknown"
    assert set(_actions(report).values()) == {"created"}
    waiting = next(c for c in report.changes if c.id == f"Widget.{rig.group}/{ns}/w")
    assert "after its Namespace or CRD" in waiting.message
    assert rig.get("namespace", ns, namespace="") is None
    assert rig.get("customresourcedefinition", f"widgets.{rig.group}", namespace="") is None


def test_diff_lists_an_object_the_next_sync_would_prune(rig: Rig) -> None:
    rig.commit({"deploy/a.yaml": _configmap("a", "1"), "deploy/b.yaml": _configmap("b", "1")})
    assert rig.sync().ok
    rig.commit({}, remove=("deploy/b.yaml",))
    diff = rig.cli("diff")
    assert diff.returncode == 3, diff.stdout + diff.stderr
    assert (
        f"ConfigMap/{rig.namespace}/b: not in Git any more; the next sync prunes it" in diff.stdout
    )
    as_json = json.loads(rig.cli("diff", "--output", "json").stdout)
    assert [(d["object"], d["extra"]) for d in as_json["drift"]] == [
        (f"ConfigMap/{rig.namespace}/b", True)
    ]
    assert rig.sync().ok
    assert rig.cli("diff").returncode == 0
