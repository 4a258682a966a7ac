"""The working clone of the config repository: sync, commit, push, log, verify.

Every git command goes through :meth:`GitRepo._run`, which adds the per-command
environment (credentials, prompts off, see ``_env``), a timeout for network commands, and
translates :class:`git.GitCommandError` into our error tree with redacted messages.

Push-branch behaviour (``git.push_branch`` different from ``git.branch``, the review
flow): the push branch is always *the checkout branch's tip plus one automation commit*.
It is created from ``branch`` when it does not exist and rebuilt on ``branch``'s current
tip whenever it must change, so it never goes stale (Flux v2's image-automation-controller
does the same with its default ``GitForcePushBranch`` gate). Unlike Flux, which force-pushes
whatever the branch holds, a person's commit on the push branch is never overwritten:

- before the push, the branch's current tip (fetched by :meth:`sync`) must be either
  already contained in ``branch`` (merged: nothing can be lost) or *ours*. Ours is decided
  from Git alone, so it holds across restarts and replicas: one parent, that parent
  reachable from ``branch``, author *and* committer equal to ``git.author`` (a person's
  amend or rebase changes the committer) and at least one ``Automator-Update`` trailer.
  Anything else stops the push with a :class:`GitError` naming the branch and the fix
  (merge or delete the push branch, or move the commit to ``branch``) and a
  ``git_push_branch_not_ours`` warning; the cycle reports it, every cycle, until fixed;
- the overwrite is a ``--force-with-lease`` on exactly that checked tip (or "must not
  exist"), so a person pushing between our check and our push makes the push fail with
  :class:`PushRejected`; the retry fetches again and finds the person's commit;
- :meth:`commit` returns ``None`` when the push branch already holds exactly this change
  on top of the current checkout tip, so a pending, unmerged update is not re-committed
  and force-pushed every cycle (the churn reported in fluxcd/flux2#3384).

``git.push_options`` are passed as ``git push -o OPTION`` (GitLab opens merge requests
that way); a server that does not advertise push options refuses the push.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import git
import structlog

from automator.config import GitSettings, read_secret
from automator.errors import ConfigError, GitError, PushRejected
from automator.gitrepo._env import GitEnv, build_git_env
from automator.gitrepo._errors import GitFailure, classify
from automator.gitrepo._log import LOG_FORMAT, CommitInfo, parse_log
from automator.gitrepo._sign import signing_failure, signing_setup
from automator.gitrepo._updates import UPDATES_FORMAT, UpdateRecord, parse_updates
from automator.gitrepo._urls import is_http, is_ssh, parse_remote_url, redact
from automator.gitrepo._verify import GitResult, Signature, verify_signature

__all__ = ["GitRepo"]

log = structlog.get_logger(__name__)

_REMOTE = "origin"
# The trailer key of every automation change (engine.TRAILER; gitrepo sits below the
# engine in the layers, a unit test keeps the two equal).
AUTOMATION_TRAILER = "Automator-Update"
_NETWORK_TIMEOUT = 300.0


class GitRepo:
    """One working clone, owned by this process, kept an exact copy of the remote branch.

    The work tree is disposable: :meth:`sync` throws away anything a killed earlier run
    left behind, so a commit only ever contains what :meth:`commit` was asked to stage.
    """

    def __init__(
        self, settings: GitSettings, workdir: Path, *, timeout: float = _NETWORK_TIMEOUT
    ) -> None:
        self._settings = settings
        self._workdir = workdir.expanduser().absolute()
        self._timeout = timeout
        self._remote = parse_remote_url(settings.url)
        self._display_url = redact(settings.url)
        self._git = git.Git(str(self._workdir))
        # Tip of the push branch seen by the last sync (None: it does not exist); only
        # used when push_branch differs from branch, as the --force-with-lease value.
        self._push_branch_tip: str | None = None
        # Why that tip must not be overwritten (None: it is ours, merged, or absent).
        self._push_branch_foreign: str | None = None
        if self._remote.password is not None:
            log.warning(
                "git_url_contains_password",
                url=self._display_url,
                fix="move the secret to git.password_env or git.password_file",
            )

    @property
    def path(self) -> Path:
        """The work tree (files the manifests layer reads and rewrites)."""
        return self._workdir

    # ------------------------------------------------------------------ public API

    def sync(self) -> str:
        """Make the work tree an exact copy of the remote branch; return the HEAD sha.

        Clones when the work tree is missing, otherwise fetches incrementally (a healthy
        clone is never re-cloned). Then checks out ``branch``, ``reset --hard`` to the
        remote tip and ``clean -ffdx``. A changed ``git.url`` is applied with set-url.

        A clone a killed run (or a full disk) left corrupt (garbage index, bad refs, a
        damaged object store) makes some step fail; when ``git fsck`` then confirms the
        damage, the clone is thrown away and made afresh, once. A failure on an intact
        clone (auth, unreachable remote, missing branch) is raised as it is.
        """
        env = self._env()
        existed = (self._workdir / ".git").exists()
        try:
            return self._sync(env)
        except GitError:
            if not existed or self._intact(env):
                raise
        log.warning("git_workdir_broken", workdir=str(self._workdir), action="reclone")
        shutil.rmtree(self._workdir)
        return self._sync(env)

    def _intact(self, env: GitEnv) -> bool:
        """``git fsck`` finds the clone's refs, index and objects sound (only run after a
        failure, since it reads every object)."""
        args = ("fsck", "--connectivity-only", "--no-dangling", "--no-progress")
        return self._run_status(*args, env=env).status == 0

    def _sync(self, env: GitEnv) -> str:
        self._prepare_workdir(env)
        branch = self._settings.branch
        refspecs = [f"+refs/heads/{branch}:refs/remotes/{_REMOTE}/{branch}"]
        push_branch = self._settings.target_branch
        switch = push_branch != branch
        if switch:
            self._push_branch_tip = self._remote_tip(push_branch, env)
            if self._push_branch_tip is not None:
                refspecs.append(f"+refs/heads/{push_branch}:refs/remotes/{_REMOTE}/{push_branch}")
            else:
                self._run("update-ref", "-d", f"refs/remotes/{_REMOTE}/{push_branch}", env=env)
        self._run(
            "fetch",
            "--quiet",
            "--no-tags",
            "--no-write-fetch-head",
            _REMOTE,
            *refspecs,
            env=env,
            operation="fetch",
            network=True,
        )
        tracking = f"refs/remotes/{_REMOTE}/{branch}"
        self._run("checkout", "--quiet", "--force", "-B", branch, tracking, env=env)
        self._run("reset", "--quiet", "--hard", tracking, env=env)
        self._run("clean", "-ffdx", "--quiet", env=env)
        head = self._rev_parse("HEAD", env)
        self._push_branch_foreign = None
        if switch and self._push_branch_tip is not None:
            # What fetch got, not what ls-remote saw a moment earlier: a push in between
            # must be judged (and leased on) as the commit it is.
            self._push_branch_tip = self._rev_parse(f"refs/remotes/{_REMOTE}/{push_branch}", env)
            self._push_branch_foreign = self._foreign_reason(self._push_branch_tip, env)
        log.info(
            "git_fetch",
            url=self._display_url,
            branch=branch,
            head=head,
            push_branch=push_branch if switch else None,
            push_branch_tip=self._push_branch_tip if switch else None,
        )
        return head

    def commit(self, message: str, files: Sequence[str]) -> str | None:
        """Commit exactly ``files`` (repo-relative) as the configured author and committer.

        Returns the new sha, or ``None`` when there is nothing to commit: the staged tree
        equals HEAD's, or (push branch mode) the push branch already holds this very
        change on top of the current checkout tip.
        """
        paths = [_checked_path(f) for f in files]
        env = self._env()
        # Start from HEAD's index so nothing staged by anyone else rides along.
        self._run("reset", "--quiet", env=env)
        if paths:
            literal = {**env.env, "GIT_LITERAL_PATHSPECS": "1"}
            # Paths and message go through files, not argv: a cycle that updates thousands
            # of workloads would exceed the kernel's per-argument and total argv limits.
            with self._scratch("pathspec", "\0".join(paths)) as pathspec:
                self._run(
                    "add",
                    "--all",
                    f"--pathspec-from-file={pathspec}",
                    "--pathspec-file-nul",
                    env=GitEnv(literal, env.secrets),
                )
        tree = self._run("write-tree", env=env)
        if tree == self._rev_parse("HEAD^{tree}", env):
            log.info("git_commit_skipped", reason="no_change", files=len(paths))
            return None
        if self._push_branch_already_has(tree, env):
            log.info(
                "git_commit_skipped",
                reason="push_branch_up_to_date",
                push_branch=self._settings.target_branch,
                files=len(paths),
            )
            return None
        author = self._settings.author
        identity = {
            "GIT_AUTHOR_NAME": author.name,
            "GIT_AUTHOR_EMAIL": author.email,
            "GIT_COMMITTER_NAME": author.name,
            "GIT_COMMITTER_EMAIL": author.email,
        }
        with contextlib.ExitStack() as stack:
            message_file = stack.enter_context(self._scratch("message", message))
            signing = self._settings.signing
            args = ["commit", "--no-gpg-sign"]
            commit_env = GitEnv({**env.env, **identity}, env.secrets)
            if signing is not None:
                # -c settings and -S only for this command: nothing lands in .git/config.
                sign = stack.enter_context(signing_setup(signing, timeout=self._timeout))
                args = [*sign.args(), "commit", "-S"]
                commit_env = GitEnv(
                    {**commit_env.env, **sign.env}, commit_env.secrets + sign.secrets
                )
            args += ["--quiet", "--no-verify", "--cleanup=whitespace", f"--file={message_file}"]
            try:
                self._run(*args, env=commit_env, operation="commit")
            except GitError as exc:
                if signing is None:
                    raise
                error = signing_failure(signing, _detail(str(exc)))
                log.error("git_commit_signing_failed", error=str(error), format=signing.format)
                raise error from exc
        sha = self._rev_parse("HEAD", env)
        log.info(
            "git_commit",
            sha=sha,
            files=len(paths),
            branch=self._settings.branch,
            signed=signing.format if signing is not None else None,
        )
        return sha

    @contextlib.contextmanager
    def _scratch(self, name: str, text: str) -> Iterator[str]:
        """A temporary file inside ``.git`` (never in the work tree, so never committed)."""
        path = self._workdir / ".git" / f"automator-{name}"
        path.write_text(text, encoding="utf-8")
        try:
            yield str(path)
        finally:
            path.unlink(missing_ok=True)

    def push(self) -> None:
        """Push HEAD to ``refs/heads/<target_branch>``.

        Same branch: a plain fast-forward push; losing the race is :class:`PushRejected`.
        Push branch: overwrite with a lease on the tip seen by :meth:`sync` (Flux's force
        push, minus clobbering a concurrent writer).
        """
        env = self._env()
        target = self._settings.target_branch
        args = ["push", "--quiet", "--no-verify", "--porcelain"]
        for option in self._settings.push_options:
            args += ["-o", option]
        switch = target != self._settings.branch
        if switch and self._push_branch_foreign is not None:
            self._refuse_foreign_push_branch(target, self._push_branch_foreign)
        if switch:
            args.append(f"--force-with-lease=refs/heads/{target}:{self._push_branch_tip or ''}")
        args += [_REMOTE, f"HEAD:refs/heads/{target}"]
        head = self._rev_parse("HEAD", env)
        try:
            self._run(*args, env=env, operation="push", network=True, branch=target)
        except PushRejected:
            log.warning("git_push_rejected", url=self._display_url, branch=target, head=head)
            raise
        if switch:
            self._push_branch_tip = head
        log.info("git_push", url=self._display_url, branch=target, head=head)

    def log(self, max_count: int = 100, *, grep_trailer: str | None = None) -> list[CommitInfo]:
        """Commits on the current branch, newest first; trailers parsed back.

        With ``grep_trailer``, only commits carrying a trailer with that key (compared
        case-insensitively, as git does). git's ``--grep`` pre-filters; the exact check
        is on the parsed trailers, and we page until ``max_count`` commits match.
        """
        if max_count <= 0:
            return []
        env = self._env()
        if self._run("rev-parse", "--verify", "--quiet", "HEAD", env=env, check=False) == "":
            return []
        args = ["log", "-z", f"--format={LOG_FORMAT}", f"--max-count={max_count}"]
        if grep_trailer is not None:
            args += ["--regexp-ignore-case", "--extended-regexp", f"--grep=^{_ere(grep_trailer)}:"]
        found: list[CommitInfo] = []
        skip = 0
        while len(found) < max_count:
            batch = parse_log(
                self._run(*args, f"--skip={skip}", "HEAD", env=env, strip=False, operation="log")
            )
            found += [
                c
                for c in batch
                if grep_trailer is None
                or any(k.lower() == grep_trailer.lower() for k, _ in c.trailers)
            ]
            if len(batch) < max_count:
                break
            skip += len(batch)
        return found[:max_count]

    def updates(self, key: str) -> dict[tuple[str, str, str], UpdateRecord]:
        """The newest ``key`` line (``Automator-Update``) per field on HEAD's history.

        HEAD is the checkout branch's tip right after :meth:`sync`, never the push
        branch: an update still waiting for review there is not what the tree says yet.
        One ``git log`` whatever the repository's size: ``--grep`` keeps only commits
        whose message has such a line, and the whole body is read (see ``_updates``).
        """
        env = self._env()
        if self._run("rev-parse", "--verify", "--quiet", "HEAD", env=env, check=False) == "":
            return {}
        out = self._run(
            "log",
            "-z",
            f"--format={UPDATES_FORMAT}",
            "--regexp-ignore-case",
            "--extended-regexp",
            f"--grep=^{_ere(key)}:",
            "HEAD",
            env=env,
            strip=False,
            operation="log",
        )
        try:
            return parse_updates(out, key)
        except ValueError as exc:
            raise GitError(
                f"git log of {self._display_url} branch {self._settings.branch}: could not "
                f"read the {key} lines back ({exc}); check the repository with git fsck"
            ) from exc

    def last_change(self, file: str, since: str) -> CommitInfo | None:
        """The newest commit after ``since`` (exclusive) up to HEAD that touched ``file``."""
        env = self._env()
        out = self._run(
            "log",
            "-z",
            "-1",
            f"--format={LOG_FORMAT}",
            f"{since}..HEAD",
            "--",
            _checked_path(file),
            env=GitEnv({**env.env, "GIT_LITERAL_PATHSPECS": "1"}, env.secrets),
            strip=False,
            operation="log",
            check=False,
        )
        found = parse_log(out) if out else []
        return found[0] if found else None

    def verify_commit(
        self,
        rev: str = "HEAD",
        *,
        allowed_signers_file: Path | None = None,
        keyring_file: Path | None = None,
    ) -> Signature:
        """Verify that the commit ``rev`` names is signed by a trusted key; return who.

        Trust comes only from the given sources: SSH keys listed in
        ``allowed_signers_file`` (git's ``gpg.ssh.allowedSignersFile`` format) and OpenPGP
        public keys in ``keyring_file`` (armoured or binary). With both, a commit signed
        by either kind passes. A tag is peeled to its commit and the *commit's* signature
        is checked. Raises :class:`~automator.errors.SignatureError` (unsigned, untrusted
        or expired key, bad signature, trust file or gpg/ssh-keygen missing) with a
        message naming the commit and the fix; logging that refusal is the caller's job.
        Reads the local clone only: call :meth:`sync` first.
        """
        if allowed_signers_file is None and keyring_file is None:
            raise ValueError("verify_commit needs allowed_signers_file, keyring_file or both")
        env = self._verify_env()
        sha = self._run(
            "rev-parse",
            "--verify",
            "--quiet",
            "--end-of-options",
            f"{rev}^{{commit}}",
            env=env,
            check=False,
        )
        if not sha:
            raise GitError(
                f"{rev!r} does not name a commit in {self._workdir}; run sync first or fix "
                "the revision"
            )
        raw = self._run("cat-file", "commit", sha, env=env, strip=False, operation="verify")

        def run_git(args: Sequence[str], extra: Mapping[str, str]) -> GitResult:
            return self._run_status(*args, env=GitEnv({**env.env, **extra}, env.secrets))

        signature = verify_signature(
            sha,
            raw,
            allowed_signers_file=allowed_signers_file,
            keyring_file=keyring_file,
            run_git=run_git,
            timeout=self._timeout,
        )
        log.info(
            "git_signature_verified",
            commit=sha,
            format=signature.format,
            signer=signature.signer,
            key=signature.key,
        )
        return signature

    # ------------------------------------------------------------------ internals

    def _env(self) -> GitEnv:
        """Per-command environment; the password is read now (rotated secrets apply)."""
        s = self._settings
        password = read_secret(s.password, key="git.password")
        username = s.username
        if is_http(self._remote.clean):
            password = password if password is not None else self._remote.password
            username = username if username is not None else self._remote.username
            if password and not username:
                raise ConfigError(
                    "git.username: required when git.password_env or git.password_file is "
                    "set for an http(s) remote; add it (any non-empty name works for tokens)"
                )
        return build_git_env(
            self._remote,
            username=username,
            password=password,
            ssh_key_file=s.ssh_key_file if is_ssh(self._remote.clean) else None,
            known_hosts_file=s.known_hosts_file if is_ssh(self._remote.clean) else None,
        )

    def _verify_env(self) -> GitEnv:
        """Environment for signature checks: no credentials, no user or system git config.

        verify-commit never talks to the remote, so the credentials stay out of the
        environment gpg and ssh-keygen inherit; and the user's ``~/.gitconfig`` (or the
        system's) must not be able to swap the verifier or the trust file.
        """
        base = build_git_env(self._remote, username=None, password=None)
        env = {**base.env, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
        return GitEnv(env, base.secrets)

    def _prepare_workdir(self, env: GitEnv) -> None:
        """Ensure a usable repository with ``origin`` = the configured (clean) URL."""
        wd = self._workdir
        dot_git = wd / ".git"
        if dot_git.is_dir() and not self._is_healthy_repo(env):
            log.warning("git_workdir_broken", workdir=str(wd), action="reclone")
            shutil.rmtree(wd)
        if wd.exists() and not dot_git.exists() and any(wd.iterdir()):
            raise GitError(
                f"work directory {wd} exists, is not empty and is not a git clone; "
                "empty it or point workdir at another directory"
            )
        if not dot_git.exists():
            wd.mkdir(parents=True, exist_ok=True)
            self._run("init", "--quiet", f"--initial-branch={self._settings.branch}", env=env)
            self._run("remote", "add", _REMOTE, self._remote.clean, env=env)
            log.info("git_clone", url=self._display_url, workdir=str(wd))
            return
        current = self._run("config", "--get", f"remote.{_REMOTE}.url", env=env, check=False)
        if current == "":
            self._run("remote", "add", _REMOTE, self._remote.clean, env=env)
        elif current != self._remote.clean:
            self._run("remote", "set-url", _REMOTE, self._remote.clean, env=env)
            log.info(
                "git_remote_url_changed",
                old_url=redact(current),
                url=self._display_url,
                workdir=str(wd),
            )

    def _is_healthy_repo(self, env: GitEnv) -> bool:
        """The work tree is a repository of its own (not a parent's), and not corrupt."""
        # A killed git leaves its lock behind and blocks every later command; we are the
        # only user of this clone, so a lock at start is always stale.
        (self._workdir / ".git" / "index.lock").unlink(missing_ok=True)
        top = self._run("rev-parse", "--show-toplevel", env=env, check=False)
        return top != "" and Path(top).resolve() == self._workdir.resolve()

    def _remote_tip(self, branch: str, env: GitEnv) -> str | None:
        out = self._run(
            "ls-remote",
            "--heads",
            _REMOTE,
            f"refs/heads/{branch}",
            env=env,
            operation="ls-remote",
            network=True,
            branch=branch,
        )
        for line in out.splitlines():
            sha, _, ref = line.partition("\t")
            if ref == f"refs/heads/{branch}":
                return sha
        return None

    def _foreign_reason(self, tip: str, env: GitEnv) -> str | None:
        """Why the push branch's ``tip`` is not the automator's to overwrite, or None.

        None when ``tip`` is already in ``branch`` (merged or never diverged) or is one
        automation commit on top of a commit of ``branch`` (see the module docstring).
        """
        tracking = f"refs/remotes/{_REMOTE}/{self._settings.branch}"
        if self._is_ancestor(tip, tracking, env):
            return None
        fields = self._run(
            "show",
            "--no-patch",
            f"--format=%P%x00%an <%ae>%x00%cn <%ce>%x00%(trailers:key={AUTOMATION_TRAILER})",
            tip,
            env=env,
        ).split("\0")
        parents, author, committer, trailers = [*fields, "", "", "", ""][:4]
        a = self._settings.author
        ours = f"{a.name} <{a.email}>"
        if len(parents.split()) != 1:
            return "it is a merge commit" if parents.strip() else "it has no parent"
        if author != ours or committer != ours:
            who = author if author != ours else committer
            return f"it was {'authored' if author != ours else 'committed'} by {who}, not {ours}"
        if not trailers.strip():
            return f"it carries no {AUTOMATION_TRAILER} trailer"
        if not self._is_ancestor(parents.split()[0], tracking, env):
            return f"it sits on commits that are not on {self._settings.branch}"
        return None

    def _refuse_foreign_push_branch(self, target: str, reason: str) -> None:
        tip = self._push_branch_tip or ""
        branch = self._settings.branch
        log.warning(
            "git_push_branch_not_ours",
            url=self._display_url,
            push_branch=target,
            branch=branch,
            tip=tip,
            reason=reason,
        )
        raise GitError(
            f"push branch {target} on {self._display_url} holds commit {tip[:7]} that the "
            f"automator did not make ({reason}); it is never overwritten, so no update is "
            f"pushed: merge {target} into {branch} or delete it, or push that commit to "
            f"{branch}; the next cycle then rebuilds {target} from {branch}"
        )

    def _is_ancestor(self, rev: str, of: str, env: GitEnv) -> bool:
        return self._run_status("merge-base", "--is-ancestor", rev, of, env=env).status == 0

    def _push_branch_already_has(self, tree: str, env: GitEnv) -> bool:
        if (
            self._settings.target_branch == self._settings.branch
            or not self._push_branch_tip
            or self._push_branch_foreign is not None
        ):
            return False
        tip = self._push_branch_tip
        parent = self._run("rev-parse", "--verify", "--quiet", f"{tip}^", env=env, check=False)
        tip_tree = self._run(
            "rev-parse", "--verify", "--quiet", f"{tip}^{{tree}}", env=env, check=False
        )
        return tip_tree == tree and parent == self._rev_parse("HEAD", env)

    def _rev_parse(self, rev: str, env: GitEnv) -> str:
        return self._run("rev-parse", "--verify", "--quiet", rev, env=env)

    def _run(
        self,
        *args: str,
        env: GitEnv,
        operation: str | None = None,
        network: bool = False,
        branch: str | None = None,
        check: bool = True,
        strip: bool = True,
    ) -> str:
        """Run one git command in the work tree; stdout as text.

        ``check=False`` returns ``""`` on failure instead of raising (for probes).
        Failures of network commands are classified (unreachable, auth, rejected...);
        local ones become :class:`GitError` naming the command.
        """
        kwargs: dict[str, Any] = {
            "env": dict(env.env),
            "strip_newline_in_stdout": strip,
        }
        if network:
            kwargs["kill_after_timeout"] = self._timeout
        try:
            out: str = self._git.execute(["git", *args], **kwargs)
        except git.GitCommandError as exc:
            if not check:
                return ""
            op = operation or args[0]
            output = redact(f"{_text(exc.stderr)}\n{_text(exc.stdout)}", env.secrets)
            failure = GitFailure(
                operation=op,
                remote=self._display_url,
                output=output,
                branch=branch or self._settings.branch,
                ssh=is_ssh(self._remote.clean),
            )
            error = classify(failure)
            log.warning(
                "git_command_failed",
                operation=op,
                url=self._display_url,
                error=str(error),
                error_type=type(error).__name__,
            )
            raise error from exc
        return out

    def _run_status(self, *args: str, env: GitEnv) -> GitResult:
        """Run a local git command whose non-zero exit is an answer (``verify-commit``).

        Same environment and redaction as :meth:`_run`, plus the timeout: gpg and
        ssh-keygen run underneath and must not hang the loop (killed: status < 0).
        """
        status, out, err = self._git.execute(
            ["git", *args],
            env=dict(env.env),
            with_extended_output=True,
            with_exceptions=False,
            stdout_as_string=True,
            kill_after_timeout=self._timeout,
        )
        return GitResult(status=status, output=redact(f"{out}\n{err}", env.secrets))


def _text(value: object) -> str:
    """git's output from a GitCommandError, without GitPython's ``  stderr: '...'`` wrapper."""
    text = value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value or "")
    match = re.fullmatch(r"\s*std(?:err|out): '(.*)'\s*", text, flags=re.DOTALL)
    return match.group(1) if match else text


def _detail(message: str) -> str:
    """git's own words from a ``git commit failed for URL: ...`` error message."""
    return message.split(": ", 1)[1] if ": " in message else message


def _ere(text: str) -> str:
    """``text`` as a literal inside a POSIX extended regular expression."""
    return "".join(f"\\{c}" if c in r".[]{}()\*+?^$|" else c for c in text)


def _checked_path(rel: str) -> str:
    """A repo-relative path, refused when absolute or escaping the repository."""
    p = PurePosixPath(rel.replace(os.sep, "/"))
    if not rel or p.is_absolute() or ".." in p.parts:
        raise ValueError(f"{rel!r} is not a path inside the repository (relative, no '..')")
    return str(p)
