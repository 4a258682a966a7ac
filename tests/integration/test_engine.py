"""Engine behaviour that needs a race or a crash: real git, real registry, one injected event.

The injected events are the only fakes: another user pushing between our scan and our
push (done with real git from a second clone), and a process dying at a chosen point
(an exception raised from inside a real GitRepo method).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from automator.config import Settings, settings_from_mapping
from automator.engine import Engine
from automator.gitrepo import GitRepo
from automator.images import ImageRef
from automator.registry import RegistryClient
from tests.support.git import git, make_bare_repo
from tests.support.push import push_image
from tests.support.registry import RegistryServer

pytestmark = pytest.mark.integration

MANIFEST = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  annotations:
    automator.gitops.io/automated: "true"
    automator.gitops.io/policy: semver:^1
spec:
  replicas: 2
  template:
    spec:
      containers:
        - name: web
          image: {image}:1.0.0
"""


class Killed(BaseException):
    """Stands for SIGKILL: nothing after the raise point runs (not even except Exception)."""


class RacingRegistry(RegistryClient):
    """A real client that lets another user push to the config repo while we scan."""

    def __init__(self, settings: Settings, bare: Path, tmp: Path, races: int) -> None:
        super().__init__(settings)
        self.bare, self.tmp, self.races = bare, tmp, races
        self.calls = 0

    def list_tags(self, image: ImageRef) -> list[str]:
        self.calls += 1
        if self.calls <= self.races:
            other = self.tmp / f"other-{self.calls}"
            git("clone", "-q", str(self.bare), str(other))
            path = other / "web.yaml"
            text = path.read_text()
            path.write_text(
                text.replace(f"replicas: {self.calls + 1}", f"replicas: {self.calls + 2}")
            )
            git("commit", "-qam", f"scale to {self.calls + 2}", cwd=other)
            git("push", "-q", "origin", "HEAD:main", cwd=other)
        return super().list_tags(image)


def make_world(
    tmp_path: Path, registry: RegistryServer, **extra: object
) -> tuple[Settings, Path, str]:
    image = f"{registry.host}/t{uuid.uuid4().hex[:8]}/web"
    push_image(registry.url, image.split("/", 1)[1], ["1.0.0", "1.1.0"])
    bare = make_bare_repo(
        tmp_path / "srv", "config.git", {"web.yaml": MANIFEST.format(image=image).encode()}
    )
    settings = settings_from_mapping(
        {
            "git": {"url": bare.as_uri(), "author": {"name": "Bot", "email": "bot@example.com"}},
            "registries": [{"host": registry.host, "url": registry.url}],
            "workdir": str(tmp_path / "work"),
            **extra,
        }
    )
    return settings, bare, image


def test_a_rejected_push_is_retried_on_the_new_tip_keeping_the_other_change(
    tmp_path: Path, registry: RegistryServer
) -> None:
    settings, bare, image = make_world(tmp_path, registry)
    reg = RacingRegistry(settings, bare, tmp_path, races=1)
    engine = Engine(settings, registry=reg, repo=GitRepo(settings.git, settings.clone_dir))

    result = engine.run_once()
    engine.close()

    assert result.ok, result.failures
    assert result.attempts == 2
    subjects = git("log", "--format=%s", "main", cwd=bare).splitlines()
    assert subjects[:2] == ["Update web/web to 1.1.0", "scale to 3"]
    final = git("show", "main:web.yaml", cwd=bare)
    assert final == MANIFEST.format(image=image).replace("replicas: 2", "replicas: 3").replace(
        ":1.0.0", ":1.1.0"
    )


def test_when_every_push_loses_the_race_the_cycle_fails_and_nothing_of_ours_lands(
    tmp_path: Path, registry: RegistryServer
) -> None:
    settings, bare, _ = make_world(tmp_path, registry, push_retries=1)
    reg = RacingRegistry(settings, bare, tmp_path, races=10)
    engine = Engine(settings, registry=reg, repo=GitRepo(settings.git, settings.clone_dir))

    result = engine.run_once()
    engine.close()

    assert not result.ok
    assert result.attempts == 2
    assert "rejected" in result.failures[-1].message
    assert all(
        s.startswith(("scale", "Initial"))
        for s in git("log", "--format=%s", "main", cwd=bare).splitlines()
    )


@pytest.mark.parametrize("die_in", ["commit", "push"])
def test_a_run_killed_mid_cycle_leaves_the_remote_unchanged_and_the_next_run_clean(
    tmp_path: Path, registry: RegistryServer, monkeypatch: pytest.MonkeyPatch, die_in: str
) -> None:
    settings, bare, image = make_world(tmp_path, registry)
    before = git("rev-parse", "main", cwd=bare).strip()

    def die(*_args: object, **_kwargs: object) -> None:
        raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(GitRepo, die_in, die)
        engine = Engine.from_settings(settings)
        with pytest.raises(Killed):
            engine.run_once()
        engine.close()
    assert git("rev-parse", "main", cwd=bare).strip() == before

    # Leave extra debris a crash could leave: a half-written file in the work tree.
    (settings.clone_dir / "web.yaml").write_text("half-writ")
    engine = Engine.from_settings(settings)
    result = engine.run_once()
    engine.close()

    assert result.ok
    assert result.commit is not None
    log = git("log", "--format=%s", "main", cwd=bare).splitlines()
    assert log == ["Update web/web to 1.1.0", "Initial commit"]
    assert git("show", "main:web.yaml", cwd=bare) == MANIFEST.format(image=image).replace(
        ":1.0.0", ":1.1.0"
    )
