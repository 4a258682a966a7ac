"""A person's rollback wins (DESIGN §5): real registry, real git, people as real git users.

Each test lets the automator update a workload, then a person changes it back the way
people do (``git revert``, an edit by hand) and pushes; the next cycles must keep the
person's choice until a strictly newer tag appears, from any fresh clone.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs

from automator.cli import main
from automator.config import Settings, load_settings
from automator.engine import CycleResult, Engine
from tests.support.git import GitDaemon, git, make_bare_repo
from tests.support.push import push_image
from tests.support.registry import RegistryServer

pytestmark = pytest.mark.integration

WEB = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  annotations:
    automator.gitops.io/automated: "true"
    automator.gitops.io/policy.web: semver:^1.0
spec:
  template:
    spec:
      containers:
        - name: web
          image: {image}:1.0.0
"""

VALUES = """\
apiVersion: automator.gitops.io/v1
kind: ImagePolicy
metadata:
  name: web
spec:
  image: {image}
  policy: semver:^1.0
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: values
data:
  tag: 1.0.0 # {{"$imagepolicy": "web:tag"}}
"""


PERSON = {
    "GIT_AUTHOR_NAME": "Ann Operator",
    "GIT_AUTHOR_EMAIL": "ann@example.com",
    "GIT_COMMITTER_NAME": "Ann Operator",
    "GIT_COMMITTER_EMAIL": "ann@example.com",
}


@dataclass
class World:
    tmp: Path
    bare: Path
    url: str
    image: str
    registry: RegistryServer
    config: Path
    person: Path

    def push_tags(self, *tags: str, built: int = 0) -> dict[str, str]:
        """Push the tags, built ``built`` days after 2024-01-01 (another day: other digests)."""
        created = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=built)
        return push_image(self.registry.url, self.image.split("/", 1)[1], tags, created=created)

    def settings(self, workdir: str = "work") -> Settings:
        text = self.config.read_text().replace(str(self.tmp / "work"), str(self.tmp / workdir))
        path = self.tmp / f"{workdir}.yaml"
        path.write_text(text)
        return load_settings(path)

    def once(self, workdir: str = "work") -> CycleResult:
        engine = Engine.from_settings(self.settings(workdir))
        try:
            return engine.run_once()
        finally:
            engine.close()

    def cli(self, capsys: pytest.CaptureFixture[str], *args: str) -> str:
        capsys.readouterr()
        try:
            code = main(["--config", str(self.config), "--log-format", "json", *args])
        finally:
            structlog.reset_defaults()  # main() logs to capsys' stream, closed after the test
        out = capsys.readouterr().out
        assert code == 0, out
        return out

    def plan(self, capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
        elements: list[dict[str, object]] = json.loads(self.cli(capsys, "plan", "--output", "json"))
        return elements

    def held(self, capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
        """The ``held`` objects of ``images --output json`` (plan JSON lists changes only)."""
        rows = json.loads(self.cli(capsys, "images", "--output", "json"))
        return [{**r["held"], "container": r["container"]} for r in rows if r["held"]]

    def remote(self, path: str = "web.yaml", rev: str = "main") -> str:
        return git("show", f"{rev}:{path}", cwd=self.bare)

    def commits(self, rev: str = "main") -> list[str]:
        return git("log", "--format=%H", rev, cwd=self.bare).split()

    def as_person(self, *args: str) -> str:
        """Run git in the person's clone, as the person."""
        return git(*args, cwd=self.person, env=PERSON)

    def person_pull(self) -> None:
        self.as_person("fetch", "-q", "origin")
        self.as_person("reset", "-q", "--hard", "origin/main")

    def person_edit(self, old: str, new: str, message: str, path: str = "web.yaml") -> None:
        self.person_pull()
        file = self.person / path
        text = file.read_text()
        assert old in text
        file.write_text(text.replace(old, new))
        self.as_person("commit", "-qam", message)
        self.as_person("push", "-q", "origin", "HEAD:main")


@pytest.fixture
def world(tmp_path: Path, registry: RegistryServer) -> World:
    return make_world(tmp_path, registry, url=None)


def make_world(
    tmp_path: Path,
    registry: RegistryServer,
    *,
    url: str | None,
    files: dict[str, str] | None = None,
    extra: str = "",
) -> World:
    image = f"{registry.host}/t{uuid.uuid4().hex[:8]}/web"
    manifests = files or {"web.yaml": WEB}
    bare = make_bare_repo(
        tmp_path / "srv",
        "config.git",
        {p: t.format(image=image).encode() for p, t in manifests.items()},
    )
    config = tmp_path / "automator.yaml"
    config.write_text(
        f"""\
git:
  url: {url or bare.as_uri()}
  branch: main
  author: {{name: Image Bot, email: bot@example.com}}
{extra}registries:
  - host: {registry.host}
    url: {registry.url}
workdir: {tmp_path / "work"}
""",
        encoding="utf-8",
    )
    person = tmp_path / "person"
    git("clone", "-q", bare.as_uri(), str(person))
    return World(tmp_path, bare, url or bare.as_uri(), image, registry, config, person)


def test_a_reverted_update_is_held_until_a_strictly_newer_tag_appears(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    world.push_tags("1.0.0", "1.1.0")
    assert world.once().commit is not None
    assert f"{world.image}:1.1.0" in world.remote()

    world.person_pull()
    world.as_person("revert", "--no-edit", "HEAD")
    world.as_person("push", "-q", "origin", "HEAD:main")
    reverted = world.commits()[0]

    with capture_logs() as logs:
        result = world.once()
    assert result.ok, result.failures
    assert result.commit is None
    assert result.changes == []
    assert result.held == 1
    assert world.commits()[0] == reverted
    assert f"{world.image}:1.0.0" in world.remote()
    held = [e for e in logs if e["event"] == "update_held"]
    assert len(held) == 1
    assert held[0]["rejected"] == f"{world.image}:1.1.0"
    assert held[0]["current"] == f"{world.image}:1.0.0"
    assert held[0]["changed_in"] == reverted
    assert held[0]["changed_by"] == "Ann Operator <ann@example.com>"
    assert "a tag newer than 1.1.0 ends the hold" in held[0]["release"]
    finished = [e for e in logs if e["event"] == "cycle_finished"]
    assert finished[0]["held"] == 1
    assert finished[0]["failed"] == 0

    assert world.plan(capsys) == []
    holds = world.held(capsys)
    assert len(holds) == 1
    assert holds[0]["current"] == f"{world.image}:1.0.0"
    hold = holds[0]
    assert isinstance(hold, dict)
    assert hold["rejected"] == f"{world.image}:1.1.0"
    assert hold["changed_in"] == reverted
    assert "Revert" in str(hold["reason"])
    text = world.cli(capsys, "plan")
    assert "HELD web.yaml  Deployment/-/web  web" in text
    assert "To release: a tag newer than 1.1.0 ends the hold" in text
    assert "0 to update, 1 unchanged (1 held), 0 failed" in text
    images = world.cli(capsys, "images")
    assert "held:    " in images
    assert "release: a tag newer than 1.1.0 ends the hold" in images
    assert "<- will update" not in images
    rows = json.loads(world.cli(capsys, "images", "--output", "json"))
    assert rows[0]["held"]["rejected"] == f"{world.image}:1.1.0"

    # The rejected tag pushed again (even rebuilt, with a new digest) is still held.
    rebuilt = world.push_tags("1.1.0", built=1)["1.1.0"]
    assert rebuilt != world.push_tags("1.0.0")["1.0.0"]
    assert world.once().commit is None
    assert world.commits()[0] == reverted

    # A strictly newer tag ends the hold; the hold is gone after that write.
    world.push_tags("1.2.0")
    assert [e["new"] for e in world.plan(capsys)] == [f"{world.image}:1.2.0"]
    result = world.once()
    assert result.commit is not None
    assert result.held == 0
    assert f"{world.image}:1.2.0" in world.remote()
    assert world.plan(capsys) == []


def test_a_value_edited_back_by_hand_is_held_like_a_revert(world: World) -> None:
    world.push_tags("1.0.0", "1.1.0")
    world.once()
    world.person_edit(f"{world.image}:1.1.0", f"{world.image}:1.0.0", "web: back to 1.0.0")
    edited = world.commits()[0]

    result = world.once()

    assert result.commit is None
    assert result.held == 1
    assert world.commits()[0] == edited


def test_a_fresh_clone_in_a_new_workdir_still_holds_the_field(world: World) -> None:
    world.push_tags("1.0.0", "1.1.0")
    world.once()
    world.person_edit(f"{world.image}:1.1.0", f"{world.image}:1.0.0", "web: back to 1.0.0")

    # Another replica, or the same one after a restart on an empty volume.
    result = world.once(workdir="replica-2")

    assert result.commit is None
    assert result.held == 1
    assert (world.tmp / "replica-2" / ".git").is_dir()  # it really cloned afresh


def test_the_rollback_hold_annotation_set_to_false_releases_the_field(world: World) -> None:
    world.push_tags("1.0.0", "1.1.0")
    world.once()
    world.person_edit(f"{world.image}:1.1.0", f"{world.image}:1.0.0", "web: back to 1.0.0")
    assert world.once().held == 1

    world.person_edit(
        "    automator.gitops.io/policy.web: semver:^1.0\n",
        "    automator.gitops.io/policy.web: semver:^1.0\n"
        '    automator.gitops.io/rollback-hold.web: "false"\n',
        "web: let the automator update again",
    )
    result = world.once()

    assert result.held == 0
    assert result.commit is not None
    assert f"{world.image}:1.1.0" in world.remote()


def test_putting_the_rejected_value_back_by_hand_ends_the_hold(world: World) -> None:
    world.push_tags("1.0.0", "1.1.0")
    world.once()
    world.person_edit(f"{world.image}:1.1.0", f"{world.image}:1.0.0", "web: back to 1.0.0")
    assert world.once().held == 1
    world.person_edit(f"{world.image}:1.0.0", f"{world.image}:1.1.0", "web: 1.1.0 after all")

    world.push_tags("1.2.0")
    result = world.once()

    assert result.held == 0
    assert f"{world.image}:1.2.0" in world.remote()


def test_a_person_who_bumps_forward_is_not_held(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    world.push_tags("1.0.0", "1.1.0", "1.3.0")
    world.once()
    assert f"{world.image}:1.3.0" in world.remote()
    world.push_tags("1.4.0")
    world.once()
    # Forward by hand past what the automator wrote, even to a tag not pushed yet.
    world.person_edit(f"{world.image}:1.4.0", f"{world.image}:1.9.0", "web: 1.9.0")

    result = world.once()

    assert result.held == 0
    assert result.commit is None
    assert world.plan(capsys) == []
    world.push_tags("1.9.1")
    assert world.once().commit is not None
    assert f"{world.image}:1.9.1" in world.remote()


def test_an_unmerged_update_on_the_push_branch_is_not_taken_for_a_rollback(
    tmp_path: Path,
    registry: RegistryServer,
    git_daemon: GitDaemon,
    git_root: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    name = f"config-{uuid.uuid4().hex[:8]}.git"
    world = make_world(tmp_path, registry, url=None, extra="  push_branch: automator\n")
    git("clone", "-q", "--bare", str(world.bare), str(git_root / name))
    world.bare = git_root / name
    world.config.write_text(world.config.read_text().replace(world.url, git_daemon.url(name)))
    git("remote", "set-url", "origin", str(world.bare), cwd=world.person)
    world.push_tags("1.0.0", "1.1.0")

    first = world.once()
    assert first.commit is not None
    assert f"{world.image}:1.1.0" in world.remote(rev="automator")
    # Still in review: main says 1.0.0 and has no Automator-Update line: no hold (the
    # change is still planned), and the pending change is not committed again.
    second = world.once()
    assert second.held == 0
    assert second.commit is None
    assert [e["new"] for e in world.plan(capsys)] == [f"{world.image}:1.1.0"]
    assert world.held(capsys) == []
    assert world.commits("automator")[0] == first.commit

    # Merged (fast-forward), then reverted on main by a person: now it is held.
    world.person_pull()
    world.as_person("merge", "-q", "--ff-only", "origin/automator")
    world.as_person("revert", "--no-edit", "HEAD")
    world.as_person("push", "-q", "origin", "HEAD:main")
    third = world.once()
    assert third.held == 1
    assert third.changes == []


def test_a_reverted_tag_only_marker_field_is_held_and_its_hint_names_the_image_policy(
    tmp_path: Path, registry: RegistryServer, capsys: pytest.CaptureFixture[str]
) -> None:
    world = make_world(tmp_path, registry, url=None, files={"values.yaml": VALUES})
    world.push_tags("1.0.0", "1.1.0")
    world.once()
    assert "tag: 1.1.0 #" in world.remote("values.yaml")
    world.person_pull()
    world.as_person("revert", "--no-edit", "HEAD")
    world.as_person("push", "-q", "origin", "HEAD:main")

    assert world.once().held == 1
    hold = world.held(capsys)[0]
    assert hold["container"] == "data.tag"
    assert isinstance(hold, dict)
    assert hold["rejected"] == "1.1.0"
    assert "spec.rollbackHold: false in the ImagePolicy the marker 'web:tag'" in str(
        hold["release"]
    )

    world.person_edit(
        "  policy: semver:^1.0\n",
        "  policy: semver:^1.0\n  rollbackHold: false\n",
        "values: no holds",
        path="values.yaml",
    )
    assert world.once().commit is not None
    assert "tag: 1.1.0 #" in world.remote("values.yaml")


DIGEST = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  annotations:
    automator.gitops.io/automated: "true"
    automator.gitops.io/policy.web: digest
spec:
  template:
    spec:
      containers:
        - name: web
          image: {image}:latest
"""


def test_a_digest_policy_never_writes_the_rejected_digest_again_but_takes_a_new_one(
    tmp_path: Path, registry: RegistryServer, capsys: pytest.CaptureFixture[str]
) -> None:
    world = make_world(tmp_path, registry, url=None, files={"web.yaml": DIGEST})
    first = world.push_tags("latest")["latest"]
    world.once()
    assert f"{world.image}:latest@{first}" in world.remote()
    second = world.push_tags("latest", built=1)["latest"]
    assert second != first
    world.once()
    assert f"{world.image}:latest@{second}" in world.remote()
    world.person_pull()
    world.as_person("revert", "--no-edit", "HEAD")
    world.as_person("push", "-q", "origin", "HEAD:main")

    result = world.once()

    assert result.held == 1
    assert result.commit is None
    assert f"{world.image}:latest@{first}" in world.remote()
    hold = world.held(capsys)[0]
    assert isinstance(hold, dict)
    assert f"a digest other than {second} ends the hold" in str(hold["release"])
    third = world.push_tags("latest", built=2)["latest"]
    result = world.once()
    assert result.held == 0
    assert f"{world.image}:latest@{third}" in world.remote()


def test_once_says_how_many_fields_are_held(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    world.push_tags("1.0.0", "1.1.0")
    world.once()
    world.person_edit(f"{world.image}:1.1.0", f"{world.image}:1.0.0", "web: back to 1.0.0")

    out = world.cli(capsys, "once")

    assert "0 updated, 1 unchanged (1 held, see plan), 0 failed" in out


def test_a_squash_merged_update_reverted_on_main_is_held(
    tmp_path: Path, registry: RegistryServer
) -> None:
    world = make_world(tmp_path, registry, url=None, extra="  push_branch: automator\n")
    world.push_tags("1.0.0", "1.1.0")
    proposed = world.once().commit
    assert proposed is not None
    message = git("log", "-1", "--format=%B", proposed, cwd=world.bare)

    # The review is squash-merged the way forges do it: the branch's messages become a
    # bullet list in the body, followed by a Co-authored-by trailer block.
    world.person_pull()
    world.as_person("merge", "-q", "--squash", "origin/automator")
    squash = f"Automation (#7)\n\n* {message}\n\nCo-authored-by: Image Bot <bot@example.com>\n"
    world.as_person("commit", "-q", "-m", squash)
    world.as_person("push", "-q", "origin", "HEAD:main")
    assert f"{world.image}:1.1.0" in world.remote()
    world.as_person("revert", "--no-edit", "HEAD")
    world.as_person("push", "-q", "origin", "HEAD:main")

    result = world.once()

    assert result.held == 1
    assert result.changes == []
    assert git("rev-parse", "automator", cwd=world.bare).strip() == proposed
