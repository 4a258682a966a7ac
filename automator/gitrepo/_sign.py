"""Sign automation commits (``git.signing``) with an SSH or OpenPGP key, in isolation.

git does the signing (``git commit -S``, which runs ssh-keygen or gpg); this module
prepares, for exactly one commit, the ``-c`` settings and environment git needs, and
removes everything afterwards. Nothing is written to the user's git configuration, to
the clone's ``.git/config`` or to ``~/.gnupg``: the settings travel as ``-c`` options
(paths and a fingerprint, never secrets) and the secrets live in a private directory.

Decisions, and why:

- **SSH passphrases through a private askpass helper, not an agent or a decrypted
  copy.** ssh-keygen asks for a passphrase itself when the key is encrypted, and with
  ``SSH_ASKPASS_REQUIRE=force`` it asks the ``SSH_ASKPASS`` program instead of a
  terminal. The helper is a two-line shell script in a fresh 0700 directory that prints
  a 0600 passphrase file next to it; both are removed when the commit is made. We chose
  this over the alternatives because the decrypted key never exists anywhere but inside
  the ssh-keygen process: a decrypted copy on disk would survive a ``kill -9`` of the
  automator, and a throwaway ``ssh-agent`` would survive it as a process holding the
  key, reachable through its socket. A crash here leaves at most the passphrase file in
  a 0700 directory, which the process environment held anyway. The helper must be
  executable, so ``$TMPDIR`` must not be mounted ``noexec`` for passphrase-protected SSH
  keys. Without a passphrase, the helper is ``false``: an encrypted key then fails at
  once instead of prompting on a terminal. The user's ``SSH_AUTH_SOCK`` is cleared so
  ssh-keygen never signs with a key an agent happens to hold.
- **OpenPGP: a throwaway GNUPGHOME per commit, not per process.** The armored secret
  key is imported into a fresh 0700 home (``gpg.conf`` sets ``pinentry-mode loopback``
  and, when configured, ``passphrase-file`` pointing at a 0600 file in that home, so the
  passphrase is never on an argument list), git signs with the key's fingerprint, then
  ``gpgconf --kill gpg-agent`` stops the agent signing started and the home is removed.
  Per commit costs one import (tens of milliseconds, once per cycle that changes
  something) and buys: no gpg-agent caching the unlocked key between cycles, a rotated
  key file picked up at the next commit, and nothing to clean up at exit.
- **Programs pinned by absolute path** (``gpg.program``, ``gpg.ssh.program``), so a
  PATH or configuration change cannot swap the signer.
- **A failed signature is permanent and nothing is pushed:** :func:`signing_failure`
  turns git's error into a :class:`~automator.errors.GitError` that names ``git.signing``
  and the fix; the commit was never made, so there is nothing to push.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from automator.config import Signing, read_secret
from automator.errors import GitError

__all__ = ["SigningSetup", "signing_failure", "signing_setup"]

_GPG_CONF = "pinentry-mode loopback\nbatch\nno-tty\nno-auto-key-retrieve\n"


@dataclass(frozen=True)
class SigningSetup:
    """What ``git commit -S`` needs for one signature: ``-c`` pairs, environment, secrets."""

    config: tuple[tuple[str, str], ...]
    env: Mapping[str, str]
    secrets: tuple[str, ...] = field(default=())

    def args(self) -> list[str]:
        """``-c key=value`` arguments for git (none of them secret)."""
        return [arg for key, value in self.config for arg in ("-c", f"{key}={value}")]


@contextlib.contextmanager
def signing_setup(signing: Signing, *, timeout: float) -> Iterator[SigningSetup]:
    """Prepare one signature with ``signing``'s key; everything is removed on exit."""
    passphrase = read_secret(signing.passphrase, key="git.signing.passphrase") or None
    key_file = signing.key_file.expanduser().absolute()
    _check_key_file(key_file, signing.format)
    with tempfile.TemporaryDirectory(
        prefix=f"automator-sign-{signing.format}-", ignore_cleanup_errors=True
    ) as tmp:
        private = Path(tmp)
        os.chmod(private, 0o700)
        secrets = (passphrase,) if passphrase else ()
        if signing.format == "ssh":
            yield SigningSetup(_ssh_config(key_file), _ssh_env(private, passphrase), secrets)
            return
        home = private / "gnupg"
        home.mkdir(mode=0o700)
        try:
            config = _openpgp_config(home, key_file, passphrase, timeout)
            yield SigningSetup(config, {"GNUPGHOME": str(home)}, secrets)
        finally:
            _kill_agent(home)


def signing_failure(signing: Signing, detail: str) -> GitError:
    """The error for a commit git could not sign (``detail``: git's redacted output)."""
    tool = "ssh-keygen" if signing.format == "ssh" else "gpg"
    return GitError(
        f"git.signing: the commit could not be signed with the {signing.format} key "
        f"{signing.key_file} ({detail}); nothing was pushed. Check that the passphrase in "
        "git.signing.passphrase_env (or passphrase_file) is the key's, that key_file holds "
        f"the private key ({_KEY_HINT[signing.format]}) and that {tool} works on this "
        "machine"
    )


_KEY_HINT = {
    "ssh": "an OpenSSH private key, e.g. from ssh-keygen -t ed25519",
    "openpgp": "an armored secret key from gpg --export-secret-keys --armor KEYID",
}


def _check_key_file(key_file: Path, fmt: str) -> None:
    try:
        with key_file.open("rb") as key:
            key.read(1)
    except OSError as exc:
        raise GitError(
            f"git.signing.key_file: cannot read {key_file} ({exc.strerror}); fix the path "
            f"or its permissions ({_KEY_HINT[fmt]})"
        ) from exc


def _program(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise GitError(
            f"git.signing: {name} is not installed or not on PATH, so commits cannot be "
            f"signed; install {package} or remove git.signing"
        )
    return path


# --------------------------------------------------------------------------- SSH


def _ssh_config(key_file: Path) -> tuple[tuple[str, str], ...]:
    ssh_keygen = _program("ssh-keygen", "openssh-client (OpenSSH 8.2 or newer)")
    return (
        ("gpg.format", "ssh"),
        ("gpg.ssh.program", ssh_keygen),
        ("user.signingkey", str(key_file)),
    )


def _ssh_env(private: Path, passphrase: str | None) -> dict[str, str]:
    if passphrase:
        secret = private / "passphrase"
        _write_private(secret, passphrase, 0o600)
        askpass = private / "askpass"
        _write_private(askpass, f"#!/bin/sh\nexec cat {shlex.quote(str(secret))}\n", 0o700)
        helper = str(askpass)
    else:
        helper = shutil.which("false") or "/bin/false"
    return {"SSH_ASKPASS": helper, "SSH_ASKPASS_REQUIRE": "force", "SSH_AUTH_SOCK": ""}


def _write_private(path: Path, text: str, mode: int) -> None:
    """Create ``path`` with ``mode`` from the start (never briefly readable by others)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)


# --------------------------------------------------------------------------- OpenPGP


def _openpgp_config(
    home: Path, key_file: Path, passphrase: str | None, timeout: float
) -> tuple[tuple[str, str], ...]:
    gpg = _program("gpg", "gnupg")
    conf = _GPG_CONF
    if passphrase:
        secret = home / "passphrase"
        _write_private(secret, passphrase, 0o600)
        conf += f"passphrase-file {secret}\n"
    _write_private(home / "gpg.conf", conf, 0o600)
    imported = _gpg(gpg, home, timeout, "--import", str(key_file))
    listed = _gpg(gpg, home, timeout, "--with-colons", "--list-secret-keys")
    fingerprints = _secret_fingerprints(listed.stdout)
    if len(fingerprints) != 1:
        found = "no secret key" if not fingerprints else f"{len(fingerprints)} secret keys"
        why = " | ".join(line for line in imported.stderr.splitlines()[-2:] if line.strip())
        raise GitError(
            f"git.signing.key_file: {key_file} holds {found} gpg can import"
            f"{f' ({why})' if why and not fingerprints else ''}; write exactly one armored "
            "secret key to it with `gpg --export-secret-keys --armor KEYID > FILE`"
        )
    return (
        ("gpg.format", "openpgp"),
        ("gpg.program", gpg),
        ("user.signingkey", fingerprints[0]),
    )


def _gpg(gpg: str, home: Path, timeout: float, *args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [gpg, "--homedir", str(home), *args],
            capture_output=True,
            text=True,
            env=_tool_env(home),
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise GitError(
            f"git.signing: gpg did not finish importing the signing key within {timeout:g}s; "
            "check that gpg works on this machine"
        ) from exc


def _secret_fingerprints(colons: str) -> list[str]:
    """Primary secret keys' fingerprints from ``--with-colons --list-secret-keys``."""
    found: list[str] = []
    after_sec = False
    for line in colons.splitlines():
        fields = line.split(":")
        if fields[0] == "sec":
            after_sec = True
        elif fields[0] == "fpr" and after_sec and len(fields) > 9:
            found.append(fields[9])
            after_sec = False
        elif fields[0] in {"ssb", "uid"}:
            after_sec = False
    return found


def _tool_env(home: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", os.defpath),
        "LC_ALL": "C",
        "LANGUAGE": "C",
        "GNUPGHOME": str(home),
    }


def _kill_agent(home: Path) -> None:
    """Stop the gpg-agent that signing started in ``home`` (and only that one)."""
    gpgconf = shutil.which("gpgconf")
    if gpgconf is None:
        return
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        subprocess.run(
            [gpgconf, "--kill", "gpg-agent"],
            env=_tool_env(home),
            capture_output=True,
            timeout=30,
            check=False,
        )
