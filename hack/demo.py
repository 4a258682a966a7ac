"""The README's demo: run the main job end to end on throwaway local servers.

Starts Debian's docker-registry and a git daemon on free loopback ports, pushes a few
tags, seeds a config repo (two automated workloads, a locked one, and a file that does
not parse), then runs the real CLI: ``plan``, ``once``, ``once`` again, ``history``,
showing the pushed diff in between. Everything lives in a temporary directory that is
removed at the end (``--keep`` keeps it for poking around).

When the test control plane's binaries are already built (``hack/control-plane.sh``
cache, or ``--sync`` to build them, ~9 minutes once), the demo goes on with the other
half: ``automator sync`` applies the same repo to a throwaway kube-apiserver with kwok
nodes, a hand edit shows up in ``automator diff``, and the next sync corrects it.
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
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
        - name: db
          image: {reg}/shop/web:1.0.0
"""

NAMESPACE = """\
apiVersion: v1
kind: Namespace
metadata:
  name: shop
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
    parser.add_argument(
        "--sync",
        action="store_true",
        help="build the test control plane if needed (~9 min once) to demo `automator sync`",
    )
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
                    "clusters/shop/namespace.yaml": fill(NAMESPACE),
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

            step("a person rolls 1.3.0 back (git revert); the automator holds their choice")
            person = tmp / "person"
            git("clone", "-q", daemon.url("config.git"), str(person))
            ann = {"GIT_AUTHOR_NAME": "Ann Operator", "GIT_AUTHOR_EMAIL": "ann@example.com"}
            git("revert", "--no-edit", "HEAD", cwd=person, env=ann)
            git("push", "-q", "origin", "HEAD:main", cwd=person)
            before = git("rev-parse", "main", cwd=bare).strip()
            automator(config, "--log-level", "warning", "plan")
            automator(config, "--log-level", "warning", "once")
            held = git("rev-parse", "main", cwd=bare).strip() == before
            print(f"rollback kept (no new commit): {held}")
            same = same and held

            step("history: the audit trail, read back from git")
            automator(config, "--log-level", "warning", "history")
            if same:
                _sync_demo(config, tmp, build=args.sync)
            return 0 if same else 1
    finally:
        if args.keep:
            print(f"\nkept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def _control_plane_bin(build: bool) -> Path | None:
    """The built binaries, or None when they are not there and building was not asked for."""
    script = ROOT / "hack" / "control-plane.sh"
    cache = Path(os.environ.get("AUTOMATOR_KUBE_CACHE", Path.home() / ".cache/automator/kube"))
    cached = any(cache.glob("v*/kwok")) or os.environ.get("AUTOMATOR_KUBE_BIN")
    if not (cached or build):
        return None
    done = subprocess.run(["bash", str(script), "all"], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(done.stderr[-2000:])
        return None
    return Path(done.stdout.strip().splitlines()[-1])


def _sync_demo(config: Path, tmp: Path, *, build: bool) -> None:
    from tests.support.kube import ControlPlane

    bin_dir = _control_plane_bin(build)
    if bin_dir is None:
        step("sync: skipped (no control-plane binaries; `bash hack/demo.sh --sync` builds them)")
        return
    step("sync: a throwaway kube-apiserver + kwok nodes; apply the repo with server-side apply")
    with ControlPlane(bin_dir, tmp / "cluster") as cluster:
        with config.open("a") as out:
            out.write(
                f"sync:\n  paths: [{{path: clusters}}]\n  kubeconfig: {cluster.kubeconfig}\n"
                "  timeout: 60s\n"
            )
        rc = automator(config, "--log-level", "warning", "sync", "--once")
        print(f"(exit code {rc}: 1 because typo.yaml does not parse; the rest is applied)")
        print(cluster.kubectl("get", "deploy,statefulset", "-n", "shop", "-o", "wide").stdout)

        step("someone scales web by hand; diff finds it (exit 3)")
        cluster.kubectl("scale", "deployment", "web", "-n", "shop", "--replicas=5")
        rc = automator(config, "--log-level", "warning", "diff")
        print(f"(exit code {rc})")

        step("the next sync puts Git's value back")
        automator(config, "--log-level", "warning", "sync", "--once")
        automator(config, "--log-level", "warning", "sync", "--status")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
