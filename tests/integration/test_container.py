"""The repo's Dockerfile builds, and its image runs the daemon as configured (user, tini, CMD).

No image can be pulled on the test machines, so the build's ``BASE`` is a local Debian
bookworm image (debootstrap, cached; see hack/container-base.sh and
tests/support/container.py). The container shares the host's network, so it reaches the
session's registry and git daemon on loopback exactly as the daemon tests do.

Needs root, dockerd and debootstrap (hack/setup.sh installs them). Without them the test is
skipped loudly, and fails when CI is set: the container must be tested in CI.
"""

from __future__ import annotations

import json
import os
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.container import ContainerToolsMissing, Dockerd
from tests.support.git import GitDaemon, git, make_bare_repo
from tests.support.process import free_port, http_get, wait_until
from tests.support.push import push_image
from tests.support.registry import RegistryServer

pytestmark = [pytest.mark.integration, pytest.mark.container]

IMAGE = "automator:container-test"

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


@pytest.fixture(scope="module")
def docker() -> Iterator[Dockerd]:
    """A private dockerd with the image built from the repo's Dockerfile as ``IMAGE``."""
    daemon = Dockerd()
    try:
        daemon.start()
        base = daemon.base_image()
    except ContainerToolsMissing as exc:
        daemon.stop()
        if os.environ.get("CI"):
            pytest.fail(
                f"the container test must run in CI, but: {exc}; run bash hack/setup.sh as root",
                pytrace=False,
            )
        pytest.skip(f"!!! container test SKIPPED: {exc}; run bash hack/setup.sh as root !!!")
    try:
        daemon.build(IMAGE, base)
        yield daemon
    finally:
        daemon.stop()


def _inspect(docker: Dockerd, ref: str, template: str) -> str:
    return docker.docker("inspect", "--format", template, ref).stdout.strip()


@pytest.mark.timeout(2400)  # a cold machine debootstraps and builds first (~4 minutes here)
def test_the_image_runs_the_daemon_as_uid_10001_under_tini_and_commits_a_real_cycle(
    docker: Dockerd,
    tmp_path: Path,
    registry: RegistryServer,
    git_daemon: GitDaemon,
    git_root: Path,
) -> None:
    assert _inspect(docker, IMAGE, "{{.Config.User}}") == "10001"
    assert json.loads(_inspect(docker, IMAGE, "{{json .Config.Entrypoint}}"))[0] == "tini"

    ns = f"t{uuid.uuid4().hex[:8]}"
    repo = f"{ns}/api"
    push_image(registry.url, repo, ["1.0.0", "1.1.0"])
    make_bare_repo(
        git_root,
        f"{ns}.git",
        {"api.yaml": MANIFEST.format(image=f"{registry.host}/{repo}").encode()},
    )
    port = free_port()
    config = tmp_path / "automator.yaml"
    config.write_text(
        f"git: {{url: '{git_daemon.url(f'{ns}.git')}'}}\n"
        f"registries: [{{host: '{registry.host}', url: '{registry.url}'}}]\n"
        "interval: 2s\n"
        f"http: {{listen: '127.0.0.1:{port}'}}\n"
    )
    config.chmod(0o644)  # the container's user is not the file's owner
    name = f"automator-test-{secrets.token_hex(4)}"
    # The image's own ENTRYPOINT, USER and CMD (`run --log-format json`); only the
    # HEALTHCHECK is made quicker, to see it pass within the test.
    docker.docker(
        "run",
        "--detach",
        f"--name={name}",
        "--network=host",
        f"--env=AUTOMATOR_HEALTH_URL=http://127.0.0.1:{port}/healthz",
        "--health-interval=1s",
        "--health-start-period=60s",
        f"--volume={config}:/etc/automator/automator.yaml:ro",
        IMAGE,
    )
    try:

        def logs() -> str:
            result = docker.docker("logs", name, check=False)
            return result.stdout + result.stderr

        def up() -> bool:
            if _inspect(docker, name, "{{.State.Status}}") != "running":
                raise AssertionError(f"the container stopped:\n{logs()[-4000:]}")
            return http_get(f"http://127.0.0.1:{port}/healthz")[0] == 200

        wait_until(up, timeout=120, what="the container's /healthz")
        assert docker.docker("exec", name, "id", "-u").stdout.strip() == "10001"
        assert docker.docker("exec", name, "cat", "/proc/1/comm").stdout.strip() == "tini"
        # tini's one child is the daemon itself, so SIGTERM (to PID 1) reaches it.
        children = docker.docker(
            "exec", name, "sh", "-c", "cat /proc/1/task/1/children"
        ).stdout.split()
        assert len(children) == 1
        cmdline = docker.docker("exec", name, "cat", f"/proc/{children[0]}/cmdline").stdout
        assert cmdline.split("\0")[1:4] == ["/opt/automator/bin/automator", "run", "--log-format"]

        bare = git_root / f"{ns}.git"
        wait_until(
            lambda: ":1.1.0" in git("show", "main:api.yaml", cwd=bare),
            timeout=120,
            what="the container's first cycle to push its commit",
        )
        wait_until(
            lambda: _inspect(docker, name, "{{.State.Health.Status}}") == "healthy",
            timeout=120,
            what="docker's HEALTHCHECK to pass",
        )

        docker.docker("stop", "--time=60", name, timeout=120)
        assert _inspect(docker, name, "{{.State.ExitCode}}") == "0", logs()[-4000:]
        text = logs()
    finally:
        docker.docker("rm", "--force", name, check=False)
    events = [json.loads(line)["event"] for line in text.splitlines() if line.startswith("{")]
    assert "shutdown_requested" in events, text[-4000:]
    assert "daemon_stopped" in events, text[-4000:]
    subjects = git("log", "--format=%s", "main", cwd=bare).splitlines()
    assert subjects == ["Update api/api to 1.1.0", "Initial commit"]
