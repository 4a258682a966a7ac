"""``automator sync`` and ``automator diff`` as a user drives them: a YAML config file, a
subprocess, its output and exit code, against the real test control plane."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.kube import ControlPlane
from tests.support.process import free_port, http_get, wait_until
from tests.support.sync import SyncRig
from tests.support.sync import configmap as _configmap
from tests.support.sync import secret as _secret

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

_TIMEOUT = 180


def _automator(config: Path) -> list[str]:
    return [sys.executable, "-m", "automator", "--config", str(config)]


def _run(config: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_automator(config), *args],
        capture_output=True,
        text=True,
        env=_env(cwd),
        cwd=cwd,
        check=False,
        timeout=_TIMEOUT,
    )


@contextmanager
def _sync_daemon(
    config: Path, log_path: Path, *, env: dict[str, str], cwd: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """`automator sync` as a daemon, logging JSON to ``log_path``; killed if still running."""
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [*_automator(config), "--log-format", "json", "sync"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBECONFIG", "AUTOMATOR_"))}
    return {**env, "XDG_CACHE_HOME": str(root / "cache")}


class Rig(SyncRig):
    """One config repo and one YAML config file for a synchronizer on the test cluster."""

    def config(self, **sync: str) -> Path:
        """Write the config file as a user would (YAML); ``sync`` adds keys to ``sync:``."""
        extra = "".join(f"  {key}: {json.dumps(value)}\n" for key, value in sync.items())
        path = self.root / "automator.yaml"
        path.write_text(
            f"git: {{url: {json.dumps(self.repo.url)}, branch: main}}\n"
            f"workdir: {json.dumps(str(self.root / 'clone'))}\n"
            "sync:\n"
            f"  name: {self.name}\n"
            "  namespace: automator-system\n"
            f"  kubeconfig: {json.dumps(str(self.cluster.kubeconfig))}\n"
            f"  paths: [{{path: deploy, namespace: {self.namespace}}}]\n"
            + ("" if "timeout" in sync else "  timeout: 60s\n")
            + extra
        )
        return path

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return _run(self.config(), *args, cwd=self.root)

    def path(self, resource: str, name: str) -> str:
        return f"/api/v1/namespaces/{self.namespace}/{resource}/{name}"

    def live(self, resource: str, name: str) -> dict[str, Any]:
        doc: dict[str, Any] = self.cluster.get(self.path(resource, name))
        return doc


@pytest.fixture
def rig(tmp_path: Path, control_plane: ControlPlane, kube_namespace: str) -> Rig:
    return Rig(tmp_path, control_plane, kube_namespace)


def _lines(text: str) -> list[str]:
    return [" ".join(line.split()) for line in text.splitlines()]


def test_sync_once_prints_one_line_per_object_and_a_summary(rig: Rig) -> None:
    revision = rig.commit(
        {"deploy/a.yaml": _configmap("a", "1"), "deploy/b.yaml": _configmap("b", "1")}
    )

    once = rig.cli("sync", "--once")

    assert once.returncode == 0, once.stdout + once.stderr
    lines = _lines(once.stdout)
    assert len(lines) == 3, once.stdout
    assert lines[0] == f"created ConfigMap/{rig.namespace}/a"
    assert lines[1] == f"created ConfigMap/{rig.namespace}/b"
    assert lines[2].startswith(f"succeeded at {revision[:12]}: 2 created;")
    assert rig.live("configmaps", "a")["data"] == {"value": "1"}


def test_sync_once_as_json_has_the_changes_the_counts_and_the_revision(rig: Rig) -> None:
    rig.commit({"deploy/a.yaml": _configmap("a", "1"), "deploy/b.yaml": _configmap("b", "1")})
    assert rig.cli("sync", "--once").returncode == 0
    revision = rig.commit(
        {"deploy/a.yaml": _configmap("a", "2"), "deploy/c.yaml": _configmap("c", "1")}
    )

    once = rig.cli("sync", "--once", "--output", "json")

    assert once.returncode == 0, once.stdout + once.stderr
    doc = json.loads(once.stdout)
    assert doc["revision"] == revision
    assert doc["result"] == "succeeded"
    assert doc["dry_run"] is False
    assert doc["counts"] == {"configured": 1, "unchanged": 1, "created": 1}
    ns = rig.namespace
    assert sorted((c["object"], c["action"]) for c in doc["changes"]) == [
        (f"ConfigMap/{ns}/a", "configured"),
        (f"ConfigMap/{ns}/b", "unchanged"),
        (f"ConfigMap/{ns}/c", "created"),
    ]
    assert rig.live("configmaps", "a")["data"] == {"value": "2"}


def test_sync_dry_run_reports_what_it_would_create_and_creates_nothing(rig: Rig) -> None:
    revision = rig.commit({"deploy/a.yaml": _configmap("a", "1")})

    dry = rig.cli("sync", "--dry-run")

    assert dry.returncode == 0, dry.stdout + dry.stderr
    lines = _lines(dry.stdout)
    assert len(lines) == 2, dry.stdout
    assert lines[0] == f"created ConfigMap/{rig.namespace}/a"
    assert lines[1].startswith(f"dry run: succeeded at {revision[:12]}: 1 created;")
    assert not rig.cluster.exists(rig.path("configmaps", "a"))
    status = rig.cli("sync", "--status", "--output", "json")
    assert json.loads(status.stdout)["result"] == "never"


def test_sync_status_says_never_before_the_first_sync_and_succeeded_with_the_revision_after(
    rig: Rig,
) -> None:
    before = rig.cli("sync", "--status")
    assert before.returncode == 0, before.stderr
    assert "result: never" in _lines(before.stdout)
    assert "revision: -" in _lines(before.stdout)

    revision = rig.commit({"deploy/a.yaml": _configmap("a", "1")})
    assert rig.cli("sync", "--once").returncode == 0

    after = rig.cli("sync", "--status")
    assert after.returncode == 0, after.stderr
    assert "result: succeeded" in _lines(after.stdout)
    assert f"revision: {revision}" in _lines(after.stdout)
    assert "objects: 1" in _lines(after.stdout)
    as_json = json.loads(rig.cli("sync", "--status", "--output", "json").stdout)
    assert as_json["result"] == "succeeded"
    assert as_json["revision"] == as_json["applied_revision"] == revision
    assert as_json["health"] == "healthy"
    assert as_json["counts"] == {"created": 1}


def test_diff_of_a_drifted_secret_names_the_key_but_never_shows_a_value(rig: Rig) -> None:
    git_value = f"git-pw-{uuid.uuid4().hex}"
    live_value = f"live-pw-{uuid.uuid4().hex}"
    rig.commit({"deploy/creds.yaml": _secret("creds", git_value, key="password")})
    assert rig.cli("sync", "--once").returncode == 0
    encoded = base64.b64encode(live_value.encode()).decode()
    rig.cluster.kubectl(
        "patch",
        "secret",
        "creds",
        "-n",
        rig.namespace,
        "--type=merge",
        "-p",
        json.dumps({"data": {"password": encoded}}),
    )
    secrets = (
        git_value,
        live_value,
        encoded,
        base64.b64encode(git_value.encode()).decode(),
    )

    text = rig.cli("--log-level", "debug", "diff")
    as_json = rig.cli("--log-level", "debug", "--log-format", "json", "diff", "--output", "json")

    assert text.returncode == 3, text.stdout + text.stderr
    assert f"Secret/{rig.namespace}/creds" in text.stdout
    assert "stringData.password" in text.stdout
    assert as_json.returncode == 3, as_json.stderr
    (entry,) = json.loads(as_json.stdout)["drift"]
    assert entry["object"] == f"Secret/{rig.namespace}/creds"
    assert [d["path"] for d in entry["differences"]] == ["stringData.password"]
    assert [(d["desired"], d["live"]) for d in entry["differences"]] == [("***", "***")]
    for proc in (text, as_json):
        for value in secrets:
            assert value not in proc.stdout
            assert value not in proc.stderr

    # The sync that corrects the drift does not show the values either.
    fixed = rig.cli("--log-level", "debug", "sync", "--once")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert _lines(fixed.stdout)[0].startswith(f"configured Secret/{rig.namespace}/creds")
    for value in secrets:
        assert value not in fixed.stdout + fixed.stderr
    live = base64.b64decode(rig.live("secrets", "creds")["data"]["password"]).decode()
    assert live == git_value


def _metrics(base: str) -> dict[str, float]:
    status, text = http_get(f"{base}/metrics")
    assert status == 200
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


_ACTIONS = ("created", "configured", "unchanged", "deleted", "skipped", "failed")


def test_the_sync_daemon_serves_health_and_metrics_follows_git_and_stops_on_sigterm(
    rig: Rig,
) -> None:
    rig.commit({"deploy/a.yaml": _configmap("a", "1"), "deploy/b.yaml": _configmap("b", "1")})
    port = free_port()
    config = rig.config(interval="1s", listen=f"127.0.0.1:{port}")
    log_path = rig.root / "sync.log"
    base = f"http://127.0.0.1:{port}"
    with _sync_daemon(config, log_path, env=_env(rig.root), cwd=rig.root) as proc:
        wait_until(lambda: http_get(f"{base}/healthz")[0] == 200, timeout=60, what="/healthz")
        wait_until(lambda: http_get(f"{base}/readyz")[0] == 200, timeout=60, what="/readyz")
        first = _metrics(base)
        for action in _ACTIONS:
            assert f'automator_sync_objects{{action="{action}"}}' in first
        # Whatever sync the gauges describe, they account for both objects.
        assert sum(first[f'automator_sync_objects{{action="{a}"}}'] for a in _ACTIONS) == 2
        assert first['automator_sync_objects{action="failed"}'] == 0
        assert first['automator_syncs_total{result="succeeded"}'] >= 1
        assert first["automator_sync_api_requests_total"] > 0
        assert rig.live("configmaps", "a")["data"] == {"value": "1"}

        def steady() -> bool:
            return _metrics(base).get('automator_sync_objects{action="unchanged"}') == 2

        wait_until(steady, timeout=60, what="a resync that finds nothing to change")
        assert _metrics(base)["automator_sync_healthy"] == 1

        rig.commit({"deploy/a.yaml": _configmap("a", "2")})
        wait_until(
            lambda: rig.live("configmaps", "a")["data"] == {"value": "2"},
            timeout=60,
            what="the daemon to apply the new commit",
        )

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    events = [json.loads(line).get("event") for line in log_path.read_text().splitlines()]
    assert "sync_daemon_started" in events
    assert "shutdown_requested" in events
    assert events[-1] == "sync_daemon_stopped"


_BROKEN_GIT = 'git: {url: "file:///nonexistent/config.git"}\n'


@pytest.mark.parametrize(
    ("sync", "key"),
    [
        pytest.param("  mode: fix\n", "sync.mode", id="mode"),
        pytest.param("  paths: []\n", "sync.paths", id="no-paths"),
        pytest.param("  paths: [{path: /etc}]\n", "sync.paths[0].path", id="absolute-path"),
        pytest.param("  interval: soon\n", "sync.interval", id="interval"),
        pytest.param("  prune_all: true\n", "sync.prune_all", id="unknown-key"),
    ],
)
def test_a_bad_sync_key_is_exit_2_with_its_path(tmp_path: Path, sync: str, key: str) -> None:
    config = tmp_path / "automator.yaml"
    config.write_text(_BROKEN_GIT + "sync:\n" + sync)

    proc = _run(config, "sync", "--once", cwd=tmp_path)

    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "configuration error" in proc.stderr
    assert key in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("content", "command"),
    [
        pytest.param(None, ("sync", "--once"), id="missing-sync"),
        pytest.param(None, ("diff",), id="missing-diff"),
        pytest.param("clusters: [unclosed\n", ("sync", "--once"), id="not-yaml"),
        pytest.param("", ("sync", "--status"), id="empty"),
    ],
)
def test_an_unreadable_kubeconfig_is_exit_2_naming_sync_kubeconfig(
    tmp_path: Path, content: str | None, command: tuple[str, ...]
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    if content is not None:
        kubeconfig.write_text(content)
    config = tmp_path / "automator.yaml"
    config.write_text(_BROKEN_GIT + f"sync:\n  kubeconfig: {json.dumps(str(kubeconfig))}\n")

    proc = _run(config, *command, cwd=tmp_path)

    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "sync.kubeconfig" in proc.stderr
    assert str(kubeconfig) in proc.stderr
    assert "Traceback" not in proc.stderr


_STUCK = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: stuck
spec:
  replicas: 1
  selector: {matchLabels: {app: stuck}}
  template:
    metadata: {labels: {app: stuck}}
    spec:
      nodeSelector: {no-such-node: "true"}
      containers: [{name: app, image: "registry.example/stuck:1.0.0"}]
"""


def test_sigterm_during_a_rollout_wait_stops_the_daemon_and_records_why(rig: Rig) -> None:
    # sync.timeout is an hour and the pod can never be scheduled: only the interrupt can
    # end this wait, and the state it records says so
    rig.commit({"deploy/stuck.yaml": _STUCK})
    config = rig.config(interval="1m", timeout="1h")
    log_path = rig.root / "sync.log"
    with _sync_daemon(config, log_path, env=_env(rig.root), cwd=rig.root) as proc:
        wait_until(
            lambda: '"sync_change"' in log_path.read_text(),
            timeout=120,
            what="the daemon to apply the Deployment and start waiting for it",
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 0
    status = _run(config, "sync", "--status", "--output", "json", cwd=rig.root)
    state = json.loads(status.stdout)
    assert state["health"] == "progressing"
    assert "the synchronizer was stopping" in state["health_message"]
    assert state["counts"] == {"created": 1}


def test_a_signed_git_push_hook_syncs_now_and_other_branches_or_bad_signatures_do_not(
    rig: Rig,
) -> None:
    rig.commit({"deploy/a.yaml": _configmap("a", "1")})
    port = free_port()
    # an hour between scheduled syncs: only the hook can bring the change in
    config = rig.config(interval="1h", listen=f"127.0.0.1:{port}", webhook_secret_env="GIT_HOOK")
    base = f"http://127.0.0.1:{port}"
    secret = "hook-s3cret"

    def push(ref: str, *, key: str = secret) -> httpx.Response:
        body = json.dumps({"ref": ref}).encode()
        sig = "sha256=" + hmac.new(key.encode(), body, hashlib.sha256).hexdigest()
        headers = {"X-Hub-Signature-256": sig, "X-GitHub-Event": "push"}
        return httpx.post(f"{base}/hooks/git", content=body, headers=headers, timeout=10)

    log_path = rig.root / "sync.log"
    with _sync_daemon(
        config, log_path, env={**_env(rig.root), "GIT_HOOK": secret}, cwd=rig.root
    ) as proc:
        wait_until(lambda: http_get(f"{base}/readyz")[0] == 200, timeout=60, what="/readyz")
        rig.commit({"deploy/a.yaml": _configmap("a", "2")})

        assert push("refs/heads/main", key="wrong").status_code == 401
        other = push("refs/heads/feature")
        assert other.status_code == 202
        assert other.json() == {"sync": False, "branch": "feature"}
        assert rig.live("configmaps", "a")["data"] == {"value": "1"}

        main = push("refs/heads/main")
        assert main.status_code == 202
        assert main.json() == {"sync": True, "branch": "main"}
        wait_until(
            lambda: rig.live("configmaps", "a")["data"] == {"value": "2"},
            timeout=60,
            what="the hook's sync to apply the new commit",
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    assert secret not in log_path.read_text()


def test_an_empty_webhook_secret_is_refused_at_start_with_exit_2(rig: Rig) -> None:
    config = rig.config(listen=f"127.0.0.1:{free_port()}", webhook_secret_env="GIT_HOOK")
    done = subprocess.run(
        [*_automator(config), "sync"],
        capture_output=True,
        text=True,
        env={**_env(rig.root), "GIT_HOOK": ""},
        cwd=rig.root,
        check=False,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "sync.webhook_secret_env" in done.stderr
    assert "GIT_HOOK is empty" in done.stderr
