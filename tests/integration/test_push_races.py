"""Push races under stress: a human pushing every few hundred milliseconds, tags arriving.

A real git daemon, a real registry and the real daemon (`automator run` subprocess). A
second writer clones and pushes unrelated human commits (README lines, notes files) in a
loop while new tags keep arriving. No human commit may be lost, no update may be
committed twice, and the final tree must hold both sides' intent. With a retry budget of
zero against an aggressive writer, the lost race is reported: `once` exits 1.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from tests.support.git import GitDaemon, git, make_bare_repo
from tests.support.process import ServerProcess, free_port, http_get, wait_until
from tests.support.push import push_image, push_many
from tests.support.registry import RegistryServer

pytestmark = pytest.mark.integration

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

HUMAN = {"GIT_AUTHOR_NAME": "Human", "GIT_AUTHOR_EMAIL": "human@example.com"}


class Writer(threading.Thread):
    """Clones once, then commits a README line and a notes file and pushes, in a loop."""

    def __init__(self, url: str, work: Path, pause: float) -> None:
        super().__init__(daemon=True)
        self.url, self.work, self.pause = url, work, pause
        self.stop = threading.Event()
        self.pushed: list[str] = []
        self.rejected = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            git("clone", "-q", self.url, str(self.work))
            n = 0
            while not self.stop.is_set():
                git("fetch", "-q", "origin", "main", cwd=self.work)
                git("reset", "-q", "--hard", "origin/main", cwd=self.work)
                n += 1
                with (self.work / "README.md").open("a") as readme:
                    readme.write(f"human edit {n}\n")
                (self.work / "notes").mkdir(exist_ok=True)
                (self.work / "notes" / f"{n}.txt").write_text(f"note {n}\n")
                git("add", "-A", cwd=self.work)
                git("commit", "-q", "-m", f"human edit {n}", cwd=self.work, env=HUMAN)
                try:
                    git("push", "-q", "origin", "HEAD:main", cwd=self.work)
                except RuntimeError:
                    self.rejected += 1  # the automator pushed first: refetch, redo
                    n -= 1
                    continue
                self.pushed.append(git("rev-parse", "HEAD", cwd=self.work).strip())
                time.sleep(self.pause)
        except BaseException as exc:  # reported by the test
            self.error = exc


def _seed(
    tmp: Path, registry: RegistryServer, daemon: GitDaemon, workloads: int
) -> tuple[Path, str, list[str]]:
    ns = f"t{uuid.uuid4().hex[:8]}"
    repos = [f"{ns}/app{j}" for j in range(2)]
    push_many(registry.url, {r: ["1.0.0"] for r in repos})
    files = {
        f"apps/w{i:03d}.yaml": MANIFEST.format(
            name=f"w{i:03d}", image=f"{registry.host}/{repos[i % 2]}"
        ).encode()
        for i in range(workloads)
    }
    files["README.md"] = b"config repo\n"
    name = f"race-{ns}.git"
    bare = make_bare_repo(daemon.root, name, files)
    return bare, daemon.url(name), repos


def _config(tmp: Path, url: str, registry: RegistryServer, extra: str) -> Path:
    config = tmp / "automator.yaml"
    config.write_text(
        f"git: {{url: '{url}', paths: [apps], author: {{name: Image Bot, email: b@x.org}}}}\n"
        f"registries: [{{host: '{registry.host}', url: '{registry.url}'}}]\n"
        f"workdir: {tmp / 'work'}\n{extra}",
        encoding="utf-8",
    )
    return config


def _trailer_lines(bare: Path) -> list[str]:
    out = git("log", "--format=%(trailers:key=Automator-Update,valueonly,unfold)", "main", cwd=bare)
    return [line for line in out.splitlines() if line]


def test_a_human_pushing_every_few_hundred_ms_loses_nothing_and_no_update_lands_twice(
    tmp_path: Path, registry: RegistryServer, git_daemon: GitDaemon
) -> None:
    bare, url, repos = _seed(tmp_path, registry, git_daemon, workloads=6)
    port = free_port()
    config = _config(
        tmp_path,
        url,
        registry,
        f"interval: 1s\nbatch_window: 0.2\nhttp: {{listen: '127.0.0.1:{port}'}}\n",
    )
    daemon = ServerProcess(
        [sys.executable, "-m", "automator", "--config", str(config), "--log-format", "json", "run"],
        log=tmp_path / "daemon.log",
        env=dict(os.environ),
    ).start()
    writer = Writer(url, tmp_path / "human", pause=0.2)
    newest = "1.0.0"
    try:
        wait_until(
            lambda: http_get(f"http://127.0.0.1:{port}/readyz")[0] == 200,
            timeout=60,
            what="the daemon's first cycle",
        )
        writer.start()
        deadline = time.monotonic() + 40
        k = 0
        while time.monotonic() < deadline and writer.error is None:
            k += 1
            newest = f"1.{k}.0"
            push_image(registry.url, repos[k % 2], [newest])
            push_image(registry.url, repos[(k + 1) % 2], [newest])
            time.sleep(1.5)
        writer.stop.set()
        writer.join(timeout=60)
        assert writer.error is None, writer.error
        wait_until(
            lambda: all(
                f":{newest}\n" in git("show", f"main:apps/w{i:03d}.yaml", cwd=bare)
                for i in range(6)
            ),
            timeout=90,
            what=f"every workload at {newest}",
        )
    finally:
        daemon.stop()

    log = (tmp_path / "daemon.log").read_text()
    assert len(writer.pushed) >= 20, "the human writer hardly pushed"
    tip = git("rev-parse", "main", cwd=bare).strip()
    for sha in writer.pushed:  # no human commit lost
        git("merge-base", "--is-ancestor", sha, tip, cwd=bare)
    lines = _trailer_lines(bare)  # no update committed twice
    assert len(lines) == len(set(lines)), [x for x in lines if lines.count(x) > 1][:3]
    readme = git("show", "main:README.md", cwd=bare)  # both sides' intent in the tree
    assert readme.count("human edit") == len(writer.pushed)
    notes = git("ls-tree", "--name-only", "main", "notes/", cwd=bare).split()
    assert len(notes) == len(writer.pushed)
    rejections = log.count('"event": "push_rejected"')
    print(
        f"push races: {len(writer.pushed)} human pushes ({writer.rejected} lost to the "
        f"automator), {k} tag rounds, {rejections} automator rejections, "
        f"{len(lines)} trailer lines"
    )


def test_a_retry_budget_of_zero_against_an_aggressive_writer_fails_the_cycle_loudly(
    tmp_path: Path, registry: RegistryServer, git_daemon: GitDaemon
) -> None:
    bare, url, repos = _seed(tmp_path, registry, git_daemon, workloads=200)
    config = _config(tmp_path, url, registry, "push_retries: 0\n")
    push_many(registry.url, {r: ["1.1.0"] for r in repos})
    writer = Writer(url, tmp_path / "human", pause=0.0)
    writer.start()
    try:
        wait_until(lambda: len(writer.pushed) >= 3, timeout=60, what="the writer to push")
        result = subprocess.run(
            [sys.executable, "-m", "automator", "--config", str(config), "--log-format", "json",
             "once"],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )  # fmt: skip
    finally:
        writer.stop.set()
        writer.join(timeout=60)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert '"event": "push_rejected"' in out
    assert '"event": "cycle_finished"' in out
    assert "was rejected: branch main moved on the remote" in out
    assert _trailer_lines(bare) == [], "a rejected cycle must not land"
