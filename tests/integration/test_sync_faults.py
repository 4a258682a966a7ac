"""The synchronizer against faults a real apiserver does not produce on demand.

Everything runs against the real test control plane; an httpx transport wrapped around
the real one (TLS verified against the cluster's CA) forwards every request except the
chosen ones, which get a 500 or a 403 (shaped like the apiserver's own ``Status``) or a
connection error. The synchronizer is built from its parts, as ``from_settings`` does,
with that transport in its :class:`~automator.sync.kube.Kube`.
"""

from __future__ import annotations

import base64
import gzip
import json
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from automator.gitrepo import GitRepo
from automator.sync import Synchronizer, SyncReport
from automator.sync.kube import Kube
from automator.sync.order import ObjectId
from automator.sync.state import SyncState, state_name
from tests.support.kube import ControlPlane
from tests.support.sync import STATE_NAMESPACE as _STATE_NAMESPACE
from tests.support.sync import SyncRig
from tests.support.sync import actions as _actions
from tests.support.sync import configmap as _configmap
from tests.support.sync import secret as _secret

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class _Fault:
    method: str | None  # None: every method
    path: str  # a substring of the URL path
    status: int | None  # None: the connection fails


class FaultyTransport(httpx.BaseTransport):
    """Forwards to the real apiserver, except requests that match a fault; records all."""

    def __init__(self, cluster: ControlPlane) -> None:
        context = ssl.create_default_context(cafile=str(cluster.ca_file))
        self._inner = httpx.HTTPTransport(verify=context)
        self._faults: list[_Fault] = []
        self.seen: list[tuple[str, httpx.URL]] = []
        self.injected: list[tuple[str, str]] = []

    def fail(self, method: str | None, path: str, *, status: int | None = None) -> None:
        self._faults.append(_Fault(method, path, status))

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append((request.method, request.url))
        for fault in self._faults:
            if fault.method not in (None, request.method) or fault.path not in request.url.path:
                continue
            self.injected.append((request.method, request.url.path))
            if fault.status is None:
                raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
            return httpx.Response(fault.status, json=_status(fault.status, request))
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()

    def __deepcopy__(self, memo: dict[int, object]) -> FaultyTransport:
        # lightkube deep-copies the transport it is given (ConnectionParams goes through
        # dataclasses.asdict); an SSLContext cannot be copied, and a copy would not share
        # the faults or the record. test_kube_sends_its_requests_through_the_very_transport_
        # it_was_given shows that Kube should not need this.
        return self

    def writes(self) -> list[tuple[str, httpx.URL]]:
        return [(method, url) for method, url in self.seen if method in _WRITES]


def _status(code: int, request: httpx.Request) -> dict[str, Any]:
    """The body the apiserver sends with an error (a ``Status``)."""
    *_, resource, name = request.url.path.split("/")
    if code == 403:
        message = (
            f'{resource} "{name}" is forbidden: User "system:serviceaccount:gitops:sync" '
            f'cannot {request.method.lower()} resource "{resource}" in API group ""'
        )
        reason = "Forbidden"
    else:
        message, reason = "etcdserver: request timed out", "InternalError"
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": {"name": name, "kind": resource},
        "code": code,
    }


class Rig(SyncRig):
    """One config repo, and synchronizers (faulty or not) pointed at the test cluster."""

    @contextmanager
    def synchronizer(self, transport: FaultyTransport | None = None) -> Iterator[Synchronizer]:
        settings = self.settings()
        kube = Kube(settings.sync.kubeconfig, transport=transport)
        synchronizer = Synchronizer(settings, kube, GitRepo(settings.git, settings.sync_clone_dir))
        try:
            yield synchronizer
        finally:
            synchronizer.close()

    def sync(self, transport: FaultyTransport | None = None) -> SyncReport:
        with self.synchronizer(transport) as synchronizer:
            return synchronizer.run()

    def status(self) -> SyncState:
        with self.synchronizer() as synchronizer:
            return synchronizer.status()

    def exists(self, resource: str, name: str) -> bool:
        return self.cluster.exists(f"/api/v1/namespaces/{self.namespace}/{resource}/{name}")

    def configmap_value(self, name: str) -> str:
        obj = self.cluster.get(f"/api/v1/namespaces/{self.namespace}/configmaps/{name}")
        value: str = obj["data"]["value"]
        return value

    def state_exists(self) -> bool:
        return self.cluster.exists(
            f"/api/v1/namespaces/{_STATE_NAMESPACE}/configmaps/{state_name(self.name)}"
        )

    def cm(self, name: str) -> str:
        return f"ConfigMap/{self.namespace}/{name}"

    def cm_id(self, name: str) -> ObjectId:
        return ObjectId("", "ConfigMap", self.namespace, name)


def _messages(report: SyncReport) -> dict[str, str]:
    return {c.id: c.message for c in report.changes}


class _Recording(httpx.HTTPTransport):
    """A plain transport that remembers the paths it carried (and nothing more)."""

    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__(verify=context)
        self.paths: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        return super().handle_request(request)


@pytest.fixture
def rig(tmp_path: Path, control_plane: ControlPlane, kube_namespace: str) -> Rig:
    return Rig(tmp_path, control_plane, kube_namespace)


@pytest.fixture
def faults(control_plane: ControlPlane) -> FaultyTransport:
    return FaultyTransport(control_plane)


def test_kube_sends_its_requests_through_the_very_transport_it_was_given(
    control_plane: ControlPlane,
) -> None:
    transport = _Recording(ssl.create_default_context(cafile=str(control_plane.ca_file)))
    with Kube(control_plane.kubeconfig, transport=transport) as kube:
        namespace = kube.get(kube.resource_type("v1", "Namespace"), "default")
    assert namespace is not None
    assert namespace["metadata"]["name"] == "default"
    assert transport.paths == ["/api/v1/namespaces/default"]


def test_a_delete_that_fails_during_prune_keeps_the_object_listed_until_a_later_sync_deletes_it(
    rig: Rig, faults: FaultyTransport
) -> None:
    rig.commit(
        {"deploy/keep.yaml": _configmap("keep", "1"), "deploy/gone.yaml": _configmap("gone", "1")}
    )
    assert rig.sync().ok
    rig.commit({}, remove=("deploy/gone.yaml",))

    faults.fail("DELETE", "/configmaps/gone", status=500)
    failed = rig.sync(faults)

    assert faults.injected == [("DELETE", f"/api/v1/namespaces/{rig.namespace}/configmaps/gone")]
    assert failed.result == "failed"
    assert _actions(failed) == {rig.cm("keep"): "unchanged", rig.cm("gone"): "failed"}
    assert "500" in _messages(failed)[rig.cm("gone")]
    assert rig.cm("gone") in failed.message
    assert rig.exists("configmaps", "gone")
    state = rig.status()
    assert state.result == "failed"
    assert {e.id for e in state.inventory} == {rig.cm_id("keep"), rig.cm_id("gone")}

    retried = rig.sync()
    assert retried.ok, retried.message
    assert _actions(retried) == {rig.cm("keep"): "unchanged", rig.cm("gone"): "deleted"}
    assert not rig.exists("configmaps", "gone")
    assert {e.id for e in rig.status().inventory} == {rig.cm_id("keep")}


def test_an_apiserver_unreachable_for_one_kind_fails_those_objects_and_applies_the_others(
    rig: Rig, faults: FaultyTransport
) -> None:
    rig.commit(
        {
            "deploy/a.yaml": _configmap("a", "1"),
            "deploy/b.yaml": _configmap("b", "1"),
            "deploy/creds.yaml": _secret("creds", "t0ken"),
        }
    )
    secret = f"Secret/{rig.namespace}/creds"

    faults.fail(None, "/secrets", status=None)
    report = rig.sync(faults)

    assert faults.injected, "the fault was never hit"
    assert report.result == "failed"
    assert _actions(report) == {rig.cm("a"): "created", rig.cm("b"): "created", secret: "failed"}
    assert "cannot reach the apiserver" in _messages(report)[secret]
    assert secret in report.message
    assert rig.exists("configmaps", "a")
    assert rig.exists("configmaps", "b")
    assert not rig.exists("secrets", "creds")

    healed = rig.sync()
    assert healed.ok, healed.message
    assert _actions(healed) == {
        rig.cm("a"): "unchanged",
        rig.cm("b"): "unchanged",
        secret: "created",
    }
    assert rig.exists("secrets", "creds")


def test_an_unreachable_apiserver_fails_the_sync_with_the_server_and_the_fix_and_changes_nothing(
    rig: Rig, faults: FaultyTransport
) -> None:
    first = rig.commit({"deploy/a.yaml": _configmap("a", "1")})
    assert rig.sync().ok
    before = rig.status()
    assert before.revision == first
    rig.commit({"deploy/a.yaml": _configmap("a", "2"), "deploy/new.yaml": _configmap("new", "1")})

    faults.fail(None, "/", status=None)
    report = rig.sync(faults)  # must return a report, never raise

    assert report.result == "failed"
    server = rig.cluster.server  # what sync.kubeconfig points at
    assert f"cannot reach the apiserver at {server}" in report.message
    assert "check sync.kubeconfig and the network" in report.message
    assert faults.writes() == []
    assert rig.status() == before
    assert rig.configmap_value("a") == "1"
    assert not rig.exists("configmaps", "new")


def test_a_forbidden_object_fails_with_a_message_to_grant_rbac_and_the_others_are_applied(
    rig: Rig, faults: FaultyTransport
) -> None:
    rig.commit(
        {
            "deploy/open.yaml": _configmap("open", "1"),
            "deploy/locked.yaml": _configmap("locked", "1"),
        }
    )

    faults.fail("PATCH", "/configmaps/locked", status=403)
    report = rig.sync(faults)

    assert faults.injected, "the fault was never hit"
    assert report.result == "failed"
    assert _actions(report) == {rig.cm("open"): "created", rig.cm("locked"): "failed"}
    message = _messages(report)[rig.cm("locked")]
    assert rig.cm("locked") in message
    assert "is forbidden" in message
    assert "grant the synchronizer's identity this verb with a Role/ClusterRole binding" in message
    assert rig.exists("configmaps", "open")
    assert not rig.exists("configmaps", "locked")


def test_a_dry_run_on_a_fresh_sync_reports_created_and_writes_nothing(
    rig: Rig, faults: FaultyTransport
) -> None:
    rig.commit({"deploy/a.yaml": _configmap("a", "1"), "deploy/b.yaml": _configmap("b", "1")})

    with rig.synchronizer(faults) as synchronizer:
        report = synchronizer.run(dry_run=True)

    assert report.ok, report.message
    assert report.dry_run
    assert _actions(report) == {rig.cm("a"): "created", rig.cm("b"): "created"}
    assert not rig.exists("configmaps", "a")
    assert not rig.exists("configmaps", "b")
    assert not rig.state_exists()
    writes = faults.writes()
    assert writes, "a dry run still asks the server what it would do"
    assert all(url.params.get("dryRun") == "All" for _, url in writes), writes


def test_a_dry_run_after_a_sync_reports_configured_and_deleted_and_writes_nothing(
    rig: Rig, faults: FaultyTransport
) -> None:
    first = rig.commit(
        {"deploy/a.yaml": _configmap("a", "1"), "deploy/b.yaml": _configmap("b", "1")}
    )
    assert rig.sync().ok
    before = rig.status()
    rig.commit({"deploy/a.yaml": _configmap("a", "2")}, remove=("deploy/b.yaml",))

    with rig.synchronizer(faults) as synchronizer:
        report = synchronizer.run(dry_run=True)

    assert report.ok, report.message
    assert _actions(report) == {rig.cm("a"): "configured", rig.cm("b"): "deleted"}
    assert rig.configmap_value("a") == "1"
    assert rig.exists("configmaps", "b")
    assert rig.status() == before
    assert before.revision == first
    writes = faults.writes()
    assert all(url.params.get("dryRun") == "All" for _, url in writes), writes
    assert not any(method == "DELETE" for method, _ in writes)


def test_an_unreadable_state_record_is_rebuilt_from_the_labels_instead_of_crashing_the_sync(
    rig: Rig,
) -> None:
    rig.commit({"deploy/a.yaml": _configmap("a", "1"), "deploy/b.yaml": _configmap("b", "1")})
    assert rig.sync().ok
    garbage = json.dumps([{"id": "garbage", "v": "v1", "h": ""}]).encode()
    packed = base64.b64encode(gzip.compress(garbage)).decode()
    patch = {"binaryData": {"inventory.json.gz": packed}}
    rig.cluster.kubectl(
        "patch",
        "configmap",
        state_name(rig.name),
        "-n",
        _STATE_NAMESPACE,
        "--type=merge",
        "-p",
        json.dumps(patch),
    )
    rig.commit({"deploy/a.yaml": _configmap("a", "2")}, remove=("deploy/b.yaml",))

    report = rig.sync()  # must return a report, never raise

    assert report.ok, report.message
    assert _actions(report) == {rig.cm("a"): "configured", rig.cm("b"): "deleted"}
    assert rig.configmap_value("a") == "2"
    # b carries this sync's labels, so the rebuilt inventory owns it: removed from Git,
    # it is pruned even though the record that listed it was unreadable.
    assert not rig.exists("configmaps", "b")
    assert {e.id for e in rig.status().inventory} == {rig.cm_id("a")}
