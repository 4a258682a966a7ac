"""Classification of git's stderr into permanent and transient errors, with the fix."""

from __future__ import annotations

import pytest

from automator.errors import AutomatorError, GitError, GitUnavailable, PushRejected
from automator.gitrepo._errors import GitFailure, classify
from automator.gitrepo._repo import _checked_path, _ere, _text

REMOTE = "http://bot:***@h/r.git"


def _classify(output: str, op: str = "fetch", *, ssh: bool = False) -> AutomatorError:
    return classify(GitFailure(op, REMOTE, output, branch="main", ssh=ssh))


@pytest.mark.parametrize(
    "stderr",
    [
        " ! [rejected]        HEAD -> main (fetch first)\nerror: failed to push some refs",
        " ! [rejected]        HEAD -> main (non-fast-forward)",
        " ! [rejected]        HEAD -> auto (stale info)",
    ],
)
def test_a_push_that_lost_the_race_is_push_rejected(stderr: str) -> None:
    error = _classify(stderr, "push")

    assert isinstance(error, PushRejected)
    assert "will fetch" in str(error)
    assert REMOTE in str(error)


def test_a_push_refused_by_a_server_hook_is_permanent_and_names_push_branch() -> None:
    error = _classify(" ! [remote rejected] HEAD -> main (pre-receive hook declined)", "push")

    assert type(error) is GitError
    assert "git.push_branch" in str(error)


@pytest.mark.parametrize(
    "stderr",
    [
        "fatal: could not read Username for 'http://h': terminal prompts disabled",
        "fatal: Authentication failed for 'http://h/r.git/'",
        "fatal: unable to access 'https://h/r.git/': The requested URL returned error: 403",
    ],
)
def test_http_auth_failures_are_permanent_and_name_the_credential_keys(stderr: str) -> None:
    error = _classify(stderr)

    assert type(error) is GitError
    assert "git.username/git.password_env" in str(error)


def test_ssh_auth_failure_names_the_key_file() -> None:
    error = _classify(
        "root@h: Permission denied (publickey).\nfatal: Could not read from remote repository.",
        ssh=True,
    )

    assert type(error) is GitError
    assert "git.ssh_key_file" in str(error)


def test_an_unverifiable_host_key_is_permanent_even_though_ssh_also_says_could_not_read() -> None:
    error = _classify(
        "Host key verification failed.\nfatal: Could not read from remote repository.\n\n"
        "Please make sure you have the correct access rights\nand the repository exists.",
        ssh=True,
    )

    assert type(error) is GitError
    assert "git.known_hosts_file" in str(error)
    assert "Host key verification failed." in str(error)


@pytest.mark.parametrize(
    "stderr",
    [
        "fatal: unable to access 'http://h/': Failed to connect to h port 80: Connection refused",
        "fatal: unable to access 'https://h/': Could not resolve host: h",
        "ssh: connect to host h port 22: Connection refused\n"
        "fatal: Could not read from remote repository.",
        "fatal: unable to access 'https://h/': The requested URL returned error: 503",
        'Timeout: the command "git fetch" did not complete in 300 secs.',
    ],
)
def test_network_trouble_is_transient(stderr: str) -> None:
    error = _classify(stderr, ssh=stderr.startswith("ssh"))

    assert isinstance(error, GitUnavailable)
    assert "will retry" in str(error)


def test_a_missing_branch_names_git_branch() -> None:
    error = _classify("fatal: couldn't find remote ref refs/heads/main")

    assert type(error) is GitError
    assert "branch main does not exist" in str(error)
    assert "git.branch" in str(error)


def test_a_missing_repository_names_git_url() -> None:
    error = _classify("fatal: repository 'http://h/r.git/' not found")

    assert type(error) is GitError
    assert "git.url" in str(error)


def test_unknown_failures_keep_gits_last_lines_without_hints() -> None:
    error = _classify("hint: do this\nerror: something odd\nfatal: very odd", "commit")

    assert str(error) == f"git commit failed for {REMOTE}: error: something odd | fatal: very odd"


def test_gitpythons_stderr_wrapper_is_removed() -> None:
    assert _text("\n  stderr: 'fatal: boom\nmore'") == "fatal: boom\nmore"
    assert _text(b"raw") == "raw"
    assert _text(None) == ""


@pytest.mark.parametrize("bad", ["", "/etc/passwd", "../outside.yaml", "a/../../b"])
def test_paths_outside_the_repository_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="inside the repository"):
        _checked_path(bad)


def test_repo_relative_paths_are_normalised() -> None:
    assert _checked_path("clusters/./prod/app.yaml") == "clusters/prod/app.yaml"


def test_trailer_keys_are_escaped_for_gits_extended_regex() -> None:
    assert _ere("A.b+c(d)") == r"A\.b\+c\(d\)"
