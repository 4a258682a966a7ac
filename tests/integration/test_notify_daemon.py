"""`automator run` posts its notifications: a signed update_committed carrying the pushed
commit, and a push_failed (plus the metric) when the push retry budget runs out."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from automator.config import settings_from_mapping
from automator.engine import Engine
from automator.notify import CycleEvents
from tests.support.git import GitDaemon, git, make_bare_repo
from tests.support.process import free_port, http_get, wait_until
from tests.support.push import push_image
from tests.support.registry import RegistryServer

pytestmark = pytest.mark.integration

SECRET = "notify-s3cret-4b1e"

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

# Another writer's commit lands while our push is being received: the ref moved under the
# push, which git reports as "failed to update ref", a race the automator retries.
RACING_HOOK = """\
#!/bin/sh
unset GIT_QUARANTINE_PATH GIT_OBJECT_DIRECTORY GIT_ALTERNATE_OBJECT_DIRECTORIES
cat >/dev/null
tip=$(git rev-parse refs/heads/main)
next=$(git -c user.name=Human -c user.email=h@example.com commit-tree "$tip^{tree}" -p "$tip" \
  -m "a human commit")
git update-ref refs/heads/main "$next" "$tip"
exit 0
"""


class Receiver:
    """A loopback webhook endpoint that records every POST."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/automator"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self, name: str) -> list[tuple[dict[str, str], bytes]]:
        return [(h, b) for h, b in self.received if h.get("x-automator-event") == name]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    try:
        yield r
    finally:
        r.server.shutdown()
        r.server.server_close()


def start_daemon(tmp_path: Path, config: str) -> tuple[subprocess.Popen[bytes], str, Path]:
    port = free_port()
    path = tmp_path / "automator.yaml"
    path.write_text(config + f"http: {{listen: '127.0.0.1:{port}'}}\n")
    log_path = tmp_path / "daemon.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "automator",
                "--config",
                str(path),
                "--log-format",
                "json",
                "run",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "NOTIFY_SECRET": SECRET},
        )
    return proc, f"http://127.0.0.1:{port}", log_path


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def world(
    tmp_path: Path, registry: RegistryServer, git_daemon: GitDaemon, receiver: Receiver
) -> tuple[Path, str]:
    repo = f"n{uuid.uuid4().hex[:8]}/api"
    push_image(registry.url, repo, ["1.0.0", "1.1.0"])
    name = f"notify-{uuid.uuid4().hex[:8]}.git"
    image = f"{registry.host}/{repo}"
    bare = make_bare_repo(
        git_daemon.root, name, {"api.yaml": MANIFEST.format(image=image).encode()}
    )
    config = (
        f"git: {{url: '{git_daemon.url(name)}'}}\n"
        f"registries: [{{host: '{registry.host}', url: '{registry.url}'}}]\n"
        f"workdir: {tmp_path / 'work'}\n"
        "interval: 1s\n"
        f"notifications: [{{kind: webhook, url: '{receiver.url}', secret_env: NOTIFY_SECRET}}]\n"
    )
    return bare, config


def test_a_signed_update_committed_carries_the_commit_that_is_on_the_remote(
    tmp_path: Path, registry: RegistryServer, git_daemon: GitDaemon, receiver: Receiver
) -> None:
    bare, config = world(tmp_path, registry, git_daemon, receiver)
    proc, _, log_path = start_daemon(tmp_path, config)
    try:
        wait_until(
            lambda: bool(receiver.events("update_committed")), timeout=90, what="update_committed"
        )
    finally:
        stop(proc)
    (headers, body), *_ = receiver.events("update_committed")
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["x-automator-signature"] == expected
    doc: dict[str, Any] = json.loads(body)
    assert doc["commit"] == git("rev-parse", "main", cwd=bare).strip()
    assert doc["branch"] == "main"
    (change,) = doc["changes"]
    assert change["new"].endswith(":1.1.0")
    assert change["old"].endswith(":1.0.0")
    assert change["workload"] == "Deployment/-/api"
    text = log_path.read_text()
    assert '"event": "notification_sent"' in text
    assert SECRET not in text


def test_a_push_retry_budget_that_runs_out_is_notified_and_counted(
    tmp_path: Path, registry: RegistryServer, git_daemon: GitDaemon, receiver: Receiver
) -> None:
    bare, config = world(tmp_path, registry, git_daemon, receiver)
    hook = bare / "hooks" / "pre-receive"
    hook.write_text(RACING_HOOK)
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    proc, base, _ = start_daemon(tmp_path, config + "push_retries: 0\n")
    try:
        wait_until(lambda: bool(receiver.events("push_failed")), timeout=90, what="push_failed")

        def metric(name: str) -> float:
            status, text = http_get(f"{base}/metrics")
            assert status == 200
            for line in text.splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[1])
            return 0.0

        wait_until(
            lambda: metric("automator_push_retries_exhausted_total") >= 1,
            timeout=30,
            what="the exhausted-budget metric",
        )
        wait_until(
            lambda: metric('automator_notifications_total{result="sent"}') >= 1,
            timeout=30,
            what="the sent notification to be counted",
        )
    finally:
        stop(proc)
    (headers, body), *_ = receiver.events("push_failed")
    doc = json.loads(body)
    assert doc["attempts"] == 1
    assert "rejected" in doc["error"]
    assert headers["x-automator-signature"].startswith("sha256=")
    assert not receiver.events("update_committed")
    # the other writer's commits are all there; none of ours got through
    authors = set(git("log", "--format=%an", "main", cwd=bare).split("\n")) - {""}
    assert "Automator" not in authors


def test_a_registry_that_cannot_be_reached_is_named_in_the_cycle_result(
    tmp_path: Path, registry: RegistryServer
) -> None:
    dead = f"127.0.0.1:{free_port()}"  # nothing listens there
    files = {
        "api.yaml": MANIFEST.format(image=f"{dead}/team/api").encode(),
        "web.yaml": MANIFEST.format(image=f"{registry.host}/team/web")
        .replace("api", "web")
        .encode(),
    }
    push_image(registry.url, "team/web", ["1.0.0"])
    bare = make_bare_repo(tmp_path, "config.git", files)
    settings = settings_from_mapping(
        {
            "git": {"url": bare.as_uri()},
            "registries": [
                {"host": dead, "url": f"http://{dead}", "timeout": "2s"},
                {"host": registry.host, "url": registry.url},
            ],
            "workdir": str(tmp_path / "work"),
        }
    )
    engine = Engine.from_settings(settings)
    try:
        result = engine.run_once()
    finally:
        engine.close()
    assert result.registries_failed == (dead,)
    assert any(f.transient for f in result.failures)
    events = CycleEvents(branch="main", threshold=1).cycle(result)
    assert events == [("registry_failing", {"host": dead, "cycles": 1})]
