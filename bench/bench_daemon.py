"""Benchmark: ``automator run`` fed by a real registry's notifications.

    .venv/bin/python bench/bench_daemon.py [--pushes 50] [--burst 25] [--soak-cycles 2000]
    .venv/bin/python bench/bench_daemon.py --quick      # 10 pushes, burst 10, 200 cycles

Sets up, on loopback only, a docker-registry whose ``notifications.endpoints`` POST to
the daemon's ``/hooks/distribution``, a git daemon whose bare repo has a post-receive hook
that writes the arrival time of every pushed commit, and the daemon itself (a real
``automator run`` subprocess). Then:

1. latency: single pushes, one at a time, each waiting for its commit; the time from the
   registry's answer to the manifest PUT to the post-receive hook's timestamp (median,
   p95; goal: p95 <= batch_window + 0.5 s);
2. burst: many tags pushed inside one batch window; the number of commits (goal: 1);
3. soak: a second daemon (``batch_window: 0``, ``interval: 1s``) driven by webhooks as fast
   as it completes cycles, with a new tag every few cycles; RSS and open file descriptors
   of the daemon process (``/proc/<pid>``) at the start, a few times in between and at the
   end. Cycles are counted from ``automator_cycles_total`` on ``/metrics``. Webhooks drive
   the cycles because the config's minimum ``interval`` is 1 s (2,000 interval cycles
   would take 33 minutes); every hook cycle runs the same engine code path (fetch, scan,
   list tags, commit, push) in the same long-lived process.

Prints figures and goals; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.git import GitDaemon, git, make_bare_repo
from tests.support.process import ServerProcess, free_port, http_get, wait_until
from tests.support.push import push_image
from tests.support.registry import RegistryServer

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

HOOK = """\
#!/bin/sh
while read old new ref; do
  echo "$(date +%s.%N) $new $ref" >> {log}
done
"""


def start_daemon(
    tmp: Path, name: str, git_url: str, reg: RegistryServer, port: int, extra: str
) -> ServerProcess:
    config = tmp / f"{name}.yaml"
    config.write_text(
        f"git: {{url: '{git_url}', author: {{name: Bench Bot, email: bot@example.com}}}}\n"
        f"registries: [{{host: '{reg.host}', url: '{reg.url}'}}]\n"
        f"workdir: {tmp / (name + '-work')}\n"
        f"http: {{listen: '127.0.0.1:{port}'}}\n{extra}",
        encoding="utf-8",
    )
    argv = [sys.executable, "-m", "automator", "--config", str(config), "--log-format", "json"]
    proc = ServerProcess([*argv, "run"], log=tmp / f"{name}.log").start()
    wait_until(
        lambda: http_get(f"http://127.0.0.1:{port}/readyz")[0] == 200,
        timeout=120,
        what=f"{name} to be ready",
    )
    return proc


def arrivals(log: Path) -> list[tuple[float, str]]:
    if not log.exists():
        return []
    rows = []
    for line in log.read_text().splitlines():
        ts, sha, _ref = line.split(" ")
        rows.append((float(ts), sha))
    return rows


def cycles(port: int) -> int:
    _, text = http_get(f"http://127.0.0.1:{port}/metrics")
    for line in text.splitlines():
        if line.startswith("automator_cycles_total "):
            return int(float(line.split()[1]))
    return 0


def proc_stats(pid: int) -> tuple[float, int]:
    """RSS in MiB and open file descriptors of ``pid``."""
    rss = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def hook(port: int, repo: str, tag: str) -> None:
    body = {"events": [{"action": "push", "target": {"repository": repo, "tag": tag}}]}
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/hooks/distribution",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/vnd.docker.distribution.events.v1+json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        resp.read()


def _above(count: Callable[[], int], floor: int) -> Callable[[], bool]:
    return lambda: count() > floor


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pushes", type=int, default=50)
    parser.add_argument("--burst", type=int, default=25)
    parser.add_argument("--soak-cycles", type=int, default=2000)
    parser.add_argument("--batch-window", type=float, default=1.0)
    parser.add_argument("--quick", action="store_true", help="10 pushes, burst 10, 200 cycles")
    args = parser.parse_args()
    if args.quick:
        args.pushes, args.burst, args.soak_cycles = 10, 10, 200
    window = args.batch_window

    with tempfile.TemporaryDirectory(prefix="bench-daemon-") as tmpdir:
        tmp = Path(tmpdir)
        (tmp / "git").mkdir()
        port = free_port()
        with (
            RegistryServer(
                notification_urls=[f"http://127.0.0.1:{port}/hooks/distribution"]
            ) as reg,
            GitDaemon(tmp / "git") as gitd,
        ):
            push_image(reg.url, "bench/app", ["1.0.0"])
            push_image(reg.url, "bench/soak", ["1.0.0"])
            files = {
                "apps/app.yaml": MANIFEST.format(name="app", image=f"{reg.host}/bench/app"),
                "apps/soak.yaml": MANIFEST.format(name="soak", image=f"{reg.host}/bench/soak"),
            }
            files.update(
                {
                    f"apps/other{i:02d}.yaml": MANIFEST.format(
                        name=f"other{i:02d}", image=f"{reg.host}/bench/soak"
                    )
                    for i in range(20)
                }
            )
            bare = make_bare_repo(
                gitd.root, "config.git", {k: v.encode() for k, v in files.items()}
            )
            pushed = tmp / "pushed.log"
            hook_path = bare / "hooks" / "post-receive"
            hook_path.write_text(HOOK.replace("{log}", str(pushed)))
            hook_path.chmod(0o755)

            daemon = start_daemon(
                tmp, "latency", gitd.url("config.git"), reg, port,
                f"interval: 1h\nbatch_window: {window}\n",
            )  # fmt: skip
            try:
                latencies: list[float] = []
                for n in range(args.pushes):
                    seen = len(arrivals(pushed))
                    push_image(reg.url, "bench/app", [f"1.{n + 1}.0"])
                    answered = time.time()  # the manifest PUT is push_image's last request
                    wait_until(
                        _above(lambda: len(arrivals(pushed)), seen),
                        timeout=60,
                        what=f"the commit for push {n + 1}",
                    )
                    latencies.append(arrivals(pushed)[seen][0] - answered)
                median, tail = statistics.median(latencies), p95(latencies)
                goal = window + 0.5
                print(
                    f"latency ({args.pushes} single pushes, batch_window {window:g}s): "
                    f"median {median:.3f}s, p95 {tail:.3f}s, max {max(latencies):.3f}s; "
                    f"goal p95 <= {goal:g}s -> {'MET' if tail <= goal else 'MISSED'}"
                )

                seen = len(arrivals(pushed))
                base = args.pushes + 1
                tags = [f"1.{base + k}.0" for k in range(args.burst)]
                t0 = time.monotonic()
                push_image(reg.url, "bench/app", tags)
                burst_s = time.monotonic() - t0
                final = f"{reg.host}/bench/app:{tags[-1]}"
                wait_until(
                    lambda: final in git("show", "main:apps/app.yaml", cwd=bare),
                    timeout=60,
                    what="the burst's commit",
                )
                time.sleep(window + 3)  # a second, late commit would show up by now
                commits = len(arrivals(pushed)) - seen
                print(
                    f"burst ({args.burst} pushes in {burst_s:.2f}s): {commits} commit(s); "
                    f"goal 1 -> {'MET' if commits == 1 else 'MISSED'}"
                )
            finally:
                daemon.stop()

            soak_port = free_port()
            soak = start_daemon(
                tmp, "soak", gitd.url("config.git"), reg, soak_port,
                "interval: 1s\nbatch_window: 0\n",
            )  # fmt: skip
            try:
                assert soak.proc is not None
                pid = soak.proc.pid
                start_cycles = cycles(soak_port)
                samples = [(start_cycles, *proc_stats(pid))]
                marks = {args.soak_cycles * k // 4 for k in (1, 2, 3)}
                tag = 1
                t0 = time.monotonic()
                done = 0
                while done < args.soak_cycles:
                    if done % 5 == 0:
                        tag += 1
                        push_image(reg.url, "bench/soak", [f"1.{tag}.0"])  # notifies too
                    else:
                        hook(soak_port, "bench/soak", f"1.{tag}.0")
                    before = done
                    wait_until(
                        _above(lambda: cycles(soak_port) - start_cycles, before),
                        timeout=60,
                        what="a soak cycle",
                    )
                    done = cycles(soak_port) - start_cycles
                    if any(before < m <= done for m in marks):
                        samples.append((done, *proc_stats(pid)))
                soak_s = time.monotonic() - t0
                samples.append((done, *proc_stats(pid)))
                commits = int(git("rev-list", "--count", "--author=Bench Bot", "main", cwd=bare))
                print(
                    f"soak: {done} cycles in {soak_s:.0f}s ({done / soak_s:.1f}/s), "
                    f"{tag - 1} tag changes, {commits} automator commits in the log"
                )
                print(f"{'cycles':>8}{'RSS MiB':>10}{'fds':>6}")
                for c, rss, fds in samples:
                    print(f"{c:>8}{rss:>10.1f}{fds:>6}")
                (_, rss0, fd0), (_, rss1, fd1) = samples[0], samples[-1]
                print(
                    f"growth: RSS {rss1 - rss0:+.1f} MiB ({(rss1 / rss0 - 1) * 100:+.0f}%), "
                    f"fds {fd1 - fd0:+d}; goal: flat"
                )
            finally:
                soak.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
