"""`automator run`: cycles on its interval, serves health endpoints, stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.support.git import git, make_bare_repo
from tests.support.process import free_port, http_get, wait_until
from tests.support.push import push_image
from tests.support.registry import RegistryServer

pytestmark = pytest.mark.integration

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


def test_the_daemon_updates_on_its_interval_reports_health_and_exits_on_sigterm(
    tmp_path: Path, registry: RegistryServer
) -> None:
    repo = f"t{uuid.uuid4().hex[:8]}/api"
    image = f"{registry.host}/{repo}"
    push_image(registry.url, repo, ["1.0.0", "1.1.0"])
    bare = make_bare_repo(
        tmp_path, "config.git", {"api.yaml": MANIFEST.format(image=image).encode()}
    )
    port = free_port()
    config = tmp_path / "automator.yaml"
    config.write_text(
        f"git: {{url: '{bare.as_uri()}'}}\n"
        f"registries: [{{host: '{registry.host}', url: '{registry.url}'}}]\n"
        f"workdir: {tmp_path / 'work'}\n"
        "interval: 1s\n"
        f"http: {{listen: '127.0.0.1:{port}'}}\n"
    )
    log = (tmp_path / "daemon.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "automator", "--config", str(config), "--log-format", "json", "run"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=dict(os.environ),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_get(f"{base}/healthz")[0] == 200, timeout=60, what="/healthz")

        def shows(tag: str) -> bool:
            return f":{tag}" in git("show", "main:api.yaml", cwd=bare)

        wait_until(lambda: shows("1.1.0"), timeout=60, what="the first automated commit")
        # Ready once the cycle that pushed has also finished its bookkeeping.
        wait_until(lambda: http_get(f"{base}/readyz")[0] == 200, timeout=60, what="/readyz")

        push_image(registry.url, repo, ["1.2.0"])
        wait_until(lambda: shows("1.2.0"), timeout=60, what="a later cycle to pick up 1.2.0")

        def metric_values() -> dict[str, float]:
            status, text = http_get(f"{base}/metrics")
            assert status == 200
            return {
                line.split()[0]: float(line.split()[1])
                for line in text.splitlines()
                if line and not line.startswith("#")
            }

        # The push lands a moment before the cycle records it: wait for the bookkeeping.
        wait_until(
            lambda: metric_values().get("automator_image_updates_total") == 2,
            timeout=60,
            what="the second update to be counted",
        )
        values = metric_values()
        assert values["automator_image_updates_total"] == 2
        assert values["automator_cycles_total"] >= 2
        assert values["automator_failed_workloads"] == 0
        listed = [
            v
            for k, v in values.items()
            if k.startswith("automator_registry_requests_total{") and 'status="200"' in k
        ]
        assert sum(listed) >= 2  # at least one tags/list per cycle, counted by the client
        assert http_get(f"{base}/nope")[0] == 404

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    text = (tmp_path / "daemon.log").read_text()
    assert '"event": "shutdown_requested"' in text
    assert '"event": "daemon_stopped"' in text
    subjects = git("log", "--format=%s", "main", cwd=bare).splitlines()
    assert subjects == ["Update api/api to 1.2.0", "Update api/api to 1.1.0", "Initial commit"]
