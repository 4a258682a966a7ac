"""Crash safety: `kill -9` at any moment of a cycle, and clones left broken on disk.

Real `automator once` subprocesses run against the real registry and a real git daemon.
A killed run must leave the remote unchanged or holding exactly one complete commit, and
the next run must repair (or re-clone) whatever the killed one left in its working clone
and finish the update, with at most one automator commit per change.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from tests.support.git import GitDaemon, git, make_bare_repo
from tests.support.push import push_many
from tests.support.registry import RegistryServer

pytestmark = pytest.mark.integration

TRAILER = "Automator-Update"

MANIFEST = """\
# workload {i}: comments and layout must survive
apiVersion: apps/v1
kind: Deployment
metadata:
  name: w{i:04d}
  annotations:
    automator.gitops.io/automated: "true"
    automator.gitops.io/policy.app: semver:^1
spec:
  template:
    spec:
      containers:
        - name: app
          image: {image}:1.0.0   # bumped by automator
          args: ["--id", "{i}"]
"""


@dataclass
class World:
    """One test's config repo, image repositories and `once` command line."""

    tmp: Path
    bare: Path
    config: Path
    workdir: Path
    registry: RegistryServer
    repos: list[str]
    workloads: int

    def once(self) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "automator", "--config", str(self.config), "once"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=os.environ.copy(),
        )

    def run_once(self) -> tuple[int, str]:
        proc = self.once()
        out, _ = proc.communicate(timeout=300)
        return proc.returncode, out

    def tip(self) -> str:
        return git("rev-parse", "main", cwd=self.bare).strip()

    def push_tag(self, tag: str) -> None:
        push_many(self.registry.url, {repo: [tag] for repo in self.repos})


def make_world(
    tmp: Path, registry: RegistryServer, daemon: GitDaemon, *, workloads: int, repos: int = 4
) -> World:
    ns = f"t{uuid.uuid4().hex[:8]}"
    names = [f"{ns}/app{j}" for j in range(repos)]
    push_many(registry.url, {name: ["1.0.0"] for name in names})
    files = {
        f"apps/w{i:04d}.yaml": MANIFEST.format(
            i=i, image=f"{registry.host}/{names[i % repos]}"
        ).encode()
        for i in range(workloads)
    }
    files["README.md"] = b"config repo\n"
    name = f"config-{ns}.git"
    bare = make_bare_repo(daemon.root, name, files)
    config = tmp / "automator.yaml"
    workdir = tmp / "work"
    config.write_text(
        f"git:\n  url: {daemon.url(name)}\n  paths: [apps]\n"
        "  author: {name: Image Bot, email: bot@example.com}\n"
        f"registries:\n  - host: {registry.host}\n    url: {registry.url}\n"
        f"workdir: {workdir}\n",
        encoding="utf-8",
    )
    return World(tmp, bare, config, workdir, registry, names, workloads)


def trailers(bare: Path, rev: str) -> list[str]:
    out = git("log", "-1", f"--format=%(trailers:key={TRAILER},valueonly,unfold)", rev, cwd=bare)
    return [line for line in out.splitlines() if line]


def check_one_complete_commit(world: World, parent: str, commit: str) -> None:
    """``commit`` is one complete automator commit on ``parent``: every trailer, a tree
    whose files parse, and nothing changed but image values."""
    bare = world.bare
    assert git("rev-parse", f"{commit}^", cwd=bare).strip() == parent
    assert git("log", "-1", "--format=%an", commit, cwd=bare).strip() == "Image Bot"
    lines = trailers(bare, commit)
    assert len(lines) == world.workloads, lines[:3]
    assert len(set(lines)) == len(lines)
    changes: dict[str, tuple[str, str]] = {}
    for line in lines:
        file, _ref, _container, old, arrow, new = line.split(" ")
        assert arrow == "->"
        changes[file] = (old, new)
    changed = git("diff", "--name-only", parent, commit, cwd=bare).split()
    assert sorted(changed) == sorted(changes)
    git("fsck", "--no-progress", "--no-dangling", cwd=bare)
    for file, (old, new) in changes.items():
        before = git("show", f"{parent}:{file}", cwd=bare)
        after = git("show", f"{commit}:{file}", cwd=bare)
        assert after == before.replace(f"image: {old} ", f"image: {new} ", 1), file
        YAML(typ="safe").load(after)


def test_kill_9_at_random_moments_leaves_the_remote_unchanged_or_one_complete_commit(
    tmp_path: Path, registry: RegistryServer, git_daemon: GitDaemon
) -> None:
    world = make_world(tmp_path, registry, git_daemon, workloads=400)
    # A twin (same repo, own workdir and remote) measures how long one updating cycle takes.
    twin_bare = git_daemon.root / f"twin-{world.bare.name}"
    shutil.copytree(world.bare, twin_bare)
    twin_config = tmp_path / "twin.yaml"
    twin_config.write_text(
        world.config.read_text()
        .replace(world.bare.name, twin_bare.name)
        .replace(str(world.workdir), str(tmp_path / "twin-work")),
        encoding="utf-8",
    )
    world.push_tag("1.1.0")
    start = time.monotonic()
    twin = subprocess.run(
        [sys.executable, "-m", "automator", "--config", str(twin_config), "once"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    cycle = time.monotonic() - start
    assert twin.returncode == 0, twin.stdout + twin.stderr

    seed = int(os.environ.get("CRASH_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    kills = 20
    print(f"crash safety: seed={seed} (CRASH_SEED to repeat), cycle={cycle:.2f}s, kills={kills}")
    version = 1
    killed_mid_cycle = 0
    for n in range(kills):
        before = world.tip()
        delay = rng.uniform(0, cycle)
        proc = world.once()
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed_mid_cycle += 1
        proc.communicate(timeout=60)
        after = world.tip()
        where = f"kill {n} at {delay:.2f}s (seed {seed})"
        if after != before:
            try:
                check_one_complete_commit(world, before, after)
            except AssertionError as exc:
                raise AssertionError(f"{where}: incomplete commit: {exc}") from exc
            version += 1  # the change landed; give the next run new work
            world.push_tag(f"1.{version}.0")
    assert killed_mid_cycle >= kills // 2, "too few runs were actually killed mid-cycle"

    code, out = world.run_once()
    assert code == 0, out
    tip = world.tip()
    newest = f"1.{version}.0"
    for i in range(world.workloads):
        text = git("show", f"{tip}:apps/w{i:04d}.yaml", cwd=world.bare)
        assert f":{newest}   # bumped" in text, (i, text)
    # At most one automator commit per change: each trailer line appears once in the log.
    log = git(
        "log", f"--format=%(trailers:key={TRAILER},valueonly,unfold)", "main", cwd=world.bare
    ).splitlines()
    lines = [line for line in log if line]
    assert len(lines) == len(set(lines))
    commits = git("rev-list", "--count", "--author=Image Bot", "main", cwd=world.bare).strip()
    assert int(commits) == version


def _lock(work: Path) -> None:
    (work / ".git" / "index.lock").write_text("")


def _dirty(work: Path) -> None:
    (work / "apps" / "w0000.yaml").write_text("apiVersion: v1\nkind: Secret\n")
    (work / "apps" / "stray.yaml").write_text("kind: Deployment\nmetadata: {name: stray}\n")
    (work / "apps" / "w0001.yaml").write_text("dirty: staged\n")
    git("add", "apps/w0001.yaml", cwd=work)


def _head(work: Path) -> None:
    (work / ".git" / "HEAD").write_bytes(b"ref: refs/hea")


def _head_empty(work: Path) -> None:
    (work / ".git" / "HEAD").write_bytes(b"")


def _index(work: Path) -> None:
    index = work / ".git" / "index"
    data = index.read_bytes()
    index.write_bytes(data[: len(data) // 2])


def _index_garbage(work: Path) -> None:
    (work / ".git" / "index").write_bytes(b"DIRC\x00\x00\x00\x02garbage" * 10)


def _objects(work: Path) -> None:
    shutil.rmtree(work / ".git" / "objects")


def _packs(work: Path) -> None:
    """Overwrite the middle of every pack: the object store is corrupt."""
    packs = list((work / ".git" / "objects").rglob("*.pack"))
    loose = [p for p in (work / ".git" / "objects").rglob("*") if p.is_file()]
    for path in packs or loose:
        path.chmod(0o644)
        data = bytearray(path.read_bytes())
        mid = len(data) // 2
        data[mid : mid + 64] = b"\xff" * min(64, len(data) - mid)
        path.write_bytes(bytes(data))


def _half_written(work: Path) -> None:
    path = work / "apps" / "w0002.yaml"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _refs(work: Path) -> None:
    for ref in (work / ".git" / "refs").rglob("*"):
        if ref.is_file():
            ref.write_bytes(b"0123")
    (work / ".git" / "packed-refs").unlink(missing_ok=True)


BREAKAGES: dict[str, Callable[[Path], None]] = {
    "a stale index.lock": _lock,
    "dirty, staged and untracked files": _dirty,
    "a truncated HEAD": _head,
    "an empty HEAD": _head_empty,
    "a truncated index": _index,
    "a garbage index": _index_garbage,
    "no objects directory": _objects,
    "a corrupt object store": _packs,
    "a half-written manifest": _half_written,
    "corrupt branch refs": _refs,
}


@pytest.mark.parametrize("breakage", list(BREAKAGES), ids=lambda b: b.replace(" ", "-"))
def test_a_clone_left_broken_is_repaired_and_the_next_run_commits_once(
    tmp_path: Path, registry: RegistryServer, git_daemon: GitDaemon, breakage: str
) -> None:
    world = make_world(tmp_path, registry, git_daemon, workloads=6, repos=2)
    code, out = world.run_once()  # makes the clone; nothing to update yet
    assert code == 0, out
    before = world.tip()
    BREAKAGES[breakage](world.workdir)
    world.push_tag("1.1.0")

    code, out = world.run_once()

    assert code == 0, out
    after = world.tip()
    assert after != before, out
    check_one_complete_commit(world, before, after)
    code, out = world.run_once()  # and the repaired clone stays usable
    assert code == 0, out
    assert world.tip() == after


def test_a_workdir_that_is_another_directory_is_refused_and_left_alone(
    tmp_path: Path, registry: RegistryServer, git_daemon: GitDaemon
) -> None:
    world = make_world(tmp_path, registry, git_daemon, workloads=2, repos=1)
    world.workdir.mkdir()
    precious = world.workdir / "notes.txt"
    precious.write_text("not a clone\n")
    world.push_tag("1.1.0")

    code, out = world.run_once()

    assert code == 1, out
    assert f"work directory {world.workdir} exists, is not empty and is not a git clone" in out
    assert precious.read_text() == "not a clone\n"
    precious.unlink()  # emptied as the message says: the next run clones into it
    code, out = world.run_once()
    assert code == 0, out
    assert len(trailers(world.bare, "main")) == world.workloads
