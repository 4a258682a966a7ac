"""Two `automator run` replicas with `leader_election` on the real test control plane: one
Lease, exactly one writer, a takeover after SIGKILL and a hand-over on SIGTERM, and a Git
log without any update committed twice."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from automator.errors import ClusterError
from automator.kubelease import KubeLeaseStore
from automator.leader import Attempt, Elector
from automator.sync.render import render_path
from tests.support.git import GitDaemon, git, make_bare_repo
from tests.support.kube import ControlPlane
from tests.support.process import free_port, http_get, wait_until
from tests.support.push import push_image
from tests.support.registry import RegistryServer

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

_ROOT = Path(__file__).resolve().parents[2]
_TIMEOUT = 120  # generous: two cores shared by several test workers
_LEASE = "automator-config"

MANIFEST = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
  annotations:
    automator.gitops.io/automated: "true"
    automator.gitops.io/policy: semver:>=1.0.0
spec:
  template:
    spec:
      containers:
        - name: api
          image: {image}:1.0.0
"""


class Replica:
    """One `automator run` process: the shared config plus its own workdir and port."""

    def __init__(self, name: str, tmp: Path, shared: str) -> None:
        self.name = name
        self.port = free_port()
        self.log_path = tmp / f"{name}.log"
        self.config = tmp / f"{name}.yaml"
        self.config.write_text(
            shared + f"workdir: {tmp / name}-work\nhttp: {{listen: '127.0.0.1:{self.port}'}}\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Replica:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBECONFIG", "POD_"))}
        argv = [sys.executable, "-m", "automator", "--config", str(self.config)]
        with self.log_path.open("w") as log:
            self.proc = subprocess.Popen(
                [*argv, "--log-format", "json", "run"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        return self

    @property
    def identity(self) -> str:
        assert self.proc is not None
        return f"{socket.gethostname()}_{self.proc.pid}"  # the default identity

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def metric(self, name: str) -> float | None:
        status, text = http_get(f"{self.base}/metrics")
        assert status == 200
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    def hook_status(self, repository: str) -> int:
        body = json.dumps(
            {"events": [{"action": "push", "target": {"repository": repository, "tag": "x"}}]}
        ).encode()
        request = urllib.request.Request(
            f"{self.base}/hooks/distribution",
            data=body,
            headers={"Content-Type": "application/vnd.docker.distribution.events.v1+json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Rig:
    """Two replicas of one config, the config repo they write and the Lease they share."""

    def __init__(
        self, tmp: Path, registry: RegistryServer, git_daemon: GitDaemon, git_root: Path,
        control_plane: ControlPlane, namespace: str,
    ) -> None:  # fmt: skip
        self.repo = f"t{uuid.uuid4().hex[:8]}/api"
        self.registry_url = registry.url
        self._cluster, self._namespace = control_plane, namespace
        push_image(registry.url, self.repo, ["1.0.0"])
        name = f"config-{uuid.uuid4().hex[:8]}.git"
        manifest = MANIFEST.format(image=f"{registry.host}/{self.repo}")
        self.bare = make_bare_repo(git_root, name, {"api.yaml": manifest.encode()})
        shared = (
            f"git: {{url: '{git_daemon.url(name)}'}}\n"
            f"registries: [{{host: '{registry.host}', url: '{registry.url}'}}]\n"
            "interval: 1s\n"
            "batch_window: 0.2s\n"
            f"leader_election: {{lease: {_LEASE}, namespace: {namespace}, "
            f"kubeconfig: '{control_plane.kubeconfig}', "
            "lease_duration: 4s, renew_deadline: 3s, retry_period: 1s}\n"
        )
        self.replicas = [Replica("a", tmp, shared), Replica("b", tmp, shared)]

    def lease(self) -> dict[str, Any]:
        path = f"/apis/coordination.k8s.io/v1/namespaces/{self._namespace}/leases/{_LEASE}"
        if not self._cluster.exists(path):
            return {}
        spec: dict[str, Any] = self._cluster.get(path)["spec"]
        return spec

    def holder(self) -> str:
        return str(self.lease().get("holderIdentity") or "")

    def leader_and_follower(self) -> tuple[Replica, Replica]:
        by_identity = {r.identity: r for r in self.replicas}
        wait_until(lambda: self.holder() in by_identity, timeout=_TIMEOUT, what="a leader")
        leader = by_identity[self.holder()]
        (follower,) = [r for r in self.replicas if r is not leader]
        return leader, follower

    def shows(self, tag: str) -> bool:
        return f":{tag}" in git("show", "main:api.yaml", cwd=self.bare)

    def trailers(self) -> list[str]:
        out = git("log", "--format=%(trailers:key=Automator-Update)", "main", cwd=self.bare)
        return [line for line in out.splitlines() if line.strip()]

    def commits_for(self, tag: str) -> int:
        return sum(1 for line in self.trailers() if line.endswith(f":{tag}"))

    def assert_no_update_committed_twice(self) -> None:
        lines = self.trailers()
        assert lines
        assert [t for t, n in Counter(lines).items() if n > 1] == []


@pytest.fixture
def rig(
    tmp_path: Path,
    registry: RegistryServer,
    git_daemon: GitDaemon,
    git_root: Path,
    control_plane: ControlPlane,
    kube_namespace: str,
) -> Iterator[Rig]:
    rig = Rig(tmp_path, registry, git_daemon, git_root, control_plane, kube_namespace)
    yield rig
    for replica in rig.replicas:
        replica.stop()


def _publish_and_expect_one_commit(rig: Rig, tag: str) -> None:
    push_image(rig.registry_url, rig.repo, [tag])
    wait_until(lambda: rig.shows(tag), timeout=_TIMEOUT, what=f"the commit of {tag}")
    time.sleep(3)  # several more 1 s cycles on the leader: none may commit it again
    assert rig.commits_for(tag) == 1


def _wait_ready(replica: Replica) -> None:
    wait_until(
        lambda: http_get(f"{replica.base}/readyz")[0] == 200,
        timeout=_TIMEOUT,
        what=f"/readyz of replica {replica.name}",
    )


def _wait_metric(replica: Replica, value: float) -> None:
    wait_until(
        lambda: replica.metric("automator_leader") == value,
        timeout=_TIMEOUT,
        what=f"automator_leader {value:g} on replica {replica.name}",
    )


def _started_leading_at(events: list[dict[str, Any]]) -> int:
    return next(i for i, e in enumerate(events) if e.get("event") == "leader_elected")


def _follower_ran_no_cycle(follower: Replica) -> None:
    events = follower.events()
    elected = [i for i, e in enumerate(events) if e.get("event") == "leader_elected"]
    before = events[: elected[0]] if elected else events
    assert not [e for e in before if e.get("event") in ("cycle_started", "push_succeeded")]


def test_of_two_replicas_one_leads_and_the_other_takes_over_when_it_is_killed(rig: Rig) -> None:
    for replica in rig.replicas:
        replica.start()
    leader, follower = rig.leader_and_follower()
    for replica in rig.replicas:  # both ready: a follower must not stall a rollout
        _wait_ready(replica)
    _wait_metric(leader, 1)
    _wait_metric(follower, 0)
    assert follower.hook_status(rig.repo) == 503  # the registry retries, maybe on the leader
    assert leader.hook_status(rig.repo) == 202

    _publish_and_expect_one_commit(rig, "1.1.0")
    _follower_ran_no_cycle(follower)
    assert rig.holder() == leader.identity  # still the same leader
    transitions = rig.lease()["leaseTransitions"]

    assert leader.proc is not None
    killed = time.monotonic()
    leader.proc.send_signal(signal.SIGKILL)
    leader.proc.wait()
    wait_until(
        lambda: rig.holder() == follower.identity,
        timeout=_TIMEOUT,
        what="the follower to take the Lease over",
    )
    print(f"takeover after SIGKILL: {time.monotonic() - killed:.1f}s (lease_duration 4s)")
    assert rig.lease()["leaseTransitions"] == transitions + 1
    _wait_metric(follower, 1)

    _publish_and_expect_one_commit(rig, "1.2.0")
    rig.assert_no_update_committed_twice()
    subjects = git("log", "--format=%s", "main", cwd=rig.bare).splitlines()
    assert subjects == ["Update api/api to 1.2.0", "Update api/api to 1.1.0", "Initial commit"]


def test_a_leader_stopped_with_sigterm_hands_the_lease_over_at_once(rig: Rig) -> None:
    for replica in rig.replicas:
        replica.start()
    leader, follower = rig.leader_and_follower()
    _wait_metric(leader, 1)

    assert leader.proc is not None
    stopped = time.monotonic()
    leader.proc.send_signal(signal.SIGTERM)
    assert leader.proc.wait(timeout=_TIMEOUT) == 0
    released = rig.lease()
    # released, not left to expire: either still empty or already the follower's
    assert released.get("holderIdentity") in (None, "", follower.identity)
    wait_until(
        lambda: rig.holder() == follower.identity,
        timeout=_TIMEOUT,
        what="the follower to take the released Lease",
    )
    print(f"hand-over after SIGTERM: {time.monotonic() - stopped:.1f}s (lease_duration 4s)")
    events = [e.get("event") for e in leader.events()]
    assert "leader_released" in events
    assert events.index("leader_released") < events.index("daemon_stopped")
    _follower_ran_no_cycle(follower)
    assert _started_leading_at(follower.events()) >= 0

    _publish_and_expect_one_commit(rig, "1.1.0")
    rig.assert_no_update_committed_twice()


def _kubeconfig_for(control_plane: ControlPlane, token: str, path: Path) -> Path:
    cluster = {"server": control_plane.server, "certificate-authority": str(control_plane.ca_file)}
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": cluster}],
                "users": [{"name": "u", "user": {"token": token}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    return path


def test_the_deploy_role_lets_the_automator_hold_its_lease_and_nothing_else(
    tmp_path: Path, control_plane: ControlPlane, kube_namespace: str
) -> None:
    rbac = [
        r.obj
        for r in render_path(_ROOT, "deploy/automator.yaml")
        if r.obj["kind"] in ("ServiceAccount", "Role", "RoleBinding")
    ]
    for obj in rbac:  # the example's objects, in this test's own namespace
        obj["metadata"]["namespace"] = kube_namespace
        for subject in obj.get("subjects", []):
            subject["namespace"] = kube_namespace
    control_plane.kubectl(
        "apply", "--server-side", "--field-manager=test", "-f", "-", stdin=json.dumps(
            {"apiVersion": "v1", "kind": "List", "items": rbac}
        ),
    )  # fmt: skip
    token = control_plane.kubectl("create", "token", "automator", "-n", kube_namespace).stdout
    kubeconfig = _kubeconfig_for(control_plane, token.strip(), tmp_path / "sa.kubeconfig")

    store = KubeLeaseStore(_LEASE, kube_namespace, kubeconfig=kubeconfig)
    first = Elector(store, "a", lease_duration=15, renew_deadline=10, retry_period=2)
    second = Elector(store, "b", lease_duration=15, renew_deadline=10, retry_period=2)
    try:
        assert first.attempt() is Attempt.LEADING  # create
        assert first.attempt() is Attempt.LEADING  # get + update
        assert second.attempt() is Attempt.FOLLOWING
        seen = store.get()
        assert seen is not None
        assert seen.holder == "a"
        # compare-and-swap: a write carrying a stale resourceVersion loses with 409
        first.attempt()
        with pytest.raises(ClusterError) as conflict:
            store.update(replace(seen, holder="b"))
        assert conflict.value.status == 409
        assert first.release()
        released = store.get()
        assert released is not None
        assert released.holder == ""
        assert second.attempt() is Attempt.LEADING

        other = KubeLeaseStore("someone-elses-lease", kube_namespace, kubeconfig=kubeconfig)
        with pytest.raises(ClusterError, match=r"grant get, create and update on leases"):
            other.get()
        other.close()
    finally:
        store.close()
