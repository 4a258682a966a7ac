"""Signed commits out (``git.signing``): real keys, a real git daemon, a real registry.

Each test runs one real automation cycle that signs its commit with a key generated here
(ssh-keygen, ``gpg --quick-gen-key`` in a temporary home), clones the remote like a
stranger would, and checks the pushed commit twice: with plain ``git verify-commit`` and
with the synchronizer's own :meth:`GitRepo.verify_commit`. The passphrases are canaries:
they must never show up in a log record or an error message.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from automator.config import GitSettings, Settings, settings_from_mapping
from automator.engine import CycleResult, Engine
from automator.gitrepo import GitRepo
from tests.support.git import GitDaemon, git, make_bare_repo
from tests.support.push import push_image
from tests.support.registry import RegistryServer

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("gpg") is None or shutil.which("ssh-keygen") is None,
        reason="needs gpg and ssh-keygen (hack/setup.sh installs gnupg and openssh-client)",
    ),
]

PASSPHRASE = "canary-Pa55-phrase-7f3a"
PASSPHRASE_ENV = "SIGNING_TEST_PASSPHRASE"
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


@dataclass(frozen=True)
class SshKey:
    private: Path
    allowed_signers: Path


@dataclass(frozen=True)
class GpgKey:
    secret: Path
    public: Path
    fingerprint: str


def _ssh_key(root: Path, name: str, passphrase: str) -> SshKey:
    private = root / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-C", name, "-f", str(private)],
        check=True,
        capture_output=True,
    )
    allowed = root / f"{name}.allowed_signers"
    allowed.write_text(f"{AUTHOR['email']} {Path(f'{private}.pub').read_text().strip()}\n")
    return SshKey(private, allowed)


def _gpg(home: Path, *args: str) -> str:
    proc = subprocess.run(
        ["gpg", "--batch", "--no-tty", "--pinentry-mode", "loopback", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "GNUPGHOME": str(home)},
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"gpg {args[0]} failed:\n{proc.stderr}")
    return proc.stdout


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("sign")
    home = root / "gnupg"
    home.mkdir(mode=0o700)
    pw = ("--passphrase", PASSPHRASE)
    _gpg(home, *pw, "--quick-gen-key", f"Automator <{AUTHOR['email']}>", "ed25519", "sign", "never")
    colons = _gpg(home, "--with-colons", "--list-secret-keys")
    fingerprint = next(line.split(":")[9] for line in colons.splitlines() if line[:4] == "fpr:")
    secret, public = root / "signing.asc", root / "signing.pub.asc"
    secret.write_text(_gpg(home, *pw, "--export-secret-keys", "--armor", fingerprint))
    public.write_text(_gpg(home, "--export", "--armor", fingerprint))
    subprocess.run(
        ["gpgconf", "--kill", "gpg-agent"], env={**os.environ, "GNUPGHOME": str(home)}, check=False
    )
    return {
        "ssh": _ssh_key(root, "plain", ""),
        "ssh-passphrase": _ssh_key(root, "locked", PASSPHRASE),
        "openpgp": GpgKey(secret, public, fingerprint),
    }


@pytest.fixture
def own_tmp(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A temporary directory of this test's own for the signer's private directories.

    Short (under /tmp): gpg-agent's socket lives in the GnuPG home, and socket paths are
    limited to ~100 bytes. Own: parallel tests must not see each other's directories.
    """
    root = Path(tempfile.mkdtemp(prefix="st-", dir="/tmp"))
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@dataclass
class World:
    settings: Settings
    bare: Path
    image: str
    tmp: Path

    def run_cycle(self) -> tuple[CycleResult, list[MutableMapping[str, Any]]]:
        with capture_logs() as logs:
            engine = Engine.from_settings(self.settings)
            try:
                result = engine.run_once()
            finally:
                engine.close()
        return result, logs

    def clone(self) -> Path:
        work = self.tmp / f"clone-{uuid.uuid4().hex[:6]}"
        git("clone", "-q", str(self.bare), str(work))
        return work


def make_world(
    tmp_path: Path, registry: RegistryServer, git_daemon: GitDaemon, signing: dict[str, Any]
) -> World:
    image = f"{registry.host}/s{uuid.uuid4().hex[:8]}/web"
    push_image(registry.url, image.split("/", 1)[1], ["1.0.0", "1.1.0"])
    name = f"signed-{uuid.uuid4().hex[:8]}.git"
    bare = make_bare_repo(
        git_daemon.root, name, {"web.yaml": MANIFEST.format(image=image).encode()}
    )
    settings = settings_from_mapping(
        {
            "git": {"url": git_daemon.url(name), "author": AUTHOR, "signing": signing},
            "registries": [{"host": registry.host, "url": registry.url}],
            "workdir": str(tmp_path / "work"),
        }
    )
    return World(settings, bare, image, tmp_path)


def _command_lines() -> list[str]:
    """Every process's command line (to look for a leftover gpg-agent)."""
    lines = []
    for proc in Path("/proc").iterdir():
        try:
            lines.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            continue
    return lines


def assert_no_canary(result: CycleResult, logs: list[MutableMapping[str, Any]]) -> None:
    assert PASSPHRASE not in repr(logs)
    assert all(PASSPHRASE not in f.message for f in result.failures)


def own_verification(world: World, **trust: Path) -> str:
    """The synchronizer's check, on its own fresh clone; returns the signer."""
    repo = GitRepo(GitSettings(url=world.settings.git.url), world.tmp / "sync-clone")
    repo.sync()
    return repo.verify_commit("HEAD", **trust).signer


# --------------------------------------------------------------------------- SSH


@pytest.mark.parametrize("which", ["ssh", "ssh-passphrase"])
def test_a_cycle_signs_its_commit_with_an_ssh_key_that_git_and_the_synchronizer_accept(
    tmp_path: Path,
    registry: RegistryServer,
    git_daemon: GitDaemon,
    keys: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    own_tmp: Path,
    which: str,
) -> None:
    key: SshKey = keys[which]
    signing: dict[str, Any] = {"format": "ssh", "key_file": str(key.private)}
    if which == "ssh-passphrase":
        monkeypatch.setenv(PASSPHRASE_ENV, PASSPHRASE)
        signing["passphrase_env"] = PASSPHRASE_ENV
    world = make_world(tmp_path, registry, git_daemon, signing)

    result, logs = world.run_cycle()

    assert result.ok, result.failures
    assert result.commit is not None
    # The private directory with the passphrase and the askpass helper is gone.
    assert list(own_tmp.iterdir()) == []
    clone = world.clone()
    assert git("rev-parse", "HEAD", cwd=clone).strip() == result.commit
    verified = subprocess.run(
        ["git", "-c", f"gpg.ssh.allowedSignersFile={key.allowed_signers}", "verify-commit", "HEAD"],
        cwd=clone,
        capture_output=True,
        text=True,
        check=False,
    )
    assert verified.returncode == 0, verified.stderr
    assert f'Good "git" signature for {AUTHOR["email"]}' in verified.stderr
    assert own_verification(world, allowed_signers_file=key.allowed_signers) == AUTHOR["email"]
    assert_no_canary(result, logs)
    # Nothing about signing was left in the clone's configuration or beside it.
    assert "signingkey" not in (world.settings.clone_dir / ".git" / "config").read_text()


def test_a_wrong_ssh_passphrase_fails_the_cycle_naming_git_signing_and_pushes_nothing(
    tmp_path: Path,
    registry: RegistryServer,
    git_daemon: GitDaemon,
    keys: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(PASSPHRASE_ENV, PASSPHRASE + "-wrong")
    signing = {
        "format": "ssh",
        "key_file": str(keys["ssh-passphrase"].private),
        "passphrase_env": PASSPHRASE_ENV,
    }
    world = make_world(tmp_path, registry, git_daemon, signing)
    before = git("rev-parse", "main", cwd=world.bare).strip()

    result, logs = world.run_cycle()

    assert not result.ok
    message = result.failures[-1].message
    assert "git.signing" in message
    assert "passphrase" in message
    assert "nothing was pushed" in message
    assert git("rev-parse", "main", cwd=world.bare).strip() == before
    assert any(e["event"] == "git_commit_signing_failed" for e in logs)
    assert PASSPHRASE not in repr(logs)
    assert PASSPHRASE not in message


def test_an_ssh_key_with_a_passphrase_but_none_configured_fails_instead_of_prompting(
    tmp_path: Path, registry: RegistryServer, git_daemon: GitDaemon, keys: dict[str, Any]
) -> None:
    signing = {"format": "ssh", "key_file": str(keys["ssh-passphrase"].private)}
    world = make_world(tmp_path, registry, git_daemon, signing)
    before = git("rev-parse", "main", cwd=world.bare).strip()

    result, _ = world.run_cycle()

    assert not result.ok
    assert "git.signing" in result.failures[-1].message
    assert git("rev-parse", "main", cwd=world.bare).strip() == before


# --------------------------------------------------------------------------- OpenPGP


def test_a_cycle_signs_its_commit_with_an_openpgp_key_that_git_and_the_synchronizer_accept(
    tmp_path: Path,
    registry: RegistryServer,
    git_daemon: GitDaemon,
    request: pytest.FixtureRequest,
    keys: dict[str, Any],
    own_tmp: Path,
) -> None:
    key: GpgKey = keys["openpgp"]
    passphrase_file = tmp_path / "passphrase"
    passphrase_file.write_text(PASSPHRASE + "\n")
    signing = {
        "format": "openpgp",
        "key_file": str(key.secret),
        "passphrase_file": str(passphrase_file),
    }
    world = make_world(tmp_path, registry, git_daemon, signing)

    result, logs = world.run_cycle()

    assert result.ok, result.failures
    clone = world.clone()
    # A short home: gpg-agent's socket path must fit in 107 bytes, which a deep pytest
    # tmp_path under an xdist worker can exceed ("failed to start agent").
    verifier = Path(tempfile.mkdtemp(prefix="gpgv-", dir="/tmp"))  # not $TMPDIR: checked empty
    request.addfinalizer(lambda: shutil.rmtree(verifier, ignore_errors=True))
    _gpg(verifier, "--import", str(key.public))
    verified = subprocess.run(
        ["git", "verify-commit", "--raw", "HEAD"],
        cwd=clone,
        capture_output=True,
        text=True,
        env={**os.environ, "GNUPGHOME": str(verifier)},
        check=False,
    )
    subprocess.run(
        ["gpgconf", "--kill", "gpg-agent"],
        env={**os.environ, "GNUPGHOME": str(verifier)},
        check=False,
    )
    assert verified.returncode == 0, verified.stderr
    assert f"VALIDSIG {key.fingerprint}" in verified.stderr
    signer = own_verification(world, keyring_file=key.public)
    assert signer == f"Automator <{AUTHOR['email']}>"
    assert_no_canary(result, logs)
    # No gpg-agent of ours is left running (killed by gpgconf; gpg-agent would also quit
    # once its home is removed), and the throwaway home with the passphrase file is gone.
    assert not [cmd for cmd in _command_lines() if "automator-sign-" in cmd]
    assert list(own_tmp.iterdir()) == []


def test_a_wrong_openpgp_passphrase_fails_the_cycle_and_leaves_the_remote_unchanged(
    tmp_path: Path, registry: RegistryServer, git_daemon: GitDaemon, keys: dict[str, Any]
) -> None:
    passphrase_file = tmp_path / "passphrase"
    passphrase_file.write_text("not-the-" + PASSPHRASE + "\n")
    signing = {
        "format": "openpgp",
        "key_file": str(keys["openpgp"].secret),
        "passphrase_file": str(passphrase_file),
    }
    world = make_world(tmp_path, registry, git_daemon, signing)
    before = git("rev-parse", "main", cwd=world.bare).strip()

    result, logs = world.run_cycle()

    assert not result.ok
    message = result.failures[-1].message
    assert "git.signing" in message
    assert "openpgp" in message
    assert git("rev-parse", "main", cwd=world.bare).strip() == before
    assert PASSPHRASE not in repr(logs)
    assert PASSPHRASE not in message


def test_a_key_file_holding_no_secret_key_is_a_clear_error(
    tmp_path: Path, registry: RegistryServer, git_daemon: GitDaemon, keys: dict[str, Any]
) -> None:
    signing = {"format": "openpgp", "key_file": str(keys["openpgp"].public)}
    world = make_world(tmp_path, registry, git_daemon, signing)

    result, _ = world.run_cycle()

    assert not result.ok
    message = result.failures[-1].message
    assert "git.signing.key_file" in message
    assert "--export-secret-keys" in message


# --------------------------------------------------------------------------- start-up


def test_an_unreadable_signing_key_stops_the_cli_at_start_with_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "automator.yaml"
    config.write_text(
        "git:\n"
        "  url: file:///nonexistent/config.git\n"
        f"  signing: {{format: ssh, key_file: {tmp_path / 'missing-key'}}}\n"
    )

    proc = subprocess.run(
        [sys.executable, "-m", "automator", "--config", str(config), "plan"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert proc.returncode == 2, proc.stderr
    assert "git.signing.key_file" in proc.stderr
    assert "missing-key" in proc.stderr


def test_the_cli_reports_a_wrong_passphrase_without_ever_printing_it(
    tmp_path: Path, registry: RegistryServer, git_daemon: GitDaemon, keys: dict[str, Any]
) -> None:
    signing = {
        "format": "ssh",
        "key_file": str(keys["ssh-passphrase"].private),
        "passphrase_env": PASSPHRASE_ENV,
    }
    world = make_world(tmp_path, registry, git_daemon, signing)
    before = git("rev-parse", "main", cwd=world.bare).strip()
    config = tmp_path / "automator.yaml"
    config.write_text(
        "git:\n"
        f"  url: {world.settings.git.url}\n"
        f"  author: {{name: {AUTHOR['name']}, email: {AUTHOR['email']}}}\n"
        f"  signing: {{format: ssh, key_file: {signing['key_file']}, "
        f"passphrase_env: {PASSPHRASE_ENV}}}\n"
        f"registries: [{{host: '{registry.host}', url: '{registry.url}'}}]\n"
        f"workdir: {tmp_path / 'cli-work'}\n"
    )

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "automator",
            "--config",
            str(config),
            "--log-format",
            "json",
            "once",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, PASSPHRASE_ENV: "wrong-" + PASSPHRASE},
        timeout=300,
        check=False,
    )

    assert proc.returncode == 1, proc.stderr
    assert "git.signing" in proc.stdout + proc.stderr
    assert PASSPHRASE not in proc.stdout + proc.stderr
    assert git("rev-parse", "main", cwd=world.bare).strip() == before
