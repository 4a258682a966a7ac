"""The review flow (``git.push_branch`` differs from ``git.branch``) and ``git.push_options``.

Real automation cycles against a real registry and a real ``git daemon``; people are plain
``git`` clones pushing to the same bare repository. The push branch must be created from
``branch``, rebuilt on ``branch`` when it moves (one automation commit, never a pile),
and never overwritten when a person has put a commit of their own on it.
"""

from __future__ import annotations

import itertools
import stat
import uuid
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from automator.config import Settings, settings_from_mapping
from automator.engine import TRAILER, CycleResult, Engine
from automator.gitrepo._repo import AUTOMATION_TRAILER
from tests.support.git import GitDaemon, git, make_bare_repo
from tests.support.push import push_image
from tests.support.registry import RegistryServer

pytestmark = pytest.mark.integration

AUTHOR = {"name": "Automator", "email": "bot@automator.test"}
MANIFEST = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  annotations:
    automator.gitops.io/automated: "true"
    automator.gitops.io/policy: semver:^1
spec:
  template:
    spec:
      containers:
        - name: web
          image: {image}:1.0.0
"""
# Records what the server received: GIT_PUSH_OPTION_COUNT, then each option.
HOOK = """\
#!/bin/sh
{{
  echo "count=${{GIT_PUSH_OPTION_COUNT:-unset}}"
  i=0
  while [ "$i" -lt "${{GIT_PUSH_OPTION_COUNT:-0}}" ]; do
    eval "echo \\"option=\\$GIT_PUSH_OPTION_$i\\""
    i=$((i + 1))
  done
}} >> '{record}'
cat > /dev/null
"""
_names = itertools.count()


@dataclass
class World:
    settings: Settings
    bare: Path
    image: str
    tmp: Path
    registry: RegistryServer

    def cycle(self) -> tuple[CycleResult, list[MutableMapping[str, Any]]]:
        with capture_logs() as logs:
            engine = Engine.from_settings(self.settings)
            try:
                result = engine.run_once()
            finally:
                engine.close()
        return result, logs

    def tip(self, branch: str) -> str:
        return git("rev-parse", f"refs/heads/{branch}", cwd=self.bare).strip()

    def person_commits(self, branch: str, rel: str, text: str, *, amend: bool = False) -> str:
        """Someone clones ``branch``, edits ``rel``, commits (or amends) and pushes."""
        work = self.tmp / f"person-{next(_names)}"
        git("clone", "-q", "--branch", branch, str(self.bare), str(work))
        (work / rel).write_text(text)
        git("add", "-A", cwd=work)
        git(
            "commit",
            "-q",
            *(["--amend", "--no-edit"] if amend else ["-m", f"edit {rel}"]),
            cwd=work,
        )
        git("push", "-q", "--force", "origin", f"HEAD:refs/heads/{branch}", cwd=work)
        return git("rev-parse", "HEAD", cwd=work).strip()

    def new_tag(self, tag: str) -> None:
        push_image(self.registry.url, self.image.split("/", 1)[1], [tag])


def make_world(
    tmp_path: Path, registry: RegistryServer, git_daemon: GitDaemon, **git_extra: Any
) -> World:
    image = f"{registry.host}/r{uuid.uuid4().hex[:8]}/web"
    push_image(registry.url, image.split("/", 1)[1], ["1.0.0", "1.1.0"])
    name = f"review-{uuid.uuid4().hex[:8]}.git"
    bare = make_bare_repo(
        git_daemon.root, name, {"web.yaml": MANIFEST.format(image=image).encode()}
    )
    settings = settings_from_mapping(
        {
            "git": {
                "url": git_daemon.url(name),
                "author": AUTHOR,
                "push_branch": "automator/updates",
                **git_extra,
            },
            "registries": [{"host": registry.host, "url": registry.url}],
            "workdir": str(tmp_path / "work"),
        }
    )
    return World(settings, bare, image, tmp_path, registry)


PUSH = "automator/updates"


def test_the_trailer_that_marks_our_commits_is_the_one_the_engine_writes() -> None:
    assert AUTOMATION_TRAILER == TRAILER


def test_the_push_branch_is_created_from_branch_with_one_automation_commit(
    tmp_path: Path, registry: RegistryServer, git_daemon: GitDaemon
) -> None:
    world = make_world(tmp_path, registry, git_daemon)
    main = world.tip("main")

    result, _ = world.cycle()

    assert result.ok, result.failures
    assert world.tip(PUSH) == result.commit
    assert world.tip("main") == main
    assert git("rev-list", f"main..{PUSH}", cwd=world.bare).split() == [result.commit]
    assert git("rev-parse", f"{PUSH}^", cwd=world.bare).strip() == main
    assert ":1.1.0" in git("show", f"{PUSH}:web.yaml", cwd=world.bare)


def test_when_branch_moves_the_push_branch_is_rebuilt_on_it_with_exactly_one_commit(
    tmp_path: Path, registry: RegistryServer, git_daemon: GitDaemon
) -> None:
    world = make_world(tmp_path, registry, git_daemon)
    first, _ = world.cycle()
    human = world.person_commits("main", "README.md", "a person's change on main\n")

    result, _ = world.cycle()

    assert result.ok, result.failures
    assert result.commit not in (None, first.commit)
    assert world.tip(PUSH) == result.commit
    assert git("rev-parse", f"{PUSH}^", cwd=world.bare).strip() == human
    assert git("rev-list", f"main..{PUSH}", cwd=world.bare).split() == [result.commit]
    # Unchanged main and an up-to-date push branch: the next cycle commits nothing.
    again, _ = world.cycle()
    assert again.ok
    assert again.commit is None
    assert world.tip(PUSH) == result.commit


@pytest.mark.parametrize("how", ["new commit", "amend"])
def test_a_persons_commit_on_the_push_branch_is_never_overwritten(
    tmp_path: Path, registry: RegistryServer, git_daemon: GitDaemon, how: str
) -> None:
    world = make_world(tmp_path, registry, git_daemon)
    world.cycle()
    # A reviewer fixes something on the branch itself (or amends the automation commit:
    # the author stays ours, the committer becomes the person).
    theirs = world.person_commits(PUSH, "NOTES.md", "reviewed\n", amend=how == "amend")
    world.new_tag("1.2.0")

    result, logs = world.cycle()

    assert not result.ok
    message = result.failures[-1].message
    assert f"push branch {PUSH}" in message
    assert theirs[:7] in message
    assert "merge" in message
    assert "delete" in message
    assert world.tip(PUSH) == theirs
    events = [e for e in logs if e["event"] == "git_push_branch_not_ours"]
    assert [(e["push_branch"], e["tip"]) for e in events] == [(PUSH, theirs)]
    # The same every cycle until a person acts.
    again, _ = world.cycle()
    assert not again.ok
    assert world.tip(PUSH) == theirs


def test_once_the_person_moves_their_commit_to_branch_the_push_branch_is_rebuilt(
    tmp_path: Path, registry: RegistryServer, git_daemon: GitDaemon
) -> None:
    world = make_world(tmp_path, registry, git_daemon)
    world.cycle()
    theirs = world.person_commits(PUSH, "NOTES.md", "reviewed\n")
    assert not world.cycle()[0].ok
    # The fix the message suggests: merge the push branch into main.
    git("update-ref", "refs/heads/main", theirs, cwd=world.bare)
    world.new_tag("1.2.0")

    result, _ = world.cycle()

    assert result.ok, result.failures
    assert git("rev-parse", f"{PUSH}^", cwd=world.bare).strip() == theirs
    assert ":1.2.0" in git("show", f"{PUSH}:web.yaml", cwd=world.bare)


def test_a_deleted_push_branch_is_created_again_from_branch(
    tmp_path: Path, registry: RegistryServer, git_daemon: GitDaemon
) -> None:
    world = make_world(tmp_path, registry, git_daemon)
    world.cycle()
    world.person_commits(PUSH, "NOTES.md", "reviewed\n")
    git("update-ref", "-d", f"refs/heads/{PUSH}", cwd=world.bare)

    result, _ = world.cycle()

    assert result.ok, result.failures
    assert git("rev-parse", f"{PUSH}^", cwd=world.bare).strip() == world.tip("main")


# --------------------------------------------------------------------------- push options


def install_recording_hook(bare: Path, tmp: Path) -> Path:
    record = tmp / "push-options.log"
    git("config", "receive.advertisePushOptions", "true", cwd=bare)
    hook = bare / "hooks" / "pre-receive"
    hook.write_text(HOOK.format(record=record))
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return record


def test_push_options_reach_the_server_one_per_entry(
    tmp_path: Path, registry: RegistryServer, git_daemon: GitDaemon
) -> None:
    options = ["merge_request.create", "merge_request.title=Update web to 1.1.0"]
    world = make_world(tmp_path, registry, git_daemon, push_options=options)
    record = install_recording_hook(world.bare, tmp_path)

    result, _ = world.cycle()

    assert result.ok, result.failures
    assert record.read_text().splitlines() == [
        "count=2",
        "option=merge_request.create",
        "option=merge_request.title=Update web to 1.1.0",
    ]


def test_without_push_options_the_server_receives_none(
    tmp_path: Path, registry: RegistryServer, git_daemon: GitDaemon
) -> None:
    world = make_world(tmp_path, registry, git_daemon)
    record = install_recording_hook(world.bare, tmp_path)

    result, _ = world.cycle()

    assert result.ok, result.failures
    assert record.read_text().splitlines() == ["count=0"]


def test_push_options_to_a_server_that_does_not_accept_them_fail_naming_the_key(
    tmp_path: Path, registry: RegistryServer, git_daemon: GitDaemon
) -> None:
    world = make_world(tmp_path, registry, git_daemon, push_options=["ci.skip"])
    git("config", "receive.advertisePushOptions", "false", cwd=world.bare)

    result, _ = world.cycle()

    assert not result.ok
    assert "git.push_options" in result.failures[-1].message
    assert git("branch", "--list", PUSH, cwd=world.bare).strip() == ""
