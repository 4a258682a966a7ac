"""GitRepo against real git servers: file://, git:// (daemon), smart HTTP with auth, ssh://.

Every server is started once per module; every test gets its own bare repository, so
tests stay independent. "Someone else" is a plain ``git`` clone working on the bare
repository directly (the race we test is on the remote ref, whatever the transport).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from automator.config import Author, GitSettings
from automator.errors import GitError, GitUnavailable, PushRejected
from automator.gitrepo import GitRepo
from tests.support.git import GitDaemon, GitHttpServer, SshGitServer, git, make_bare_repo
from tests.support.process import free_port

pytestmark = pytest.mark.integration

USER = "automator"
PASSWORD = "s3cret-Pa55-w0rd"
PASSWORD_ENV = "GITREPO_TEST_PASSWORD"
TRAILER = "Automator-Update"
SEED = {
    "clusters/prod/app.yaml": b"image: ghcr.io/org/app:1.0.0\n",
    "README.md": b"config repo\n",
}
_names = itertools.count()
# What the engine writes: the push branch is overwritten only when its tip looks like this.
AUTOMATION_MESSAGE = (
    "Update app to 1.1.0\n\n"
    f"{TRAILER}: clusters/prod/app.yaml Deployment/-/app app ghcr.io/org/app:1.0.0 -> "
    "ghcr.io/org/app:1.1.0\n"
)


@dataclass
class Remote:
    """One transport: how to address a bare repo and which settings reach it."""

    kind: str
    root: Path
    url_for: Callable[[str], str]
    extra: dict[str, Any] = field(default_factory=dict)

    def new_repo(self, files: dict[str, bytes] | None = None) -> tuple[Path, str]:
        name = f"{self.kind}-{next(_names)}.git"
        bare = make_bare_repo(self.root, name, SEED if files is None else files)
        return bare, self.url_for(name)

    def settings(self, url: str, **overrides: Any) -> GitSettings:
        return GitSettings(
            url=url,
            author=Author(name="Automator Bot", email="bot@automator.test"),
            **{**self.extra, **overrides},
        )


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Remote]]:
    root = tmp_path_factory.mktemp("git-servers") / "repos"
    root.mkdir()
    with contextlib.ExitStack() as stack:
        mp = stack.enter_context(pytest.MonkeyPatch.context())
        mp.setenv(PASSWORD_ENV, PASSWORD)
        daemon = stack.enter_context(GitDaemon(root))
        http = stack.enter_context(GitHttpServer(root, auth=(USER, PASSWORD)))
        remotes = {
            "file": Remote("file", root, lambda n: f"file://{root / n}"),
            "git": Remote("git", root, daemon.url),
            "http": Remote(
                "http", root, http.url, {"username": USER, "password_env": PASSWORD_ENV}
            ),
        }
        # sshd needs root (it logs us in as root) and the openssh-server package.
        if os.geteuid() == 0 and Path("/usr/sbin/sshd").exists():
            ssh = stack.enter_context(SshGitServer(root))
            remotes["ssh"] = Remote(
                "ssh",
                root,
                ssh.url,
                {"ssh_key_file": ssh.client_key, "known_hosts_file": ssh.known_hosts},
            )
        yield remotes


@pytest.fixture(params=["file", "git", "http", "ssh"])
def remote(request: pytest.FixtureRequest, servers: dict[str, Remote]) -> Remote:
    if request.param not in servers:
        pytest.skip(f"no {request.param} server here (sshd needs root and openssh-server)")
    return servers[request.param]


@pytest.fixture
def http_remote(servers: dict[str, Remote]) -> Remote:
    return servers["http"]


@pytest.fixture
def ssh_remote(servers: dict[str, Remote]) -> Remote:
    if "ssh" not in servers:
        pytest.skip("no sshd here (it needs root and openssh-server)")
    return servers["ssh"]


def tip(bare: Path, branch: str = "main") -> str:
    return git("rev-parse", f"refs/heads/{branch}", cwd=bare).strip()


def someone_else_pushes(bare: Path, tmp: Path, rel: str, data: bytes, branch: str = "main") -> str:
    """Another actor clones the bare repo, commits one file and pushes; returns the sha."""
    work = tmp / f"other-{next(_names)}"
    git("clone", "-q", "--branch", branch, str(bare), str(work))
    (work / rel).parent.mkdir(parents=True, exist_ok=True)
    (work / rel).write_bytes(data)
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", f"human edit of {rel}", cwd=work)
    git("push", "-q", "origin", f"HEAD:refs/heads/{branch}", cwd=work)
    return git("rev-parse", "HEAD", cwd=work).strip()


def bump(repo: GitRepo, version: str) -> str:
    (repo.path / "clusters/prod/app.yaml").write_bytes(
        f"image: ghcr.io/org/app:{version}\n".encode()
    )
    return "clusters/prod/app.yaml"


# --------------------------------------------------------------------------- all transports


def test_sync_clones_the_remote_branch_and_returns_its_tip(remote: Remote, tmp_path: Path) -> None:
    bare, url = remote.new_repo()
    repo = GitRepo(remote.settings(url), tmp_path / "work")

    head = repo.sync()

    assert head == tip(bare)
    assert (repo.path / "clusters/prod/app.yaml").read_bytes() == SEED["clusters/prod/app.yaml"]


def test_commit_and_push_publish_one_commit_by_the_configured_author_and_committer(
    remote: Remote, tmp_path: Path
) -> None:
    bare, url = remote.new_repo()
    repo = GitRepo(remote.settings(url), tmp_path / "work")
    before = repo.sync()

    sha = repo.commit("Update app to 1.1.0", [bump(repo, "1.1.0")])
    repo.push()

    assert sha is not None
    assert tip(bare) == sha
    assert git("rev-parse", f"{sha}^", cwd=bare).strip() == before
    identity = git("log", "-1", "--format=%an|%ae|%cn|%ce", sha, cwd=bare).strip()
    assert identity == "Automator Bot|bot@automator.test|Automator Bot|bot@automator.test"
    shown = git("show", f"{sha}:clusters/prod/app.yaml", cwd=bare)
    assert shown == "image: ghcr.io/org/app:1.1.0\n"


def test_sync_picks_up_a_commit_pushed_by_someone_else(remote: Remote, tmp_path: Path) -> None:
    bare, url = remote.new_repo()
    repo = GitRepo(remote.settings(url), tmp_path / "work")
    repo.sync()
    theirs = someone_else_pushes(bare, tmp_path, "clusters/prod/extra.yaml", b"kind: X\n")

    head = repo.sync()

    assert head == theirs
    assert (repo.path / "clusters/prod/extra.yaml").read_bytes() == b"kind: X\n"


def test_sync_discards_everything_a_killed_run_left_in_the_work_tree(
    remote: Remote, tmp_path: Path
) -> None:
    bare, url = remote.new_repo()
    repo = GitRepo(remote.settings(url), tmp_path / "work")
    repo.sync()
    # A killed run: half-written tracked file, stray files, a staged change, a local
    # unpushed commit and the index lock git leaves behind when killed.
    (repo.path / "README.md").write_bytes(b"half-writ")
    (repo.path / "clusters/prod/app.yaml.tmp").write_bytes(b"partial")
    (repo.path / "clusters/prod/new.yaml").write_bytes(b"stray")
    git("add", "clusters/prod/new.yaml", cwd=repo.path)
    (repo.path / "ignored.log").write_bytes(b"x")
    (repo.path / ".gitignore").write_bytes(b"*.log\n")
    git("-c", "user.name=x", "-c", "user.email=x@x", "commit", "-qam", "local", cwd=repo.path)
    (repo.path / ".git/index.lock").write_bytes(b"")

    head = repo.sync()
    sha = repo.commit("Update app", [bump(repo, "2.0.0")])
    repo.push()

    assert head == git("rev-parse", "HEAD~1", cwd=bare).strip()
    assert sha == tip(bare)
    files = git("ls-tree", "-r", "--name-only", sha, cwd=bare).split()
    assert sorted(files) == ["README.md", "clusters/prod/app.yaml"]
    assert git("show", f"{sha}:README.md", cwd=bare) == "config repo\n"
    leftovers = {p.name for p in repo.path.rglob("*") if ".git" not in p.parts}
    assert leftovers == {"README.md", "clusters", "prod", "app.yaml"}


def test_commit_returns_none_and_makes_no_commit_when_nothing_changed(
    remote: Remote, tmp_path: Path
) -> None:
    _, url = remote.new_repo()
    repo = GitRepo(remote.settings(url), tmp_path / "work")
    head = repo.sync()
    rel = bump(repo, "1.0.0")  # same bytes as the seed

    assert repo.commit("no-op", [rel]) is None
    assert git("rev-parse", "HEAD", cwd=repo.path).strip() == head


def test_a_concurrent_push_raises_push_rejected_and_sync_commit_push_then_succeeds(
    remote: Remote, tmp_path: Path
) -> None:
    bare, url = remote.new_repo()
    repo = GitRepo(remote.settings(url), tmp_path / "work")
    repo.sync()
    repo.commit("Update app to 1.1.0", [bump(repo, "1.1.0")])
    theirs = someone_else_pushes(bare, tmp_path, "README.md", b"edited by a human\n")

    with capture_logs() as logs, pytest.raises(PushRejected, match="fetch"):
        repo.push()
    assert tip(bare) == theirs
    assert any(e["event"] == "git_push_rejected" for e in logs)

    assert repo.sync() == theirs
    sha = repo.commit("Update app to 1.1.0", [bump(repo, "1.1.0")])
    repo.push()

    assert sha is not None
    assert tip(bare) == sha
    assert git("rev-parse", f"{sha}^", cwd=bare).strip() == theirs
    assert git("show", f"{sha}:README.md", cwd=bare) == "edited by a human\n"


def test_trailers_round_trip_through_log(remote: Remote, tmp_path: Path) -> None:
    _, url = remote.new_repo()
    repo = GitRepo(remote.settings(url), tmp_path / "work")
    repo.sync()
    change = (
        "clusters/prod/app.yaml Deployment/-/app app ghcr.io/org/app:1.0.0 -> ghcr.io/org/app:1.1.0"
    )
    message = f"Update images\n\nOne image updated.\n\n{TRAILER}: {change}\n{TRAILER}: a b -> c\n"
    sha = repo.commit(message, [bump(repo, "1.1.0")])
    repo.push()

    newest = repo.log(max_count=10)
    only_ours = repo.log(grep_trailer=TRAILER)

    assert [c.sha for c in only_ours] == [sha]
    assert newest[0].sha == sha
    assert len(newest) == 2
    assert newest[0].trailers == ((TRAILER, change), (TRAILER, "a b -> c"))
    assert newest[0].author_name == "Automator Bot"
    assert newest[0].author_email == "bot@automator.test"
    assert newest[0].message.startswith("Update images\n\nOne image updated.")
    assert newest[0].date.tzinfo is not None
    assert newest[1].trailers == ()


def test_fetch_is_incremental_and_never_reclones_a_healthy_work_tree(
    remote: Remote, tmp_path: Path
) -> None:
    bare, url = remote.new_repo()
    repo = GitRepo(remote.settings(url), tmp_path / "work")
    repo.sync()
    marker = repo.path / ".git" / "automator-marker"
    marker.write_text("kept")
    someone_else_pushes(bare, tmp_path, "b.yaml", b"b: 1\n")

    with capture_logs() as logs:
        repo.sync()

    assert marker.read_text() == "kept"
    assert [e["event"] for e in logs if e["event"].startswith("git_")] == ["git_fetch"]


def test_credentials_never_reach_the_work_tree_on_disk(remote: Remote, tmp_path: Path) -> None:
    _, url = remote.new_repo()
    repo = GitRepo(remote.settings(url), tmp_path / "work")
    repo.sync()
    repo.commit("Update", [bump(repo, "3.0.0")])
    repo.push()

    config = (repo.path / ".git" / "config").read_text()
    assert PASSWORD not in config
    assert f"url = {url}\n" in config
    for path in (repo.path / ".git").rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path


# --------------------------------------------------------------------------- http auth


def test_http_with_a_wrong_password_is_a_git_error_naming_the_key_without_the_password(
    http_remote: Remote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, url = http_remote.new_repo()
    wrong = "wrong-Pa55word-xyz"
    monkeypatch.setenv(PASSWORD_ENV, wrong)
    repo = GitRepo(http_remote.settings(url), tmp_path / "work")

    with capture_logs() as logs, pytest.raises(GitError) as info:
        repo.sync()

    assert not isinstance(info.value, GitUnavailable)
    assert "git.password_env" in str(info.value)
    assert url in str(info.value)
    assert wrong not in str(info.value)
    assert PASSWORD not in str(info.value)
    assert wrong not in repr(logs)
    assert PASSWORD not in repr(logs)


def test_http_without_credentials_against_a_protected_server_is_a_git_error(
    http_remote: Remote, tmp_path: Path
) -> None:
    _, url = http_remote.new_repo()
    repo = GitRepo(GitSettings(url=url), tmp_path / "work")

    with pytest.raises(GitError, match="authentication failed"):
        repo.sync()


def test_credentials_embedded_in_the_url_are_used_but_never_stored_or_shown(
    http_remote: Remote, tmp_path: Path
) -> None:
    _, url = http_remote.new_repo()
    embedded = url.replace("http://", f"http://{USER}:{PASSWORD}@")

    with capture_logs() as logs:
        repo = GitRepo(GitSettings(url=embedded), tmp_path / "work")
        repo.sync()

    assert f"url = {url}\n" in (repo.path / ".git" / "config").read_text()
    assert PASSWORD not in repr(logs)
    assert any(e["event"] == "git_url_contains_password" for e in logs)


def test_a_wrong_password_embedded_in_the_url_is_redacted_from_the_error(
    http_remote: Remote, tmp_path: Path
) -> None:
    _, url = http_remote.new_repo()
    embedded = url.replace("http://", f"http://{USER}:not-{PASSWORD}@")
    repo = GitRepo(GitSettings(url=embedded), tmp_path / "work")

    with pytest.raises(GitError) as info:
        repo.sync()

    assert f"not-{PASSWORD}" not in str(info.value)
    assert f"http://{USER}:***@" in str(info.value)


# --------------------------------------------------------------------------- ssh


def test_ssh_with_an_unknown_host_key_is_a_git_error_naming_known_hosts(
    ssh_remote: Remote, tmp_path: Path
) -> None:
    _, url = ssh_remote.new_repo()
    other_key = tmp_path / "other_host_key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other_key)],
        check=True,
        capture_output=True,
    )
    port = url.split(":")[2].split("/")[0]
    known_hosts = tmp_path / "known_hosts"
    pub = other_key.with_name("other_host_key.pub").read_text().split()
    known_hosts.write_text(f"[127.0.0.1]:{port} {pub[0]} {pub[1]}\n")
    repo = GitRepo(ssh_remote.settings(url, known_hosts_file=known_hosts), tmp_path / "work")

    with pytest.raises(GitError, match=r"git\.known_hosts_file") as info:
        repo.sync()
    assert not isinstance(info.value, GitUnavailable)


def test_ssh_with_an_empty_known_hosts_file_never_trusts_on_first_use(
    ssh_remote: Remote, tmp_path: Path
) -> None:
    _, url = ssh_remote.new_repo()
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    repo = GitRepo(ssh_remote.settings(url, known_hosts_file=known_hosts), tmp_path / "work")

    with pytest.raises(GitError, match="host key"):
        repo.sync()
    assert known_hosts.read_text() == ""


# --------------------------------------------------------------------------- failures


def test_an_unreachable_remote_is_transient(servers: dict[str, Remote], tmp_path: Path) -> None:
    url = f"git://127.0.0.1:{free_port()}/nothing.git"
    repo = GitRepo(GitSettings(url=url), tmp_path / "work")

    with pytest.raises(GitUnavailable, match="cannot reach"):
        repo.sync()


def test_a_missing_repository_is_a_permanent_error_naming_the_url(
    remote: Remote, tmp_path: Path
) -> None:
    url = remote.url_for("does-not-exist.git")
    repo = GitRepo(remote.settings(url), tmp_path / "work")

    with pytest.raises(GitError, match=r"git\.url") as info:
        repo.sync()
    assert not isinstance(info.value, GitUnavailable)


def test_a_missing_branch_is_a_permanent_error_naming_git_branch(
    remote: Remote, tmp_path: Path
) -> None:
    _, url = remote.new_repo()
    repo = GitRepo(remote.settings(url, branch="nope"), tmp_path / "work")

    with pytest.raises(GitError, match=r"branch nope does not exist .*git\.branch"):
        repo.sync()


# --------------------------------------------------------------------------- work tree


def test_a_changed_url_is_applied_to_the_existing_clone_without_recloning(
    servers: dict[str, Remote], tmp_path: Path
) -> None:
    file_remote, http_remote = servers["file"], servers["http"]
    bare, file_url = file_remote.new_repo()
    work = tmp_path / "work"
    GitRepo(file_remote.settings(file_url), work).sync()
    marker = work / ".git" / "automator-marker"
    marker.write_text("kept")
    http_url = http_remote.url_for(bare.name)

    with capture_logs() as logs:
        head = GitRepo(http_remote.settings(http_url), work).sync()

    assert head == tip(bare)
    assert marker.exists()
    assert f"url = {http_url}\n" in (work / ".git" / "config").read_text()
    assert "git_remote_url_changed" in [e["event"] for e in logs]
    assert "git_clone" not in [e["event"] for e in logs]


def test_a_corrupt_clone_is_replaced_by_a_fresh_one(
    servers: dict[str, Remote], tmp_path: Path
) -> None:
    bare, url = servers["file"].new_repo()
    work = tmp_path / "work"
    GitRepo(servers["file"].settings(url), work).sync()
    (work / ".git" / "HEAD").unlink()

    head = GitRepo(servers["file"].settings(url), work).sync()

    assert head == tip(bare)


def test_a_non_empty_directory_that_is_not_a_clone_is_never_deleted(
    servers: dict[str, Remote], tmp_path: Path
) -> None:
    _, url = servers["file"].new_repo()
    work = tmp_path / "work"
    work.mkdir()
    (work / "precious.txt").write_text("user data")

    with pytest.raises(GitError, match="not a git clone"):
        GitRepo(servers["file"].settings(url), work).sync()
    assert (work / "precious.txt").read_text() == "user data"


def test_log_honours_max_count_and_the_trailer_filter(
    servers: dict[str, Remote], tmp_path: Path
) -> None:
    bare, url = servers["file"].new_repo()
    repo = GitRepo(servers["file"].settings(url), tmp_path / "work")
    repo.sync()
    shas = []
    for i in range(3):
        sha = repo.commit(f"bump {i}\n\n{TRAILER}: app {i}", [bump(repo, f"1.{i + 1}.0")])
        shas.append(sha)
        repo.push()
        # A human commit that only *mentions* the key in its body, not as a trailer.
        someone_else_pushes(bare, tmp_path, "README.md", f"{TRAILER}: not a trailer {i}\n".encode())
        repo.sync()

    assert [c.sha for c in repo.log(max_count=2, grep_trailer=TRAILER)] == shas[::-1][:2]
    assert [c.sha for c in repo.log(grep_trailer=TRAILER.lower())] == shas[::-1]
    assert len(repo.log(max_count=4)) == 4


# --------------------------------------------------------------------------- push branch


def test_push_branch_is_created_from_the_checkout_branch_plus_our_commit(
    servers: dict[str, Remote], tmp_path: Path
) -> None:
    bare, url = servers["file"].new_repo()
    repo = GitRepo(servers["file"].settings(url, push_branch="auto"), tmp_path / "work")
    main = repo.sync()

    sha = repo.commit(AUTOMATION_MESSAGE, [bump(repo, "1.1.0")])
    repo.push()

    assert tip(bare, "auto") == sha
    assert git("rev-parse", f"{sha}^", cwd=bare).strip() == main
    assert tip(bare, "main") == main


def test_push_branch_holding_the_same_change_is_not_recommitted(
    servers: dict[str, Remote], tmp_path: Path
) -> None:
    bare, url = servers["file"].new_repo()
    repo = GitRepo(servers["file"].settings(url, push_branch="auto"), tmp_path / "work")
    repo.sync()
    first = repo.commit(AUTOMATION_MESSAGE, [bump(repo, "1.1.0")])
    repo.push()

    repo.sync()
    again = repo.commit(AUTOMATION_MESSAGE, [bump(repo, "1.1.0")])

    assert first is not None
    assert again is None
    assert tip(bare, "auto") == first


def test_push_branch_is_overwritten_from_the_new_checkout_tip_when_main_moved(
    servers: dict[str, Remote], tmp_path: Path
) -> None:
    bare, url = servers["file"].new_repo()
    repo = GitRepo(servers["file"].settings(url, push_branch="auto"), tmp_path / "work")
    repo.sync()
    repo.commit(AUTOMATION_MESSAGE, [bump(repo, "1.1.0")])
    repo.push()
    new_main = someone_else_pushes(bare, tmp_path, "README.md", b"moved\n")

    assert repo.sync() == new_main
    sha = repo.commit(AUTOMATION_MESSAGE, [bump(repo, "1.1.0")])
    repo.push()

    assert sha is not None
    assert tip(bare, "auto") == sha
    assert git("rev-parse", f"{sha}^", cwd=bare).strip() == new_main


def test_push_branch_moved_by_someone_else_after_sync_raises_push_rejected(
    servers: dict[str, Remote], tmp_path: Path
) -> None:
    bare, url = servers["file"].new_repo()
    repo = GitRepo(servers["file"].settings(url, push_branch="auto"), tmp_path / "work")
    repo.sync()
    someone_else_pushes(bare, tmp_path, "README.md", b"x\n")  # main moves
    git("branch", "auto", "main", cwd=bare)  # and someone creates the push branch
    repo.commit(AUTOMATION_MESSAGE, [bump(repo, "1.1.0")])

    with pytest.raises(PushRejected):
        repo.push()
    repo.sync()
    sha = repo.commit(AUTOMATION_MESSAGE, [bump(repo, "1.1.0")])
    repo.push()

    assert tip(bare, "auto") == sha
