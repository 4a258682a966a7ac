"""GitRepo.verify_commit against real signatures: ssh-keygen keys, a real gpg, real git.

Keys are made once per module: two SSH keys (alice is an allowed signer, mallory is not)
and two OpenPGP keys in throwaway GnuPG homes (trusted is in the keyring, stranger is
not). Each test pushes commits to its own bare repository as a human would (``git commit
-S``), then fetches them with ``GitRepo.sync()`` as the synchronizer does and verifies.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from automator.config import Author, GitSettings
from automator.errors import SignatureError
from automator.gitrepo import GitRepo, Signature
from tests.support.git import git, make_bare_repo

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("gpg") is None or shutil.which("ssh-keygen") is None,
        reason="needs gpg and ssh-keygen (hack/setup.sh installs gnupg and openssh-client)",
    ),
]

SEED = {"clusters/prod/app.yaml": b"image: ghcr.io/org/app:1.0.0\n"}
_names = itertools.count()


@dataclass(frozen=True)
class SshKey:
    private: Path
    fingerprint: str


@dataclass(frozen=True)
class GpgKey:
    home: Path
    uid: str
    fingerprint: str
    public: Path


@dataclass(frozen=True)
class Keys:
    alice: SshKey
    mallory: SshKey
    allowed_signers: Path
    trusted: GpgKey
    stranger: GpgKey
    keyring: Path


def _ssh_key(root: Path, name: str) -> SshKey:
    private = root / f"{name}_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(private)],
        check=True,
        capture_output=True,
    )
    listed = subprocess.run(
        ["ssh-keygen", "-l", "-f", f"{private}.pub"], check=True, capture_output=True, text=True
    )
    return SshKey(private=private, fingerprint=listed.stdout.split()[1])


def _gpg(home: Path, *args: str, data: bytes = b"") -> bytes:
    proc = subprocess.run(
        ["gpg", "--batch", "--no-tty", *args],
        input=data,
        capture_output=True,
        env={**os.environ, "GNUPGHOME": str(home)},
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"gpg {' '.join(args)} failed:\n{proc.stderr.decode()}")
    return proc.stdout


def _gpg_key(root: Path, name: str, uid: str) -> GpgKey:
    home = root / f"{name}-gnupg"
    home.mkdir(mode=0o700)
    _gpg(home, "--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", "never")
    colons = _gpg(home, "--with-colons", "--list-keys").decode()
    fingerprint = next(line.split(":")[9] for line in colons.splitlines() if line[:4] == "fpr:")
    public = root / f"{name}.asc"
    public.write_bytes(_gpg(home, "--export", "--armor", fingerprint))
    return GpgKey(home=home, uid=uid, fingerprint=fingerprint, public=public)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keys]:
    # Short paths: gpg-agent's socket lives in the GnuPG home and sockets have a ~100 byte
    # path limit, which pytest's per-test directories can exceed.
    root = tmp_path_factory.mktemp("keys")
    alice, mallory = _ssh_key(root, "alice"), _ssh_key(root, "mallory")
    allowed = root / "allowed_signers"
    allowed.write_text(
        "# trusted committers\n"
        f"alice@example.com {(root / 'alice_ed25519.pub').read_text().strip()}\n"
    )
    trusted = _gpg_key(root, "trusted", "Test <t@example.com>")
    stranger = _gpg_key(root, "stranger", "Stranger <s@example.com>")
    keyring = root / "keyring.asc"
    keyring.write_bytes(trusted.public.read_bytes())
    try:
        yield Keys(alice, mallory, allowed, trusted, stranger, keyring)
    finally:
        # Signing started one gpg-agent per home; stop exactly those.
        for home in (trusted.home, stranger.home):
            subprocess.run(
                ["gpgconf", "--kill", "all"],
                env={**os.environ, "GNUPGHOME": str(home)},
                check=False,
                capture_output=True,
            )


# --------------------------------------------------------------------------- helpers


def ssh_signed(key: SshKey) -> tuple[str, ...]:
    return ("-c", "gpg.format=ssh", "-c", f"user.signingkey={key.private}")


def gpg_signed(key: GpgKey) -> tuple[str, ...]:
    return ("-c", "gpg.format=openpgp", "-c", f"user.signingkey={key.fingerprint}")


def push_commit(
    bare: Path,
    tmp: Path,
    signing: Sequence[str] = (),
    *,
    gnupg: GpgKey | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """A human clones, edits, commits (signed with ``signing``, if any) and pushes."""
    work = tmp / f"human-{next(_names)}"
    git("clone", "-q", str(bare), str(work))
    (work / "clusters/prod/app.yaml").write_text(f"image: ghcr.io/org/app:1.{next(_names)}.0\n")
    git("add", "-A", cwd=work)
    sign = ["-S"] if signing else ["--no-gpg-sign"]
    full_env = {**(env or {}), **({"GNUPGHOME": str(gnupg.home)} if gnupg else {})}
    git(*signing, "commit", "-q", *sign, "-m", "Bump app", cwd=work, env=full_env)
    git("push", "-q", "origin", "HEAD:refs/heads/main", cwd=work)
    return git("rev-parse", "HEAD", cwd=work).strip()


def push_tampered_copy(bare: Path, tmp: Path, sha: str) -> str:
    """Someone rewrites a signed commit's message, keeps the signature and force-pushes."""
    work = tmp / f"forger-{next(_names)}"
    git("clone", "-q", str(bare), str(work))
    raw = git("cat-file", "commit", sha, cwd=work)
    forged = raw.replace("Bump app", "Bump app (and something else)")
    proc = subprocess.run(
        ["git", "hash-object", "-t", "commit", "-w", "--stdin"],
        cwd=work,
        input=forged,
        capture_output=True,
        text=True,
        check=True,
    )
    new = proc.stdout.strip()
    git("push", "-q", "--force", "origin", f"{new}:refs/heads/main", cwd=work)
    return new


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    return make_bare_repo(tmp_path / "remotes", "config.git", SEED)


def synced(origin: Path, tmp_path: Path) -> GitRepo:
    settings = GitSettings(
        url=f"file://{origin}", author=Author(name="Automator", email="bot@automator.test")
    )
    repo = GitRepo(settings, tmp_path / "sync-work")
    repo.sync()
    return repo


def short(sha: str) -> str:
    return sha[:7]


# --------------------------------------------------------------------------- SSH


def test_a_commit_signed_by_an_allowed_ssh_key_is_verified_and_logged(
    keys: Keys, origin: Path, tmp_path: Path
) -> None:
    sha = push_commit(origin, tmp_path, ssh_signed(keys.alice))
    repo = synced(origin, tmp_path)

    with capture_logs() as logs:
        signature = repo.verify_commit(allowed_signers_file=keys.allowed_signers)

    assert signature == Signature(
        commit=sha, format="ssh", signer="alice@example.com", key=keys.alice.fingerprint
    )
    events = [e for e in logs if e["event"] == "git_signature_verified"]
    assert events == [
        {
            "event": "git_signature_verified",
            "log_level": "info",
            "commit": sha,
            "format": "ssh",
            "signer": "alice@example.com",
            "key": keys.alice.fingerprint,
        }
    ]


def test_an_unsigned_commit_is_refused_with_how_to_sign_it(
    keys: Keys, origin: Path, tmp_path: Path
) -> None:
    sha = push_commit(origin, tmp_path)
    repo = synced(origin, tmp_path)

    with capture_logs() as logs, pytest.raises(SignatureError) as info:
        repo.verify_commit(allowed_signers_file=keys.allowed_signers)

    message = str(info.value)
    assert message.startswith(f"commit {short(sha)} is not signed; sign it with `git commit -S`")
    assert str(keys.allowed_signers) in message
    assert not any(e["event"] == "git_signature_verified" for e in logs)


def test_an_ssh_commit_signed_by_a_key_not_in_allowed_signers_is_refused(
    keys: Keys, origin: Path, tmp_path: Path
) -> None:
    sha = push_commit(origin, tmp_path, ssh_signed(keys.mallory))
    repo = synced(origin, tmp_path)

    with pytest.raises(SignatureError) as info:
        repo.verify_commit(allowed_signers_file=keys.allowed_signers)

    assert str(info.value).startswith(
        f"commit {short(sha)} is signed by SSH key {keys.mallory.fingerprint}, which is not "
        f"in allowed signers {keys.allowed_signers}; "
    )


@pytest.mark.parametrize("backdated", [False, True], ids=["dated-now", "backdated-into-window"])
def test_an_allowed_ssh_key_past_its_valid_before_is_refused_even_on_a_backdated_commit(
    keys: Keys, origin: Path, tmp_path: Path, backdated: bool
) -> None:
    expired = tmp_path / "allowed_signers_expired"
    public = Path(f"{keys.alice.private}.pub").read_text().strip()
    expired.write_text(f'alice@example.com valid-before="20200101" {public}\n')
    # git checks the window at the committer date, which the signer chooses.
    dates = {
        "GIT_COMMITTER_DATE": "2019-06-01T12:00:00Z",
        "GIT_AUTHOR_DATE": "2019-06-01T12:00:00Z",
    }
    sha = push_commit(origin, tmp_path, ssh_signed(keys.alice), env=dates if backdated else None)
    repo = synced(origin, tmp_path)

    with pytest.raises(SignatureError) as info:
        repo.verify_commit(allowed_signers_file=expired)

    message = str(info.value)
    assert message.startswith(f"commit {short(sha)} is signed by SSH key {keys.alice.fingerprint}")
    assert str(expired) in message
    assert "expired" in message
    assert "valid-before" in message


def test_a_tampered_ssh_signed_commit_is_refused_as_a_bad_signature(
    keys: Keys, origin: Path, tmp_path: Path
) -> None:
    signed = push_commit(origin, tmp_path, ssh_signed(keys.alice))
    forged = push_tampered_copy(origin, tmp_path, signed)
    repo = synced(origin, tmp_path)

    with pytest.raises(SignatureError, match=rf"^commit {short(forged)} has a bad SSH signature"):
        repo.verify_commit(allowed_signers_file=keys.allowed_signers)


def test_a_signed_tag_does_not_vouch_for_the_unsigned_commit_it_points_to(
    keys: Keys, origin: Path, tmp_path: Path
) -> None:
    sha = push_commit(origin, tmp_path)
    repo = synced(origin, tmp_path)
    git(*ssh_signed(keys.alice), "tag", "-s", "-m", "release", "v1", cwd=repo.path)

    with pytest.raises(SignatureError, match=rf"^commit {short(sha)} is not signed"):
        repo.verify_commit("v1", allowed_signers_file=keys.allowed_signers)


def test_a_tag_is_peeled_to_its_signed_commit(keys: Keys, origin: Path, tmp_path: Path) -> None:
    sha = push_commit(origin, tmp_path, ssh_signed(keys.alice))
    repo = synced(origin, tmp_path)
    git("tag", "-a", "-m", "release", "v1", cwd=repo.path)

    assert repo.verify_commit("v1", allowed_signers_file=keys.allowed_signers).commit == sha


# --------------------------------------------------------------------------- OpenPGP


def test_a_commit_signed_by_a_key_in_the_keyring_is_verified(
    keys: Keys, origin: Path, tmp_path: Path
) -> None:
    sha = push_commit(origin, tmp_path, gpg_signed(keys.trusted), gnupg=keys.trusted)
    repo = synced(origin, tmp_path)

    signature = repo.verify_commit(keyring_file=keys.keyring)

    assert signature == Signature(
        commit=sha, format="openpgp", signer="Test <t@example.com>", key=keys.trusted.fingerprint
    )


def test_a_binary_keyring_works_like_an_armoured_one(
    keys: Keys, origin: Path, tmp_path: Path
) -> None:
    binary = tmp_path / "pubring.gpg"
    binary.write_bytes(_gpg(keys.trusted.home, "--export", keys.trusted.fingerprint))
    push_commit(origin, tmp_path, gpg_signed(keys.trusted), gnupg=keys.trusted)
    repo = synced(origin, tmp_path)

    assert repo.verify_commit(keyring_file=binary).key == keys.trusted.fingerprint


def test_an_openpgp_commit_signed_by_a_key_outside_the_keyring_is_refused(
    keys: Keys, origin: Path, tmp_path: Path
) -> None:
    sha = push_commit(origin, tmp_path, gpg_signed(keys.stranger), gnupg=keys.stranger)
    repo = synced(origin, tmp_path)

    with pytest.raises(SignatureError) as info:
        repo.verify_commit(keyring_file=keys.keyring)

    assert str(info.value).startswith(
        f"commit {short(sha)} is signed by OpenPGP key {keys.stranger.fingerprint}, which is "
        f"not in keyring {keys.keyring}; "
    )


def test_a_tampered_openpgp_signed_commit_is_refused_as_a_bad_signature(
    keys: Keys, origin: Path, tmp_path: Path
) -> None:
    signed = push_commit(origin, tmp_path, gpg_signed(keys.trusted), gnupg=keys.trusted)
    forged = push_tampered_copy(origin, tmp_path, signed)
    repo = synced(origin, tmp_path)

    with pytest.raises(
        SignatureError, match=rf"^commit {short(forged)} has a bad OpenPGP signature"
    ):
        repo.verify_commit(keyring_file=keys.keyring)


def test_an_openpgp_key_that_has_expired_since_signing_is_refused(
    origin: Path, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    # A key made and used in 2020 (gpg's faked clock) that expired a year later.
    root = tmp_path_factory.mktemp("oldkey")
    home = root / "gnupg"
    home.mkdir(mode=0o700)
    (home / "gpg.conf").write_text("faked-system-time 20200101T000000\n")
    try:
        _gpg(
            home,
            "--passphrase",
            "",
            "--quick-gen-key",
            "Old <old@example.com>",
            "ed25519",
            "sign",
            "1y",
        )
        colons = _gpg(home, "--with-colons", "--list-keys").decode()
        fpr = next(line.split(":")[9] for line in colons.splitlines() if line[:4] == "fpr:")
        keyring = root / "old.asc"
        keyring.write_bytes(_gpg(home, "--export", "--armor", fpr))
        old = GpgKey(home=home, uid="Old <old@example.com>", fingerprint=fpr, public=keyring)
        sha = push_commit(origin, tmp_path, gpg_signed(old), gnupg=old)
    finally:
        subprocess.run(
            ["gpgconf", "--kill", "all"],
            env={**os.environ, "GNUPGHOME": str(home)},
            check=False,
            capture_output=True,
        )
    repo = synced(origin, tmp_path)

    with pytest.raises(SignatureError) as info:
        repo.verify_commit(keyring_file=keyring)

    assert str(info.value).startswith(
        f"commit {short(sha)} is signed by OpenPGP key {fpr} (Old <old@example.com>), which "
        "has expired"
    )


def test_a_keyring_without_keys_is_refused_with_how_to_export_them(
    keys: Keys, origin: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "keyring.asc"
    empty.write_text("not a key\n")
    sha = push_commit(origin, tmp_path, gpg_signed(keys.trusted), gnupg=keys.trusted)
    repo = synced(origin, tmp_path)

    with pytest.raises(SignatureError) as info:
        repo.verify_commit(keyring_file=empty)

    message = str(info.value)
    assert message.startswith(f"cannot verify commit {short(sha)}: OpenPGP keyring {empty}")
    assert "gpg --export --armor" in message


def test_the_temporary_gnupg_home_is_removed_afterwards(
    keys: Keys, origin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    push_commit(origin, tmp_path, gpg_signed(keys.stranger), gnupg=keys.stranger)
    repo = synced(origin, tmp_path)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))

    with pytest.raises(SignatureError):
        repo.verify_commit(keyring_file=keys.keyring)
    push_commit(origin, tmp_path, gpg_signed(keys.trusted), gnupg=keys.trusted)
    repo.sync()
    repo.verify_commit(keyring_file=keys.keyring)

    assert list(scratch.iterdir()) == []


# --------------------------------------------------------------------------- both, and errors


def test_with_both_trust_sources_a_commit_signed_by_either_passes(
    keys: Keys, origin: Path, tmp_path: Path
) -> None:
    push_commit(origin, tmp_path, ssh_signed(keys.alice))
    repo = synced(origin, tmp_path)

    def verify() -> Signature:
        return repo.verify_commit(
            allowed_signers_file=keys.allowed_signers, keyring_file=keys.keyring
        )

    assert verify().format == "ssh"

    push_commit(origin, tmp_path, gpg_signed(keys.trusted), gnupg=keys.trusted)
    repo.sync()
    assert verify().format == "openpgp"

    push_commit(origin, tmp_path, ssh_signed(keys.mallory))
    repo.sync()
    with pytest.raises(SignatureError, match="not in allowed signers"):
        verify()

    sha = push_commit(origin, tmp_path)
    repo.sync()
    with pytest.raises(SignatureError, match=f"commit {short(sha)} is not signed") as info:
        verify()
    assert str(keys.allowed_signers) in str(info.value)
    assert str(keys.keyring) in str(info.value)


def test_a_commit_signed_with_the_kind_of_key_not_configured_is_refused(
    keys: Keys, origin: Path, tmp_path: Path
) -> None:
    sha = push_commit(origin, tmp_path, gpg_signed(keys.trusted), gnupg=keys.trusted)
    repo = synced(origin, tmp_path)

    with pytest.raises(
        SignatureError,
        match=rf"^commit {short(sha)} is signed with an OpenPGP key, but only SSH allowed",
    ):
        repo.verify_commit(allowed_signers_file=keys.allowed_signers)


@pytest.mark.parametrize("what", ["allowed signers file", "OpenPGP keyring"])
def test_a_missing_trust_file_is_refused_naming_the_file(
    keys: Keys, origin: Path, tmp_path: Path, what: str
) -> None:
    sha = push_commit(origin, tmp_path, ssh_signed(keys.alice))
    repo = synced(origin, tmp_path)
    missing = tmp_path / "nowhere" / "trust"
    ssh = what == "allowed signers file"

    with pytest.raises(SignatureError) as info:
        repo.verify_commit(
            allowed_signers_file=missing if ssh else keys.allowed_signers,
            keyring_file=None if ssh else missing,
        )

    assert str(info.value).startswith(
        f"cannot verify commit {short(sha)}: the {what} {missing} does not exist; fix the path"
    )


def test_without_any_trust_source_verify_commit_is_a_programming_error(
    origin: Path, tmp_path: Path
) -> None:
    repo = synced(origin, tmp_path)

    with pytest.raises(ValueError, match="allowed_signers_file, keyring_file or both"):
        repo.verify_commit()


@pytest.mark.parametrize(
    ("program", "package", "kind"),
    [("gpg", "gnupg", "openpgp"), ("ssh-keygen", "openssh-client", "ssh")],
)
def test_a_missing_verifier_program_is_refused_with_what_to_install(
    keys: Keys,
    origin: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    program: str,
    package: str,
    kind: str,
) -> None:
    if kind == "ssh":
        sha = push_commit(origin, tmp_path, ssh_signed(keys.alice))
    else:
        sha = push_commit(origin, tmp_path, gpg_signed(keys.trusted), gnupg=keys.trusted)
    repo = synced(origin, tmp_path)
    only_git = tmp_path / "bin"
    only_git.mkdir()
    (only_git / "git").symlink_to(shutil.which("git") or "/usr/bin/git")
    monkeypatch.setenv("PATH", str(only_git))

    with pytest.raises(SignatureError) as info:
        repo.verify_commit(allowed_signers_file=keys.allowed_signers, keyring_file=keys.keyring)

    message = str(info.value)
    assert re.search(rf"commit {short(sha)}: {program} is not installed", message)
    assert message.endswith(f"install {package}") or f"install {package} " in message


def test_the_users_own_gnupg_home_and_git_config_are_not_consulted(
    keys: Keys, origin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stranger = push_commit(origin, tmp_path, gpg_signed(keys.stranger), gnupg=keys.stranger)
    repo = synced(origin, tmp_path)
    # A user whose own GnuPG home ultimately trusts the stranger, and whose ~/.gitconfig
    # swaps in a "gpg" that calls every signature good.
    home = tmp_path / "home"
    gnupg = home / ".gnupg"
    gnupg.mkdir(parents=True, mode=0o700)
    _gpg(gnupg, "--no-autostart", "--import", data=keys.stranger.public.read_bytes())
    ownertrust = f"{keys.stranger.fingerprint}:6:\n".encode()
    _gpg(gnupg, "--no-autostart", "--import-ownertrust", data=ownertrust)
    fake_gpg = home / "always-good-gpg"
    fake_gpg.write_text(
        "#!/bin/sh\ncat >/dev/null\n"
        "printf '[GNUPG:] NEWSIG\\n[GNUPG:] GOODSIG 0000000000000000 Anyone\\n"
        "[GNUPG:] TRUST_ULTIMATE 0 pgp\\n'\n"
    )
    fake_gpg.chmod(0o755)
    (home / ".gitconfig").write_text(f"[gpg]\n\tprogram = {fake_gpg}\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GNUPGHOME", str(gnupg))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("GIT_CONFIG_GLOBAL", raising=False)
    # Both really would let the stranger's commit through a plain `git verify-commit`.
    git("verify-commit", stranger, cwd=repo.path)
    git("verify-commit", stranger, cwd=repo.path, env={"GIT_CONFIG_GLOBAL": os.devnull})

    with pytest.raises(SignatureError, match=keys.stranger.fingerprint):
        repo.verify_commit(keyring_file=keys.keyring)

    # The key that is in the keyring still passes: the fake "gpg" was not used either.
    sane = {"GIT_CONFIG_GLOBAL": os.devnull}
    trusted = push_commit(origin, tmp_path, gpg_signed(keys.trusted), gnupg=keys.trusted, env=sane)
    repo.sync()
    assert repo.verify_commit(keyring_file=keys.keyring).commit == trusted
