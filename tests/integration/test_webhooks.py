"""Registry webhooks trigger a scan: the real registry's notifications reach `automator run`."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.git import git, make_bare_repo
from tests.support.process import free_port, wait_until
from tests.support.push import push_image
from tests.support.registry import RegistryServer

pytestmark = pytest.mark.integration

SECRET = "hook-secret-value-1"

MANIFEST = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  annotations:
    automator.gitops.io/automated: "true"
    automator.gitops.io/policy: semver:^1
spec:
  template:
    spec:
      containers:
        - name: app
          image: {image}:1.0.0
"""


def post(url: str, body: object, headers: dict[str, str] | None = None) -> tuple[int, str]:
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


class Daemon:
    def __init__(self, tmp: Path, bare: Path, registry: RegistryServer, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.bare = bare
        config = tmp / "automator.yaml"
        config.write_text(
            f"git: {{url: '{bare.as_uri()}'}}\n"
            f"registries: [{{host: '{registry.host}', url: '{registry.url}'}}]\n"
            f"workdir: {tmp / 'work'}\n"
            "interval: 1h\n"  # only the first cycle and webhooks run during the test
            "batch_window: 3s\n"
            f"http: {{listen: '127.0.0.1:{port}', webhook_secret_env: HOOK_SECRET}}\n"
        )
        self.log_path = tmp / "daemon.log"
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "automator",
                "--config",
                str(config),
                "--log-format",
                "json",
                "run",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "HOOK_SECRET": SECRET},
        )

    def commits(self) -> list[str]:
        return git("log", "--format=%s", "main", cwd=self.bare).splitlines()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)
        self._log.close()


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Daemon, RegistryServer, str]]:
    port = free_port()
    hook = f"http://127.0.0.1:{port}/hooks/distribution"
    with RegistryServer(
        notification_urls=[hook], notification_headers={"Authorization": f"Bearer {SECRET}"}
    ) as registry:
        ns = f"t{uuid.uuid4().hex[:8]}"
        for app in ("a", "b"):
            push_image(registry.url, f"{ns}/{app}", ["1.0.0"])
        files = {
            f"{app}.yaml": MANIFEST.format(name=app, image=f"{registry.host}/{ns}/{app}").encode()
            for app in ("a", "b")
        }
        bare = make_bare_repo(tmp_path, "config.git", files)
        daemon = Daemon(tmp_path, bare, registry, port)
        try:
            wait_until(
                lambda: post(f"{daemon.base}/hooks/generic", {})[0] == 401,
                timeout=60,
                what="the daemon's webhook endpoint",
            )
            wait_until(
                lambda: '"event": "cycle_finished"' in daemon.log_path.read_text(),
                timeout=60,
                what="the first cycle",
            )
            yield daemon, registry, ns
        finally:
            daemon.stop()


def test_a_push_to_the_registry_notifies_the_daemon_which_commits_the_new_tag(
    setup: tuple[Daemon, RegistryServer, str],
) -> None:
    daemon, registry, ns = setup
    assert daemon.commits() == ["Initial commit"]

    push_image(registry.url, f"{ns}/a", ["1.1.0"])  # the registry itself sends the hook

    wait_until(lambda: len(daemon.commits()) == 2, timeout=60, what="the webhook's commit")
    assert daemon.commits()[0] == "Update a/app to 1.1.0"
    text = daemon.log_path.read_text()
    assert '"event": "webhook_received"' in text
    assert SECRET not in text


def test_pushes_within_the_batch_window_make_one_commit_and_bad_secrets_are_refused(
    setup: tuple[Daemon, RegistryServer, str],
) -> None:
    daemon, registry, ns = setup
    status, body = post(
        f"{daemon.base}/hooks/generic",
        {"image": f"{registry.host}/{ns}/a"},
        {"Authorization": "Bearer wrong"},
    )
    assert status == 401
    assert SECRET not in body

    push_image(registry.url, f"{ns}/b", ["1.2.0"])
    push_image(registry.url, f"{ns}/a", ["1.3.0"])

    wait_until(lambda: len(daemon.commits()) >= 2, timeout=60, what="the batched commit")
    assert daemon.commits() == ["Update 2 images", "Initial commit"]

    # A signed generic hook is accepted; with nothing new it makes no commit.
    body_doc = {"image": f"{registry.host}/{ns}/a"}
    raw = json.dumps(body_doc).encode()
    sig = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
    status, answer = post(f"{daemon.base}/hooks/generic", body_doc, {"X-Signature": sig})
    assert status == 202
    assert json.loads(answer) == {"repositories": [f"{registry.host}/{ns}/a"]}
    wait_until(
        lambda: daemon.log_path.read_text().count('"event": "webhook_cycle"') >= 2,
        timeout=60,
        what="the generic hook's cycle",
    )
    assert daemon.commits() == ["Update 2 images", "Initial commit"]


def test_malformed_hooks_are_refused_at_the_door_and_do_not_spoil_the_batch(
    setup: tuple[Daemon, RegistryServer, str],
) -> None:
    daemon, registry, ns = setup
    auth = {"Authorization": f"Bearer {SECRET}"}
    status, body = post(f"{daemon.base}/hooks/generic", {"image": "UPPER/case"}, auth)
    assert status == 400
    assert "not a valid image name" in body

    host, port = daemon.base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.putrequest("POST", "/hooks/generic")
    conn.putheader("Content-Length", "abc")
    conn.putheader("Authorization", f"Bearer {SECRET}")
    conn.endheaders()
    assert conn.getresponse().status == 400
    conn.close()

    push_image(registry.url, f"{ns}/a", ["1.5.0"])  # the registry's own hook still works
    wait_until(lambda: len(daemon.commits()) == 2, timeout=60, what="the webhook's commit")
    assert daemon.commits()[0] == "Update a/app to 1.5.0"
