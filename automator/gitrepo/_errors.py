"""Translate git's failures into the product's error tree, with actionable messages.

git reports everything as exit code 128 plus English text on stderr (GitPython forces
``LC_ALL=C``), so the classification is by message. The order of the rules matters: ssh
prints the generic "Could not read from remote repository" after *every* ssh failure, so
the specific causes (host key, publickey) are checked first.

Permanent (:class:`GitError`): authentication, host key, missing repository or branch,
server-side refusal. Transient: network trouble (:class:`GitUnavailable`) and a push that
lost a race (:class:`PushRejected`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from automator.errors import AutomatorError, GitError, GitUnavailable, PushRejected

__all__ = ["GitFailure", "classify"]


@dataclass(frozen=True)
class GitFailure:
    """What failed, for building the message. ``output`` is git's stderr (+stdout)."""

    operation: str  # clone, fetch, push, commit, ...
    remote: str  # already redacted
    output: str  # already redacted
    branch: str = ""
    ssh: bool = False


_UNREACHABLE = re.compile(
    r"could not resolve host|connection refused|failed to connect|connection timed out|"
    r"operation timed out|timed out after|network is unreachable|no route to host|"
    r"connection reset|unable to connect|the remote end hung up unexpectedly|early eof|"
    r"rpc failed|returned error: 5\d\d|timeout: the command|unable to look up|"
    r"could not read from remote repository",
    re.IGNORECASE,
)
_HOST_KEY = re.compile(
    r"host key verification failed|no \S+ host key is known|"
    r"remote host identification has changed|host key for .* has changed",
    re.IGNORECASE,
)
_SSH_AUTH = re.compile(r"permission denied \(|too many authentication failures", re.IGNORECASE)
_HTTP_AUTH = re.compile(
    r"authentication failed|could not read (username|password)|returned error: 40[13]|"
    r"terminal prompts disabled|http basic: access denied|invalid username or password",
    re.IGNORECASE,
)
_NOT_FOUND = re.compile(
    r"repository .* not found|does not appear to be a git repository|"
    r"returned error: 404|not a git repository|no such file or directory|"
    r"access denied or repository not exported|repository not exported|no such repository|"
    r"not found: did you run git update-server-info",
    re.IGNORECASE,
)
_MISSING_BRANCH = re.compile(r"couldn't find remote ref|remote branch .* not found", re.IGNORECASE)
_RACE = re.compile(
    r"\[rejected\].*\((fetch first|non-fast-forward|stale info|already exists)\)|"
    r"failed to update ref|cannot lock ref|incorrect old value provided",
    re.IGNORECASE,
)
_NO_PUSH_OPTIONS = re.compile(r"does not support push options", re.IGNORECASE)
_REMOTE_REFUSED = re.compile(r"\[remote rejected\][^\n]*|pre-receive hook declined", re.IGNORECASE)


_BOILERPLATE = (
    "hint:",
    "to ",
    "please make sure you have the correct access rights",
    "and the repository exists",
    "fatal: could not read from remote repository",
)


def _tail(output: str, lines: int = 3) -> str:
    """The last meaningful lines of git's output, on one line (git's advice dropped)."""
    kept = [
        line.strip()
        for line in output.splitlines()
        if line.strip() and not line.strip().lower().startswith(_BOILERPLATE)
    ]
    return " | ".join(kept[-lines:]) or "no output"


def _line(output: str, pattern: re.Pattern[str]) -> str:
    """The line of git's output that matched ``pattern`` (what a human needs to see)."""
    for line in output.splitlines():
        if pattern.search(line):
            return line.strip(" @\t")
    return _tail(output, 1)


def classify(failure: GitFailure) -> AutomatorError:
    """The exception to raise for a failed git command (the caller chains ``from exc``)."""
    out, op, remote = failure.output, failure.operation, failure.remote
    if op == "push" and _RACE.search(out):
        return PushRejected(
            f"push to {remote} was rejected: branch {failure.branch} moved on the remote "
            "(someone else pushed first); will fetch, re-apply and retry"
        )
    if op == "push" and _NO_PUSH_OPTIONS.search(out):
        return GitError(
            f"push to {remote} failed: the server does not accept push options; remove "
            "git.push_options or enable them on the server (git: "
            "receive.advertisePushOptions=true)"
        )
    if op == "push" and (match := _REMOTE_REFUSED.search(out)):
        return GitError(
            f"push to {remote} was refused by the server ({match.group(0).strip()}); check "
            f"the branch protection of {failure.branch} or push to another branch with "
            "git.push_branch"
        )
    if failure.ssh and _HOST_KEY.search(out):
        return GitError(
            f"the ssh host key of {remote} could not be verified ({_line(out, _HOST_KEY)}); "
            "host keys are always checked: add the server's key to git.known_hosts_file "
            "(for example with ssh-keyscan) or fix the file"
        )
    if failure.ssh and _SSH_AUTH.search(out):
        return GitError(
            f"ssh authentication failed for {remote} during {op}; check git.ssh_key_file and "
            "that its public key is authorised on the server"
        )
    if _HTTP_AUTH.search(out):
        return GitError(
            f"authentication failed for {remote} during {op}; check git.username/"
            "git.password_env (or git.password_file)"
        )
    if _MISSING_BRANCH.search(out):
        return GitError(
            f"branch {failure.branch} does not exist on {remote}; create it or fix git.branch"
        )
    if _NOT_FOUND.search(out):
        return GitError(
            f"repository {remote} was not found or is not readable during {op} "
            f"({_line(out, _NOT_FOUND)}); check git.url and the credentials"
        )
    if _UNREACHABLE.search(out):
        return GitUnavailable(f"cannot reach {remote} during {op} ({_tail(out)}); will retry")
    return GitError(f"git {op} failed for {remote}: {_tail(out)}")
