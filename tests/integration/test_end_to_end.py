"""The product as a user drives it: real registry, real git server, the `automator` CLI.

Each test seeds its own config repo (annotated manifests, one of them deliberately
broken) and its own image repositories, runs commands in a subprocess exactly as the
README says, and checks the pushed result byte for byte.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.git import GitDaemon, git, make_bare_repo
from tests.support.push import push_image
from tests.support.registry import RegistryServer

pytestmark = pytest.mark.integration

WEB = """\
# The storefront. Comments, quoting and layout must survive automation.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: prod
  annotations:
    automator.gitops.io/automated: "true"
    automator.gitops.io/policy.web: "semver:^1.0"   # stable 1.x only
    automator.gitops.io/policy.migrate: semver:~0.9
spec:
  replicas: 2
  template:
    spec:
      initContainers:
        - name: migrate
          image: {reg}/{ns}/worker:v0.9.0
      containers:
        - name: web
          image: "{reg}/{ns}/web:1.0.0"  # bumped by automator
          args: ["--port", "8080"]
        - name: sidecar            # no policy: never touched
          image: {reg}/{ns}/web:1.0.0
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
data:
  motd: |
    image: {reg}/{ns}/web:1.0.0 is not an image field
"""

NIGHTLY = """\
apiVersion: batch/v1
kind: CronJob
metadata:
  name: nightly
  annotations:
    automator.gitops.io/automated: "true"
    automator.gitops.io/policy: semver:>=0.9.0 <1
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          containers:
            - name: job
              image: '{reg}/{ns}/worker:v0.9.0'
          restartPolicy: Never
"""

LOCKED = """\
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
  annotations:
    automator.gitops.io/automated: "true"
    automator.gitops.io/locked: "true"
    automator.gitops.io/policy: semver:*
spec:
  template:
    spec:
      containers:
        - name: db
          image: {reg}/{ns}/web:1.0.0
"""

BROKEN = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: broken
  annotations: [
"""


def render(template: str, reg: str, ns: str) -> str:
    """Fill ``{reg}`` and ``{ns}`` (plain replace: manifests may hold other braces)."""
    return template.replace("{reg}", reg).replace("{ns}", ns)


@dataclass
class Env:
    """One test's world: config file, bare repo, and the image namespace it uses."""

    tmp: Path
    config: Path
    bare: Path
    ns: str
    reg: str

    def run(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "automator", "--config", str(self.config), *args],
            capture_output=True,
            text=True,
            env={**os.environ, **(env or {})},
            timeout=300,
            check=False,
        )

    def remote_file(self, path: str, rev: str = "main") -> str:
        return git("show", f"{rev}:{path}", cwd=self.bare)

    def remote_log(self) -> list[str]:
        return git("log", "--format=%H", "main", cwd=self.bare).split()

    def render(self, template: str) -> str:
        return render(template, self.reg, self.ns)


def seed(
    tmp_path: Path,
    registry: RegistryServer,
    git_url_for: str | None = None,
    *,
    extra_config: str = "",
    extra_registries: str = "",
    paths: str = "clusters",
    files: dict[str, str] | None = None,
) -> Env:
    ns = f"t{uuid.uuid4().hex[:8]}"
    env = Env(
        tmp_path, tmp_path / "automator.yaml", tmp_path / "srv" / "config.git", ns, registry.host
    )
    manifests = files or {
        "clusters/prod/web.yaml": WEB,
        "clusters/prod/nightly.yaml": NIGHTLY,
        "clusters/prod/db.yaml": LOCKED,
        "clusters/prod/broken.yaml": BROKEN,
        "README.md": "not a manifest\n",
    }
    make_bare_repo(
        tmp_path / "srv",
        "config.git",
        {path: env.render(text).encode() for path, text in manifests.items()},
    )
    url = git_url_for or env.bare.as_uri()
    env.config.write_text(
        f"""\
git:
  url: {url}
  branch: main
  paths: [{paths}]
  author: {{name: Image Bot, email: bot@example.com}}
registries:
  - host: {registry.host}
    url: {registry.url}
{extra_registries}workdir: {tmp_path / "work"}
interval: 1s
{extra_config}""",
        encoding="utf-8",
    )
    return env


def push_standard_tags(registry: RegistryServer, ns: str) -> None:
    push_image(
        registry.url,
        f"{ns}/web",
        ["1.0.0", "1.1.0", "1.2.0-rc.1", "2.0.0", "latest", "sha256-abc.sig"],
    )
    push_image(registry.url, f"{ns}/worker", ["v0.9.0", "v0.9.1", "v1.0.0"])


def test_once_pushes_one_commit_that_changes_only_image_values(
    tmp_path: Path, registry: RegistryServer
) -> None:
    env = seed(tmp_path, registry)
    push_standard_tags(registry, env.ns)
    before = env.remote_log()

    result = env.run("once")

    assert result.returncode == 1, result.stderr  # broken.yaml is reported: exit 1
    assert "clusters/prod/broken.yaml" in result.stdout + result.stderr
    after = env.remote_log()
    assert len(after) == len(before) + 1
    web = env.render(WEB)
    expected_web = web.replace(
        f'"{env.reg}/{env.ns}/web:1.0.0"', f'"{env.reg}/{env.ns}/web:1.1.0"'
    ).replace(
        f"image: {env.reg}/{env.ns}/worker:v0.9.0", f"image: {env.reg}/{env.ns}/worker:v0.9.1"
    )
    assert env.remote_file("clusters/prod/web.yaml") == expected_web
    assert env.remote_file("clusters/prod/nightly.yaml") == env.render(NIGHTLY).replace(
        "worker:v0.9.0", "worker:v0.9.1"
    )
    assert env.remote_file("clusters/prod/db.yaml") == env.render(LOCKED)
    assert env.remote_file("clusters/prod/broken.yaml") == BROKEN
    changed = git("diff", "--name-only", before[0], after[0], cwd=env.bare).split()
    assert changed == ["clusters/prod/nightly.yaml", "clusters/prod/web.yaml"]

    author = git("log", "-1", "--format=%an <%ae>|%cn <%ce>", "main", cwd=env.bare).strip()
    assert author == "Image Bot <bot@example.com>|Image Bot <bot@example.com>"
    trailers = git(
        "log", "-1", "--format=%(trailers:key=Automator-Update,valueonly)", "main", cwd=env.bare
    ).split("\n")
    reg, ns = env.reg, env.ns
    assert sorted(t for t in trailers if t) == sorted(
        [
            f"clusters/prod/nightly.yaml CronJob/-/nightly job {reg}/{ns}/worker:v0.9.0 -> "
            f"{reg}/{ns}/worker:v0.9.1",
            f"clusters/prod/web.yaml Deployment/prod/web migrate {reg}/{ns}/worker:v0.9.0 -> "
            f"{reg}/{ns}/worker:v0.9.1",
            f"clusters/prod/web.yaml Deployment/prod/web web {reg}/{ns}/web:1.0.0 -> "
            f"{reg}/{ns}/web:1.1.0",
        ]
    )

    again = env.run("once")
    assert env.remote_log() == after, again.stdout + again.stderr
    assert "0 updated" in again.stdout


def test_plan_json_matches_what_once_then_does(tmp_path: Path, registry: RegistryServer) -> None:
    env = seed(tmp_path, registry)
    push_standard_tags(registry, env.ns)

    plan = env.run("plan", "--output", "json")
    assert plan.returncode == 1, plan.stderr  # the broken file counts as a failure
    planned = json.loads(plan.stdout)
    keys = {"file", "kind", "namespace", "name", "container", "current", "new", "policy"}
    assert all(keys <= set(item) for item in planned)
    assert {(p["file"], p["kind"], p["namespace"], p["name"], p["container"]) for p in planned} == {
        ("clusters/prod/web.yaml", "Deployment", "prod", "web", "web"),
        ("clusters/prod/web.yaml", "Deployment", "prod", "web", "migrate"),
        ("clusters/prod/nightly.yaml", "CronJob", None, "nightly", "job"),
    }
    before = env.remote_log()
    assert len(before) == 1, "plan must not push"

    env.run("once")
    for item in planned:
        text = env.remote_file(item["file"])
        assert item["new"] in text
        assert item["current"] not in text.split("data:")[0] or item["container"] == "sidecar"


def test_dry_run_reports_changes_and_pushes_nothing(
    tmp_path: Path, registry: RegistryServer
) -> None:
    env = seed(tmp_path, registry)
    push_standard_tags(registry, env.ns)
    result = env.run("once", "--dry-run")
    assert "would update" in result.stdout
    assert "web:1.1.0" in result.stdout
    assert len(env.remote_log()) == 1


def test_an_unreachable_registry_fails_its_workloads_and_the_others_still_update(
    tmp_path: Path, registry: RegistryServer
) -> None:
    files = {
        "apps/web.yaml": WEB,
        "apps/ghost.yaml": NIGHTLY.replace("{reg}/{ns}/worker", "127.0.0.1:9/{ns}/ghost"),
    }
    dead = "  - host: 127.0.0.1:9\n    url: http://127.0.0.1:9\n"  # port 9: nothing listens
    env = seed(tmp_path, registry, files=files, paths="apps", extra_registries=dead)
    push_standard_tags(registry, env.ns)

    result = env.run("once", "--log-format", "json")

    assert result.returncode == 1
    assert "apps/ghost.yaml" in result.stdout
    assert "CronJob/-/nightly" in result.stdout
    ghost = env.remote_file("apps/ghost.yaml")
    assert "ghost:v0.9.0" in ghost  # unchanged, never emptied or rolled back
    assert f"{env.ns}/web:1.1.0" in env.remote_file("apps/web.yaml")
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert any(e["event"] == "registry_scan_failed" for e in events)
    summary = [e for e in events if e["event"] == "cycle_finished"]
    assert summary
    assert summary[-1]["updated"] == 2
    assert summary[-1]["failed"] == 1


def test_history_reads_the_audit_trail_back_from_git(
    tmp_path: Path, registry: RegistryServer
) -> None:
    env = seed(tmp_path, registry)
    push_standard_tags(registry, env.ns)
    env.run("once")
    push_image(registry.url, f"{env.ns}/web", ["1.3.0"])
    env.run("once")

    result = env.run("history", "--output", "json")

    assert result.returncode == 0, result.stderr
    entries = json.loads(result.stdout)
    webs = [(e["old"], e["new"]) for e in entries if e["container"] == "web"]
    assert webs == [
        (f"{env.reg}/{env.ns}/web:1.1.0", f"{env.reg}/{env.ns}/web:1.3.0"),
        (f"{env.reg}/{env.ns}/web:1.0.0", f"{env.reg}/{env.ns}/web:1.1.0"),
    ]
    assert all(e["workload"] for e in entries)


def test_a_bad_config_key_is_exit_2_naming_the_key(
    tmp_path: Path, registry: RegistryServer
) -> None:
    env = seed(tmp_path, registry)
    env.config.write_text(env.config.read_text() + "intervall: 5m\n")
    result = env.run("once")
    assert result.returncode == 2
    assert "unknown key intervall" in result.stderr


def test_works_over_git_daemon_with_credentials_for_the_registry(
    tmp_path: Path, auth_registry: RegistryServer, git_daemon: GitDaemon, git_root: Path
) -> None:
    ns = f"t{uuid.uuid4().hex[:8]}"
    name = f"{ns}.git"
    make_bare_repo(
        git_root,
        name,
        {
            "web.yaml": render(WEB, auth_registry.host, ns).encode(),
        },
    )
    push_image(auth_registry.url, f"{ns}/web", ["1.0.0", "1.4.2"], auth=("alice", "reg-s3cret-pw"))
    push_image(auth_registry.url, f"{ns}/worker", ["v0.9.0"], auth=("alice", "reg-s3cret-pw"))
    config = tmp_path / "automator.yaml"
    config.write_text(f"""\
git:
  url: {git_daemon.url(name)}
registries:
  - host: {auth_registry.host}
    url: {auth_registry.url}
    username: alice
    password_env: REG_PASSWORD
workdir: {tmp_path / "work"}
""")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "automator",
            "--config",
            str(config),
            "--log-level",
            "debug",
            "once",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "REG_PASSWORD": "reg-s3cret-pw"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{ns}/web:1.4.2" in git("show", "main:web.yaml", cwd=git_root / name)
    assert "reg-s3cret-pw" not in result.stdout + result.stderr

    wrong = subprocess.run(
        [sys.executable, "-m", "automator", "--config", str(config), "plan"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "REG_PASSWORD": "wrong-pw-123"},
    )
    assert wrong.returncode == 1
    assert "wrong-pw-123" not in wrong.stdout + wrong.stderr
    assert "registries" in wrong.stdout  # the fix names the config key
