"""GitRepo.updates and GitRepo.last_change on a real repository (what rollback holds read)."""

from __future__ import annotations

from pathlib import Path

import pytest

from automator.config import settings_from_mapping
from automator.gitrepo import GitRepo
from tests.support.git import git, make_bare_repo

pytestmark = pytest.mark.integration

KEY = "Automator-Update"
PERSON = {
    "GIT_AUTHOR_NAME": "Ann",
    "GIT_AUTHOR_EMAIL": "ann@example.com",
    "GIT_COMMITTER_NAME": "Ann",
    "GIT_COMMITTER_EMAIL": "ann@example.com",
}


def make_repo(tmp_path: Path, **git_extra: str) -> tuple[GitRepo, Path, Path]:
    bare = make_bare_repo(tmp_path / "srv", "config.git", {"web.yaml": b"image: r/web:1.0.0\n"})
    clone = tmp_path / "person"
    git("clone", "-q", str(bare), str(clone))
    settings = settings_from_mapping(
        {
            "git": {
                "url": bare.as_uri(),
                "author": {"name": "Bot", "email": "bot@example.com"},
                **git_extra,
            },
            "workdir": str(tmp_path / "work"),
        }
    )
    return GitRepo(settings.git, settings.clone_dir), bare, clone


def commit(clone: Path, text: str, message: str, branch: str = "main") -> str:
    (clone / "web.yaml").write_text(text)
    git("commit", "-qam", message, cwd=clone, env=PERSON)
    git("push", "-q", "origin", f"HEAD:{branch}", cwd=clone)
    return git("rev-parse", "HEAD", cwd=clone).strip()


def line(old: str, new: str, container: str = "web") -> str:
    return f"{KEY}: web.yaml Deployment/-/web {container} r/web:{old} -> r/web:{new}"


def test_updates_is_empty_on_a_history_without_automator_lines(tmp_path: Path) -> None:
    repo, _, _ = make_repo(tmp_path)
    repo.sync()
    assert repo.updates(KEY) == {}


def test_updates_reads_the_newest_line_per_field_including_squash_merge_bodies(
    tmp_path: Path,
) -> None:
    repo, _, clone = make_repo(tmp_path)
    commit(clone, "image: r/web:1.1.0\n", f"Update web\n\n{line('1.0.0', '1.1.0')}")
    squash = commit(
        clone,
        "image: r/web:1.2.0\n",
        "Automation (#7)\n\n* Update web\n\n"
        f"{line('1.0.0', '1.1.0')}\n{line('1.0.0', '1.1.0', 'side')}\n\n"
        f"* Update web\n\n{line('1.1.0', '1.2.0')}\n\n"
        "Co-authored-by: Bot <bot@example.com>",
    )
    person = commit(clone, "image: r/web:1.0.0\n", "web: back to 1.0.0")
    repo.sync()

    records = repo.updates(KEY)

    web = records["web.yaml", "Deployment/-/web", "web"]
    assert (web.new, web.commit) == ("r/web:1.2.0", squash)
    assert records["web.yaml", "Deployment/-/web", "side"].new == "r/web:1.1.0"
    change = repo.last_change("web.yaml", squash)
    assert change is not None
    assert (change.sha, change.author_name) == (person, "Ann")
    assert repo.last_change("web.yaml", person) is None


def test_updates_never_reads_the_push_branch(tmp_path: Path) -> None:
    repo, bare, clone = make_repo(tmp_path, push_branch="automator")
    git("checkout", "-q", "-b", "automator", cwd=clone)
    commit(clone, "image: r/web:1.1.0\n", f"Update\n\n{line('1.0.0', '1.1.0')}", "automator")
    repo.sync()

    assert repo.updates(KEY) == {}
    assert (
        git("rev-parse", "automator", cwd=bare).strip()
        != git("rev-parse", "main", cwd=bare).strip()
    )
