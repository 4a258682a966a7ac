"""Benchmark: ``automator once`` on 1,000 workloads over 100 repositories x 100 tags.

    .venv/bin/python bench/bench_once.py [--workloads 1000] [--repos 100] [--tags 100]

Sets up a real docker-registry and a bare Git repo on this machine (nothing leaves
loopback), then runs, each in a fresh process, as a user would:

1. ``once``  cold: clone, scan, list tags, rewrite every workload, one commit, push
2. ``once``  warm: fetch, scan, list tags, nothing to change, no commit
3. ``plan --output json``  warm, read-only

and prints wall time and peak memory (the Python process; git's children separately)
for each. It also checks that run 1 made exactly one commit touching every file and
that run 2 made none, so the figures are of a correct run. No figure is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.git import git, make_bare_repo
from tests.support.push import push_many
from tests.support.registry import RegistryServer

MANIFEST = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: w{i:04d}
  namespace: bench
  annotations:
    automator.gitops.io/automated: "true"
    automator.gitops.io/policy.app: semver:^1.0  # any 1.x
spec:
  replicas: 1
  selector:
    matchLabels: {{app: w{i:04d}}}
  template:
    metadata:
      labels: {{app: w{i:04d}}}
    spec:
      containers:
        - name: app
          image: {image}:1.0.0
          ports: [{{containerPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata:
  name: w{i:04d}
  namespace: bench
spec:
  selector: {{app: w{i:04d}}}
  ports: [{{port: 80, targetPort: 8080}}]
"""


def run(tmp: Path, config: Path, *args: str) -> dict[str, object]:
    proc = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).with_name("_measure.py")),
            "--config",
            str(config),
            "--log-level",
            "warning",
            *args,
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "BENCH_OUTPUT": str(tmp / "out.txt")},
    )
    if proc.returncode != 0 or not proc.stdout.strip():
        raise SystemExit(f"benchmark run failed:\n{proc.stdout}\n{proc.stderr[-4000:]}")
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workloads", type=int, default=1000)
    parser.add_argument("--repos", type=int, default=100)
    parser.add_argument("--tags", type=int, default=100)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-once-") as tmpdir, RegistryServer() as reg:
        tmp = Path(tmpdir)
        tags = [f"1.{i}.0" for i in range(args.tags)]
        t0 = time.perf_counter()
        push_many(reg.url, {f"bench/r{j:03d}": tags for j in range(args.repos)})
        push_s = time.perf_counter() - t0
        files = {
            f"apps/w{i:04d}.yaml": MANIFEST.format(
                i=i, image=f"{reg.host}/bench/r{i % args.repos:03d}"
            ).encode()
            for i in range(args.workloads)
        }
        bare = make_bare_repo(tmp / "srv", "config.git", files)
        config = tmp / "automator.yaml"
        config.write_text(
            f"git:\n  url: {bare.as_uri()}\n  paths: [apps]\n"
            f"registries:\n  - host: {reg.host}\n    url: {reg.url}\n"
            f"workdir: {tmp / 'work'}\n"
        )
        print(
            f"setup: {args.repos} repositories x {args.tags} tags pushed in {push_s:.1f}s; "
            f"{args.workloads} workloads in {args.workloads} files"
        )

        before = git("rev-parse", "main", cwd=bare).strip()
        cold = run(tmp, config, "once")
        after = git("rev-parse", "main", cwd=bare).strip()
        changed = git("diff", "--name-only", before, after, cwd=bare).split()
        warm = run(tmp, config, "once")
        final = git("rev-parse", "main", cwd=bare).strip()
        plan = run(tmp, config, "plan", "--output", "json")

        commits = int(git("rev-list", "--count", f"{before}..{final}", cwd=bare))
        ok = commits == 1 and len(changed) == args.workloads and final == after
        print(f"{'run':<26}{'exit':>5}{'wall s':>9}{'peak MiB':>10}{'git MiB':>9}")
        for name, r in (
            ("once (cold, 1 commit)", cold),
            ("once (warm, no change)", warm),
            ("plan --output json", plan),
        ):
            print(
                f"{name:<26}{r['exit']:>5}{r['wall_s']:>9}{r['peak_rss_mib']:>10}"
                f"{r['children_peak_rss_mib']:>9}"
            )
        print(
            f"check: {commits} commit(s), {len(changed)} files changed, "
            f"second run committed nothing: {final == after} -> {'OK' if ok else 'WRONG'}"
        )
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
