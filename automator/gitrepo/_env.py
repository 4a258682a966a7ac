"""The environment every git command runs with: credentials, prompts off, fixed settings.

Why the environment and not ``.git/config`` or the URL: anything in ``.git/config`` or the
remote URL lands on disk (and in ``git remote -v``, crash dumps, backups of the cache
volume); command-line arguments are visible to every user through ``ps``. Environment
variables are visible only to the same user (``/proc/PID/environ``) and die with the
process.

HTTP credentials: a ``http.<scheme://host:port/>.extraHeader = Authorization: Basic ...``
entry passed through ``GIT_CONFIG_COUNT``/``GIT_CONFIG_KEY_n``/``GIT_CONFIG_VALUE_n``.
We chose this over a ``GIT_ASKPASS`` helper because

- it needs no helper script on disk (read-only root filesystems and ``noexec`` temp
  directories are common in containers),
- git never learns a username/password, so no configured credential helper can ever
  *store* it (``credential approve``) -- we additionally reset ``credential.helper``,
- the header is scoped by git's URL matching to the remote's own ``scheme://host:port/``,
  and curl drops custom ``Authorization`` headers on redirects to other hosts,
- it costs no extra 401 round trip per request.

When the server still answers 401 (wrong password), git would fall back to asking:
``GIT_ASKPASS=""`` (an empty value stops the askpass chain) and ``GIT_TERMINAL_PROMPT=0``
make it fail at once instead of hanging a daemon.

SSH: ``GIT_SSH_COMMAND`` with strict host-key checking always on (``BatchMode`` so ssh
never prompts, ``StrictHostKeyChecking=yes`` so an unknown key is an error, never an
automatic trust-on-first-use).
"""

from __future__ import annotations

import base64
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from automator.gitrepo._urls import RemoteUrl, is_http, is_ssh

__all__ = ["GitEnv", "build_git_env", "ssh_command"]

# Settings forced on every command, whatever the user's ~/.gitconfig says, because the
# product's guarantees depend on them.
_FIXED_CONFIG: tuple[tuple[str, str], ...] = (
    # Never store or look up credentials through helpers: we pass them per command.
    ("credential.helper", ""),
    # Bytes in = bytes out: CRLF files must survive untouched (DESIGN §5).
    ("core.autocrlf", "false"),
    ("core.safecrlf", "false"),
    # A commit must not block on a GPG pinentry.
    ("commit.gpgSign", "false"),
)


@dataclass(frozen=True)
class GitEnv:
    """Environment variables for git plus the secret values to redact from its output."""

    env: Mapping[str, str]
    secrets: tuple[str, ...] = field(default=())


def ssh_command(ssh_key_file: Path | None, known_hosts_file: Path | None) -> str:
    """The ``GIT_SSH_COMMAND`` value: our key only, host keys always verified, no prompts."""
    argv = ["ssh"]
    if ssh_key_file is not None:
        argv += ["-i", str(ssh_key_file.expanduser()), "-o", "IdentitiesOnly=yes"]
    if known_hosts_file is not None:
        argv += ["-o", f"UserKnownHostsFile={known_hosts_file.expanduser()}"]
    argv += [
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=30",
    ]
    return shlex.join(argv)


def build_git_env(
    remote: RemoteUrl,
    *,
    username: str | None,
    password: str | None,
    ssh_key_file: Path | None = None,
    known_hosts_file: Path | None = None,
) -> GitEnv:
    """Everything a git command needs in its environment to talk to ``remote``.

    ``username``/``password`` are the effective credentials (configuration first, then
    whatever was embedded in the URL); they are used for http(s) remotes only.
    """
    env: dict[str, str] = {
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "",
        "SSH_ASKPASS": "",
        "GCM_INTERACTIVE": "never",
    }
    config = list(_FIXED_CONFIG)
    secrets: list[str] = []
    origin = remote.http_origin
    if is_http(remote.clean) and origin is not None and password:
        token = base64.b64encode(f"{username or ''}:{password}".encode()).decode("ascii")
        config.append((f"http.{origin}.extraHeader", f"Authorization: Basic {token}"))
        secrets += [password, token]
    if is_ssh(remote.clean):
        env["GIT_SSH_COMMAND"] = ssh_command(ssh_key_file, known_hosts_file)
        env["GIT_SSH_VARIANT"] = "ssh"
    env["GIT_CONFIG_COUNT"] = str(len(config))
    for i, (key, value) in enumerate(config):
        env[f"GIT_CONFIG_KEY_{i}"] = key
        env[f"GIT_CONFIG_VALUE_{i}"] = value
    return GitEnv(env=env, secrets=tuple(secrets))
