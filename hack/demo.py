"""The README's demo: run the main job end to end on throwaway local servers.

Starts Debian's docker-registry and a git daemon on free loopback ports, pushes a few
tags, seeds a config repo (two automated workloads, a locked one, and a file that does
not parse), then runs the real CLI: ``plan``, ``once``, ``once`` again, ``history``,
showing the pushed diff in between. Everything lives in a temporary directory that is
removed at the end (``--keep`` keeps it for poking around).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.git import GitDaemon, git, make_bare_repo  # noqa: E402
from tests.support.push import push_image  # noqa: E402
from tests.support.registry import RegistryServer  # noqa: E402

WEB = """\
# Storefront: automated, stable 1.x only. Comments and quotes survive the update.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  annotations:
    automator.gitops.io/automated: "true"
    automator.gitops.io/policy.web: semver:^1.0      # no 2.x, no release candidates
    automator.gitops.io/policy.migrate: semver:~0.9  # patch releases only
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      initContainers:
        - name: migrate
          image: {reg}/shop/migrate:v0.9.0
      containers:
        - name: web
          image: "{reg}/shop/web:1.0.0"   # <- only this value changes
          ports: [{containerPort: 8080}]
"""

DB = """\
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
  namespace: shop
  annotations:
    automator.gitops.io/automated: "true"
    automator.gitops.io/locked: "true"   # frozen during the migration: never changed
    automator.gitops.io/policy: semver:*
spec:
  template:
    spec:
      containers:
        - name: db
          image: {reg}/shop/web:1.0.0
"""

BROKEN = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: typo
  annotations: [
"""


def step(title: str) -> None:
    print(f"\n\033[1m== {title}\033[0m", flush=True)


def automator(config: Path, *args: str) -> int:
    cmd = [str(ROOT / ".venv" / "bin" / "automator"), "--config", str(config), *args]
    if not Path(cmd[0]).exists():
        cmd = [sys.executable, "-m", "automator", "--config", str(config), *args]
    print("$ automator " + " ".join(args), flush=True)
    return subprocess.run(cmd, check=False).returncode


def main() -> int:
    parser = argparse.ArgumentParser(description="Automator demo on throwaway local servers.")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="automator-demo-"))
    (tmp / "git").mkdir()
    try:
        with RegistryServer() as reg, GitDaemon(tmp / "git") as daemon:
            step(f"registry at {reg.url}: pushing tags")
            for repo, tags in {
                "shop/web": ["1.0.0", "1.1.0", "1.2.0-rc.1", "2.0.0", "latest"],
                "shop/migrate": ["v0.9.0", "v0.9.3", "v1.0.0"],
            }.items():
                push_image(reg.url, repo, tags)
                print(f"  {reg.host}/{repo}: {', '.join(tags)}")

            def fill(text: str) -> bytes:
                return text.replace("{reg}", reg.host).encode()

            bare = make_bare_repo(
                tmp / "git",
                "config.git",
                {
                    "clusters/shop/web.yaml": fill(WEB),
                    "clusters/shop/db.yaml": fill(DB),
                    "clusters/shop/typo.yaml": fill(BROKEN),
                },
            )
            config = tmp / "automator.yaml"
            config.write_text(
                f"git:\n  url: {daemon.url('config.git')}\n  paths: [clusters]\n"
                "  author: {name: Automator Demo, email: automator@example.com}\n"
                f"registries:\n  - host: {reg.host}\n    url: {reg.url}\n"
                f"workdir: {tmp / 'work'}\n"
            )
            step(f"config repo at {daemon.url('config.git')}; configuration:")
            print(config.read_text())

            step("plan: what would change (typo.yaml is reported, the rest still plans)")
            automator(config, "--log-level", "warning", "plan")

            step("once: update, commit, push")
            rc = automator(config, "--log-level", "warning", "once")
            print(f"(exit code {rc}: 1 because typo.yaml does not parse)")

            step("the pushed commit")
            print(git("show", "--stat", "--format=fuller", "main", cwd=bare))
            print(git("show", "--format=", "main", cwd=bare))

            step("once again: nothing new, so no commit")
            head = git("rev-parse", "main", cwd=bare).strip()
            automator(config, "--log-level", "warning", "once")
            same = git("rev-parse", "main", cwd=bare).strip() == head
            print(f"remote head unchanged: {same}")

            step("a new release appears: shop/web 1.3.0")
            push_image(reg.url, "shop/web", ["1.3.0"])
            automator(config, "--log-level", "warning", "once")

            step("history: the audit trail, read back from git")
            automator(config, "--log-level", "warning", "history")
            return 0 if same else 1
    finally:
        if args.keep:
            print(f"\nkept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
