"""Check who signed a commit before the synchronizer applies it.

git does the cryptography (``git verify-commit --raw``, which runs ssh-keygen or gpg);
this module decides *which* trust source applies, isolates the check from the user's own
keys and configuration, reads git's raw status output, and turns every refusal into a
:class:`~automator.errors.SignatureError` whose message names the commit and the fix.

Decisions, and why:

- **Format first.** The signature's armour (``-----BEGIN SSH SIGNATURE-----`` or
  ``-----BEGIN PGP SIGNATURE-----``, the same markers git dispatches on) decides which
  trust source is consulted. So an SSH-signed commit is never checked against a GnuPG
  home we did not build, and "signed, but with the kind of key you did not configure" is
  a refusal of its own with its own fix. X.509 (gpgsm) signatures are refused.
- **Only the given keys are trusted.** OpenPGP: a fresh, private ``GNUPGHOME`` (0700,
  removed afterwards) holds exactly the keyring's public keys with ultimate owner-trust,
  so a good signature by any of them is trusted and nothing else is; ``~/.gnupg`` and
  ``$GNUPGHOME`` are never read, and gpg may not start an agent or fetch keys. SSH:
  ``gpg.ssh.allowedSignersFile`` points at the given file. Both: the caller runs git with
  ``GIT_CONFIG_NOSYSTEM=1`` and ``GIT_CONFIG_GLOBAL=/dev/null``, and the programs are
  pinned by absolute path (``gpg.program``, ``gpg.ssh.program``), so no user or system
  git configuration can swap the verifier or the trust file.
- **SSH key lifetimes are checked now, not at the commit's date.** git evaluates an
  allowed signer's ``valid-after``/``valid-before`` at the *committer date*, which the
  signer writes: with a key past its ``valid-before``, a commit backdated into the
  window still passes ``git verify-commit``. For a deploy gate that defeats the point
  of expiring a key, so after git accepts, ``ssh-keygen -Y find-principals`` (which
  checks validity at the current time) must accept the same principal too. OpenPGP
  needs no such step: gpg judges key expiry and revocation at the current time.
- **Commits only.** A revision naming a tag is peeled to its commit by the caller and
  the *commit's* signature is checked: a signed tag never vouches for an unsigned commit.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from automator.errors import SignatureError

__all__ = ["GitResult", "RunGit", "Signature", "SignatureFormat", "verify_signature"]

SignatureFormat = Literal["ssh", "openpgp"]


@dataclass(frozen=True)
class Signature:
    """A verified signature: which commit, which kind, who, and with which key."""

    commit: str
    """Full sha of the verified commit (a tag is peeled to its commit)."""
    format: SignatureFormat
    signer: str
    """SSH: the principal from the allowed signers file. OpenPGP: the key's primary user ID."""
    key: str
    """SSH: the key's ``SHA256:`` fingerprint. OpenPGP: the primary key's fingerprint
    (also when a subkey made the signature: the primary key is what the keyring holds)."""


@dataclass(frozen=True)
class GitResult:
    """Exit status and combined stdout+stderr (already redacted) of one git command.

    A negative status means the command was killed after the timeout.
    """

    status: int
    output: str


RunGit = Callable[[Sequence[str], Mapping[str, str]], GitResult]
"""Runs ``git ARGS`` in the work tree with extra environment variables; never raises for
a non-zero exit (a refused signature is an answer, not a failure)."""

_ARMOUR = {
    "-----BEGIN SSH SIGNATURE-----": "ssh",
    "-----BEGIN PGP SIGNATURE-----": "openpgp",
    "-----BEGIN PGP MESSAGE-----": "openpgp",
    "-----BEGIN SIGNED MESSAGE-----": "x509",
}
_SIGNATURE_HEADERS = ("gpgsig", "gpgsig-sha256")

# ssh-keygen's verdict lines, as git --raw passes them on (OpenSSH 8.2+).
_SSH_GOOD = re.compile(
    r'^Good "git" signature for (?P<principal>.+) with (?P<type>\S+) key (?P<key>SHA256:\S+)$',
    re.MULTILINE,
)
_SSH_GOOD_UNTRUSTED = re.compile(
    r'^Good "git" signature with (?P<type>\S+) key (?P<key>SHA256:\S+)$', re.MULTILINE
)
_SSH_NOISE = re.compile(
    r'^(Good "git" signature .*|No principal matched\.|Could not verify signature\.)$'
)
_CANNOT_RUN = re.compile(r"cannot run (?P<program>\S+?):", re.IGNORECASE)

_GPG_CONF = (
    # Verification needs neither an agent nor the network; an agent started here would
    # outlive the temporary home, and a key fetched from a keyserver is not a trusted key.
    "no-autostart\nno-auto-key-retrieve\ntrust-model pgp\n"
)
_SHORT = 7


def verify_signature(
    commit: str,
    raw_commit: str,
    *,
    allowed_signers_file: Path | None,
    keyring_file: Path | None,
    run_git: RunGit,
    timeout: float,
) -> Signature:
    """Verify ``commit`` (full sha; ``raw_commit`` is ``git cat-file commit`` output).

    Returns the verified :class:`Signature`; raises :class:`SignatureError` for an
    unsigned commit, an untrusted or expired key, a bad signature, or a trust source or
    tool that is missing. With both trust sources, a signature is checked against the
    one that matches its kind.
    """
    if allowed_signers_file is None and keyring_file is None:
        raise ValueError("give allowed_signers_file, keyring_file or both")
    short = commit[:_SHORT]
    allowed = (
        _AllowedSigners.load(allowed_signers_file, short)
        if allowed_signers_file is not None
        else None
    )
    keyring = _Keyring.load(keyring_file, short) if keyring_file is not None else None
    armoured = _embedded_signature(raw_commit)
    if armoured is None:
        raise SignatureError(
            f"commit {short} is not signed; sign it with `git commit -S` (the last commit: "
            f"`git commit --amend --no-edit -S`) using {_trusted_keys(allowed, keyring)}, "
            "and push it"
        )
    kind = _ARMOUR.get(armoured.split("\n", 1)[0].strip(), "unknown")
    if kind == "ssh":
        if allowed is None:
            raise SignatureError(
                f"commit {short} is signed with an SSH key, but only an OpenPGP keyring "
                f"({_keyring_path(keyring)}) is trusted; configure an allowed signers file "
                "for SSH keys, or sign the commit with a key from the keyring"
            )
        return _verify_ssh(commit, armoured, allowed, run_git, timeout)
    if kind == "openpgp":
        if keyring is None:
            raise SignatureError(
                f"commit {short} is signed with an OpenPGP key, but only SSH allowed signers "
                f"({_allowed_path(allowed)}) are trusted; configure an OpenPGP keyring, or "
                "sign the commit with a key listed in the allowed signers file"
            )
        return _verify_openpgp(commit, keyring, run_git, timeout)
    what = "an X.509 (gpgsm)" if kind == "x509" else "an unrecognised"
    raise SignatureError(
        f"commit {short} carries {what} signature, which cannot be verified here; sign it "
        f"with an SSH or OpenPGP key ({_trusted_keys(allowed, keyring)})"
    )


def _embedded_signature(raw_commit: str) -> str | None:
    """The armoured signature in a commit object's ``gpgsig`` header, or ``None``.

    Header values continue on lines that start with one space; the message starts after
    the first empty line (a signature quoted in the message is not a signature).
    """
    header = raw_commit.split("\n\n", 1)[0].split("\n")
    for name in _SIGNATURE_HEADERS:
        value: list[str] | None = None
        for line in header:
            if value is not None:
                if not line.startswith(" "):
                    break
                value.append(line[1:])
            elif line.startswith(f"{name} "):
                value = [line[len(name) + 1 :]]
        if value is not None:
            return "\n".join(value) + "\n"
    return None


# --------------------------------------------------------------------------- trust sources


@dataclass(frozen=True)
class _AllowedSigners:
    path: Path
    fingerprints: frozenset[str]
    """Keys listed in the file, for telling "unknown key" from "listed but not valid"."""

    @classmethod
    def load(cls, path: Path, short: str) -> _AllowedSigners:
        # Absolute: git runs in the work tree, where a relative path means something else.
        path = path.expanduser().absolute()
        text = _read_trust_file(
            path,
            short,
            "allowed signers file",
            "one `PRINCIPAL KEYTYPE BASE64KEY` line per trusted key (ssh-keygen(1), "
            "ALLOWED SIGNERS)",
        ).decode("utf-8", errors="replace")
        return cls(path, _listed_fingerprints(text))


@dataclass(frozen=True)
class _Keyring:
    path: Path
    data: bytes

    @classmethod
    def load(cls, path: Path, short: str) -> _Keyring:
        path = path.expanduser().absolute()
        data = _read_trust_file(
            path,
            short,
            "OpenPGP keyring",
            "the trusted public keys, from `gpg --export --armor KEYID...`",
        )
        return cls(path, data)


def _read_trust_file(path: Path, short: str, what: str, content: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        problem = "does not exist"
    except IsADirectoryError:
        problem = "is a directory"
    except OSError as exc:
        problem = f"cannot be read ({exc.strerror or exc})"
    raise SignatureError(
        f"cannot verify commit {short}: the {what} {path} {problem}; fix the path or "
        f"create the file with {content}"
    )


def _trusted_keys(allowed: _AllowedSigners | None, keyring: _Keyring | None) -> str:
    sources = []
    if allowed is not None:
        sources.append(f"an SSH key listed in allowed signers {allowed.path}")
    if keyring is not None:
        sources.append(f"an OpenPGP key from keyring {keyring.path}")
    return " or ".join(sources)


def _allowed_path(allowed: _AllowedSigners | None) -> str:
    return str(allowed.path) if allowed is not None else "none"


def _keyring_path(keyring: _Keyring | None) -> str:
    return str(keyring.path) if keyring is not None else "none"


# --------------------------------------------------------------------------- SSH


def _verify_ssh(
    commit: str, armoured: str, allowed: _AllowedSigners, run_git: RunGit, timeout: float
) -> Signature:
    short = commit[:_SHORT]
    ssh_keygen = _program("ssh-keygen", "openssh-client (OpenSSH 8.2 or newer)", "SSH", short)
    result = run_git(
        [
            "-c",
            f"gpg.ssh.program={ssh_keygen}",
            "-c",
            f"gpg.ssh.allowedSignersFile={allowed.path}",
            "-c",
            "gpg.minTrustLevel=fully",
            "verify-commit",
            "--raw",
            commit,
        ],
        {},
    )
    out = result.output
    _check_ran(result, short, "SSH", "ssh-keygen", "openssh-client (OpenSSH 8.2 or newer)")
    good = _SSH_GOOD.search(out)
    if result.status == 0 and good is not None:
        principal, key = good.group("principal"), good.group("key")
        _check_ssh_valid_now(commit, armoured, allowed, principal, key, ssh_keygen, timeout)
        return Signature(commit=commit, format="ssh", signer=principal, key=key)
    detail = _ssh_detail(out)
    if result.status == 0:
        # git accepted, but we cannot say who signed: refuse rather than guess.
        raise SignatureError(
            f"the SSH signature of commit {short} was accepted by git, but its output names "
            f"no principal ({_tail(out)}); refusing it: check that {ssh_keygen} is OpenSSH "
            "8.2 or newer"
        )
    if "incorrect signature" in out.lower():
        raise SignatureError(
            f"commit {short} has a bad SSH signature ({detail}): the commit was changed "
            "after it was signed, or the signature is corrupt; do not apply it: find out "
            "who pushed it, then push a commit signed with a key listed in allowed signers "
            f"{allowed.path}"
        )
    untrusted = _SSH_GOOD_UNTRUSTED.search(out)
    key = untrusted.group("key") if untrusted is not None else _sshsig_fingerprint(armoured)
    if key is None:
        raise SignatureError(
            f"the SSH signature of commit {short} could not be verified against allowed "
            f"signers {allowed.path} ({detail}); re-sign the commit with a listed key"
        )
    if key in allowed.fingerprints:
        raise SignatureError(
            f"commit {short} is signed by SSH key {key}, which allowed signers "
            f"{allowed.path} lists but does not accept for this signature ({detail}); "
            'check that entry\'s valid-after/valid-before and namespaces (must allow "git") '
            "options, or re-sign the commit with a currently valid key"
        )
    raise SignatureError(
        f"commit {short} is signed by SSH key {key}, which is not in allowed signers "
        f"{allowed.path}; if that key is trusted, add a `PRINCIPAL KEYTYPE BASE64KEY` line "
        "for it to that file, otherwise re-sign the commit with a listed key"
    )


def _check_ssh_valid_now(
    commit: str,
    armoured: str,
    allowed: _AllowedSigners,
    principal: str,
    key: str,
    ssh_keygen: str,
    timeout: float,
) -> None:
    """Refuse unless the allowed signers file accepts ``principal``'s key *now*.

    ``ssh-keygen -Y find-principals`` without ``-Overify-time`` evaluates
    ``valid-after``/``valid-before`` at the current time (git passes the commit's date).
    """
    short = commit[:_SHORT]
    with tempfile.TemporaryDirectory(prefix="automator-sshsig-") as tmp:
        sig = Path(tmp) / "commit.sig"
        sig.write_text(armoured, encoding="ascii")
        proc = _run_tool(
            [ssh_keygen, "-Y", "find-principals", "-f", str(allowed.path), "-s", str(sig)],
            env={},
            timeout=timeout,
            short=short,
            what="SSH",
        )
    principals = proc.stdout.decode("utf-8", errors="replace").splitlines()
    if proc.returncode == 0 and principal in principals:
        return
    detail = _ssh_detail(proc.stderr.decode("utf-8", errors="replace"))
    raise SignatureError(
        f"commit {short} is signed by SSH key {key} ({principal}), which allowed signers "
        f"{allowed.path} does not accept at the current time ({detail}); key lifetimes "
        "are checked now, not at the commit's own date: re-sign the commit with a "
        "currently valid key, or extend that entry's valid-before"
    )


def _ssh_detail(output: str) -> str:
    """ssh-keygen's reasons (expired, namespace, ...), on one line, without the verdicts."""
    lines = [
        line.strip()
        for line in output.splitlines()
        if line.strip() and not _SSH_NOISE.match(line.strip())
    ]
    return " | ".join(lines[-3:]) or "no principal matched"


def _sshsig_fingerprint(armoured: str) -> str | None:
    """The ``SHA256:`` fingerprint of the public key embedded in an SSH signature.

    The SSHSIG blob is ``"SSHSIG" uint32:version string:publickey ...`` (OpenSSH's
    PROTOCOL.sshsig); used only to name the key in messages, never to decide trust.
    """
    body = "".join(line.strip() for line in armoured.splitlines() if "-----" not in line)
    try:
        blob = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        return None
    if not blob.startswith(b"SSHSIG") or len(blob) < 14:
        return None
    size = int.from_bytes(blob[10:14], "big")
    key = blob[14 : 14 + size]
    return _fingerprint(key) if len(key) == size and size else None


def _listed_fingerprints(text: str) -> frozenset[str]:
    """Fingerprints of the keys in an allowed signers file (tolerant: diagnostics only).

    A key is a ``KEYTYPE BASE64`` token pair whose decoded blob starts with KEYTYPE as an
    SSH string, wherever the options put it on the line.
    """
    found: set[str] = set()
    for line in text.splitlines():
        tokens = line.split()
        if not tokens or tokens[0].startswith("#"):
            continue
        for keytype, b64 in itertools.pairwise(tokens):
            try:
                blob = base64.b64decode(b64, validate=True)
            except (binascii.Error, ValueError):
                continue
            name = keytype.encode("ascii", errors="replace")
            if blob[:4] == len(name).to_bytes(4, "big") and blob[4 : 4 + len(name)] == name:
                found.add(_fingerprint(blob))
    return frozenset(found)


def _fingerprint(blob: bytes) -> str:
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii").rstrip("=")
    return f"SHA256:{digest}"


# --------------------------------------------------------------------------- OpenPGP


def _verify_openpgp(commit: str, keyring: _Keyring, run_git: RunGit, timeout: float) -> Signature:
    short = commit[:_SHORT]
    gpg = _program("gpg", "gnupg", "OpenPGP", short)
    # mkdtemp makes the directory 0700: gpg refuses (warns about) a home others can read.
    with tempfile.TemporaryDirectory(prefix="automator-gnupg-", ignore_cleanup_errors=True) as home:
        os.chmod(home, 0o700)
        Path(home, "gpg.conf").write_text(_GPG_CONF, encoding="ascii")
        trusted = _import_keyring(gpg, home, keyring, short, timeout)
        result = run_git(
            [
                "-c",
                f"gpg.program={gpg}",
                "-c",
                "gpg.minTrustLevel=fully",
                "verify-commit",
                "--raw",
                commit,
            ],
            {"GNUPGHOME": home},
        )
    _check_ran(result, short, "OpenPGP", "gpg", "gnupg")
    status = _gpg_status(result.output)
    good, valid = status.get("GOODSIG"), status.get("VALIDSIG")
    trust = "TRUST_ULTIMATE" in status or "TRUST_FULLY" in status
    bad = {"BADSIG", "ERRSIG", "EXPSIG", "EXPKEYSIG", "REVKEYSIG"} & status.keys()
    if result.status == 0 and good and valid and trust and not bad:
        primary = valid[9] if len(valid) >= 10 else valid[0]  # field 10: primary key
        signer = _unescape(" ".join(good[1:]))
        if primary in trusted:
            return Signature(commit=commit, format="openpgp", signer=signer, key=primary)
    raise SignatureError(_openpgp_refusal(short, status, keyring.path, result.output))


def _import_keyring(gpg: str, home: str, keyring: _Keyring, short: str, timeout: float) -> set[str]:
    """Import the keyring into ``home``, trust its keys ultimately; their fingerprints."""
    gnupg = {"GNUPGHOME": home}

    def run(*args: str, data: bytes = b"") -> subprocess.CompletedProcess[bytes]:
        argv = [gpg, "--batch", "--no-tty", "--homedir", home, *args]
        return _run_tool(argv, env=gnupg, timeout=timeout, short=short, what="OpenPGP", data=data)

    imported = run("--import", data=keyring.data)
    listed = run("--with-colons", "--fixed-list-mode", "--list-keys")
    fingerprints = _primary_fingerprints(listed.stdout.decode("utf-8", errors="replace"))
    if not fingerprints:
        why = _tail(imported.stderr.decode("utf-8", errors="replace"))
        raise SignatureError(
            f"cannot verify commit {short}: OpenPGP keyring {keyring.path} holds no public "
            f"key gpg can use ({why}); write the trusted public keys to it with "
            "`gpg --export --armor KEYID... > FILE`"
        )
    ownertrust = "".join(f"{fpr}:6:\n" for fpr in sorted(fingerprints)).encode("ascii")
    trusted = run("--import-ownertrust", data=ownertrust)
    if trusted.returncode != 0:
        why = _tail(trusted.stderr.decode("utf-8", errors="replace"))
        raise SignatureError(
            f"cannot verify commit {short}: gpg could not trust the keys of keyring "
            f"{keyring.path} ({why}); check that gpg works on this machine"
        )
    return fingerprints


def _primary_fingerprints(colons: str) -> set[str]:
    """Primary-key fingerprints from ``gpg --with-colons --list-keys`` output."""
    found: set[str] = set()
    after_pub = False
    for line in colons.splitlines():
        fields = line.split(":")
        if fields[0] == "pub":
            after_pub = True
        elif fields[0] == "fpr" and after_pub and len(fields) > 9:
            found.add(fields[9])
            after_pub = False
        elif fields[0] in {"sub", "uid"}:
            after_pub = False
    return found


def _gpg_status(output: str) -> dict[str, list[str]]:
    """``[GNUPG:] KEYWORD args`` lines; the first occurrence of each keyword wins."""
    status: dict[str, list[str]] = {}
    for line in output.splitlines():
        if line.startswith("[GNUPG:] "):
            keyword, *args = line[len("[GNUPG:] ") :].split(" ")
            status.setdefault(keyword, args)
    return status


def _openpgp_refusal(short: str, status: dict[str, list[str]], keyring: Path, out: str) -> str:
    """The message for a refused OpenPGP signature, from gpg's status keywords."""
    valid = status.get("VALIDSIG", [])
    for keyword, state in (("EXPKEYSIG", "has expired"), ("REVKEYSIG", "has been revoked")):
        if keyword in status:
            key, who = _key_and_uid(status[keyword])
            key = valid[9] if len(valid) >= 10 else key  # the primary key's fingerprint
            fix = (
                "extend its expiry (`gpg --quick-set-expire`) and re-export it into keyring "
                f"{keyring}, or re-sign the commit with a valid key"
                if keyword == "EXPKEYSIG"
                else f"re-sign the commit with another key from keyring {keyring}"
            )
            return (
                f"commit {short} is signed by OpenPGP key {key}{who}, which {state} "
                f"(gpg checks that at the current time); {fix}"
            )
    if "BADSIG" in status:
        key, who = _key_and_uid(status["BADSIG"])
        return (
            f"commit {short} has a bad OpenPGP signature (key {key}{who}): the commit was "
            "changed after it was signed, or the signature is corrupt; do not apply it: "
            "find out who pushed it, then push a commit signed with a key from keyring "
            f"{keyring}"
        )
    if "EXPSIG" in status:
        key, who = _key_and_uid(status["EXPSIG"])
        return (
            f"the OpenPGP signature on commit {short} (key {key}{who}) has expired; re-sign "
            f"the commit with a key from keyring {keyring}"
        )
    if "ERRSIG" in status or "NO_PUBKEY" in status:
        err = status.get("ERRSIG", [])
        # ERRSIG's 7th field is the full fingerprint (gpg 2.2.7+); else the long key ID.
        if len(err) > 6 and err[6] not in {"", "-"}:
            key = err[6]
        else:
            key = err[0] if err else (status["NO_PUBKEY"] or ["?"])[0]
        if "NO_PUBKEY" in status or (len(err) > 5 and err[5] == "9"):
            return (
                f"commit {short} is signed by OpenPGP key {key}, which is not in keyring "
                f"{keyring}; if that key is trusted, add its public key (`gpg --export "
                f"--armor {key} >> {keyring}`), otherwise re-sign the commit with a key "
                "from the keyring"
            )
        return (
            f"the OpenPGP signature on commit {short} (key {key}) cannot be checked "
            f"(gpg ERRSIG, reason code {err[5] if len(err) > 5 else '?'}: 4 is an "
            "unsupported algorithm); re-sign the commit with a supported key from keyring "
            f"{keyring}"
        )
    if "GOODSIG" in status:
        key, who = _key_and_uid(status["GOODSIG"])
        return (
            f"commit {short} is signed by OpenPGP key {key}{who}, which gpg does not fully "
            f"trust ({_tail(out)}); re-export the key into keyring {keyring} or re-sign the "
            "commit with another key from it"
        )
    return (
        f"the OpenPGP signature on commit {short} could not be verified against keyring "
        f"{keyring} ({_tail(out)}); re-sign the commit with a key from the keyring"
    )


def _key_and_uid(args: list[str]) -> tuple[str, str]:
    key = args[0] if args else "?"
    uid = _unescape(" ".join(args[1:]))
    return key, f" ({uid})" if uid else ""


def _unescape(text: str) -> str:
    """gpg's status lines escape some bytes of user IDs as ``%XX``."""
    return re.sub(r"%([0-9A-Fa-f]{2})", lambda m: chr(int(m.group(1), 16)), text)


# --------------------------------------------------------------------------- tools


def _program(name: str, package: str, kind: str, short: str) -> str:
    """Absolute path of a verifier program, pinned so no configuration can replace it."""
    path = shutil.which(name)
    if path is None:
        raise SignatureError(
            f"cannot verify the {kind} signature of commit {short}: {name} is not installed "
            f"or not on PATH; install {package}"
        )
    return path


def _check_ran(result: GitResult, short: str, kind: str, program: str, package: str) -> None:
    """Refuse when git could not run the verifier at all, or it hung."""
    if result.status < 0:
        raise SignatureError(
            f"verifying the {kind} signature of commit {short} timed out ({_tail(result.output)}); "
            f"check that {program} works on this machine"
        )
    if _CANNOT_RUN.search(result.output):
        raise SignatureError(
            f"cannot verify the {kind} signature of commit {short}: git could not run "
            f"{program} ({_tail(result.output, 1)}); install {package}"
        )


def _run_tool(
    argv: list[str],
    *,
    env: Mapping[str, str],
    timeout: float,
    short: str,
    what: str,
    data: bytes = b"",
) -> subprocess.CompletedProcess[bytes]:
    """Run gpg or ssh-keygen with a minimal environment (no credentials inherited)."""
    full_env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "LC_ALL": "C",
        "LANGUAGE": "C",
        **env,
    }
    try:
        return subprocess.run(
            argv, input=data, capture_output=True, env=full_env, timeout=timeout, check=False
        )
    except FileNotFoundError as exc:
        raise SignatureError(
            f"cannot verify the {what} signature of commit {short}: {argv[0]} is missing; "
            "install " + ("gnupg" if what == "OpenPGP" else "openssh-client")
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise SignatureError(
            f"verifying the {what} signature of commit {short} timed out after {timeout:g}s "
            f"in {Path(argv[0]).name}; check that it works on this machine"
        ) from exc


def _tail(output: str, lines: int = 2) -> str:
    kept = [line.strip() for line in output.splitlines() if line.strip()]
    return " | ".join(kept[-lines:]) or "no output"
