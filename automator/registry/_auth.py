"""Credentials and authentication challenges for the registry client.

Kept apart from the HTTP plumbing because this is where secrets live: every object here
that holds one hides it from ``repr`` so that a stray log line or exception cannot leak it.
The ``docker`` package is used only to read a standard Docker ``config.json`` (including
``credsStore``/``credHelpers`` helpers), so users can point us at the file they already have.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import re
import shutil
import socket
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker.auth
import docker.errors
import structlog

from automator.errors import ConfigError, RegistryAuthError, RegistryUnavailable
from automator.registry._manifests import parse_created

__all__ = [
    "Challenge",
    "CommandCredentials",
    "Credentials",
    "docker_config_path",
    "load_docker_credentials",
    "parse_challenges",
    "run_credential_command",
]

_log = structlog.get_logger(__name__)

# One auth-param: key=token or key="quoted string" (quoted strings may contain commas,
# e.g. scope="repository:a:pull,push").
_PARAM_RE = re.compile(r'\s*([A-Za-z][\w-]*)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)\s*,?')
_SCHEME_RE = re.compile(r"\s*([A-Za-z][\w-]*)(?:\s+|$)")


@dataclass(frozen=True)
class Credentials:
    """A username with a password, or a Docker identity (OAuth refresh) token.

    The secret fields are excluded from ``repr`` so the object can appear in tracebacks.
    """

    username: str
    password: str = field(default="", repr=False)
    identity_token: str | None = field(default=None, repr=False)

    def basic_header(self) -> str:
        """The ``Authorization`` value for HTTP basic authentication."""
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True)
class Challenge:
    """One ``WWW-Authenticate`` challenge: a scheme (lower case) and its parameters."""

    scheme: str
    params: dict[str, str]


def parse_challenges(values: list[str]) -> list[Challenge]:
    """Parse every challenge from the ``WWW-Authenticate`` header lines of a response.

    A header line may hold several challenges (``Basic realm="x", Bearer realm="y"``); a
    new challenge starts wherever a bare token is followed by a space instead of ``=``.
    """
    challenges: list[Challenge] = []
    for value in values:
        pos = 0
        current: Challenge | None = None
        while pos < len(value):
            param = _PARAM_RE.match(value, pos)
            if param is not None and current is not None:
                raw = param.group(2)
                if raw.startswith('"'):
                    raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
                current.params[param.group(1).lower()] = raw
                pos = param.end()
                continue
            scheme = _SCHEME_RE.match(value, pos)
            if scheme is None or scheme.end() == pos:
                break
            current = Challenge(scheme=scheme.group(1).lower(), params={})
            challenges.append(current)
            pos = scheme.end()
    return challenges


def docker_config_path(configured: Path | None) -> Path | None:
    """The Docker config file to read, or None when there is none.

    An explicitly configured path must exist (a typo should fail loudly); otherwise the
    Docker CLI's own lookup applies: ``$DOCKER_CONFIG/config.json``, then
    ``~/.docker/config.json``, each only when present.
    """
    if configured is not None:
        return configured.expanduser()
    env_dir = os.environ.get("DOCKER_CONFIG")
    candidate = (
        Path(env_dir) / "config.json" if env_dir else Path.home() / ".docker" / "config.json"
    )
    return candidate if candidate.is_file() else None


def load_docker_credentials(path: Path, lookup: str, *, key: str) -> Credentials | None:
    """Credentials for registry ``lookup`` (``docker.io`` or ``host[:port]``) from ``path``.

    ``key`` names the configuration entry for error messages (``registries[0].docker_config``).
    A helper named by ``credsStore`` that is not installed is logged and skipped (the Docker
    CLI would fail, but anonymous access may still work); a helper named explicitly in
    ``credHelpers`` for this registry, or a config file that cannot be read, is an error.
    """
    if not path.is_file():
        raise ConfigError(f"{key}: Docker config file {path} does not exist; fix the path")
    try:
        config: Any = docker.auth.load_config(config_path=str(path))
        store = config.get_credential_store(lookup)
        if store is not None and shutil.which(f"docker-credential-{store}") is None:
            if lookup in config.cred_helpers or (
                lookup == "docker.io" and "https://index.docker.io/v1/" in config.cred_helpers
            ):
                raise RegistryAuthError(
                    f"registry {lookup}: {path} names credential helper "
                    f"docker-credential-{store}, which is not on PATH; install it or remove "
                    "it from credHelpers"
                )
            _log.warning(
                "registry_credential_helper_missing",
                registry=lookup,
                helper=f"docker-credential-{store}",
                config=str(path),
            )
            config = docker.auth.AuthConfig({"auths": config.auths})
        entry: Any = config.resolve_authconfig(lookup)
    except RegistryAuthError:
        raise
    except docker.errors.DockerException as exc:
        # The helper's own output is deliberately left out: we cannot know what it printed.
        raise RegistryAuthError(
            f"registry {lookup}: reading credentials via {path} failed "
            f"({type(exc).__name__}); check the credential helper named there"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"{key}: Docker config file {path} cannot be read ({type(exc).__name__}); "
            "check that it is a valid config.json"
        ) from None
    return _entry_to_credentials(entry)


def _entry_to_credentials(entry: Any) -> Credentials | None:
    """Normalise ``docker.auth``'s answers: auths and helpers spell the keys differently."""
    if not isinstance(entry, dict):
        return None
    token = entry.get("IdentityToken")
    username = entry.get("username") or entry.get("Username")
    password = entry.get("password") or entry.get("Password")
    if token:
        return Credentials(username=str(username or ""), identity_token=str(token))
    if username:
        return Credentials(username=str(username), password=str(password or ""))
    return None


@dataclass(frozen=True)
class CommandCredentials:
    """What a ``credential_command`` printed: credentials and, if it said, their lifetime."""

    credentials: Credentials
    expires_in: float | None
    """Seconds from now until ``expires_at`` (wall clock), or None when none was given."""


def run_credential_command(
    argv: Sequence[str],
    *,
    key: str,
    registry: str,
    username: str | None,
    timeout: float,
) -> CommandCredentials:
    """Run ``argv`` (no shell) and read credentials from its standard output.

    Accepted outputs: JSON ``{"Username", "Secret"}`` (what a Docker credential helper's
    ``get`` prints), JSON ``{"username", "password", "expires_at"}`` (RFC 3339), or a bare
    secret on the first line (``aws ecr get-login-password``, ``gcloud auth
    print-access-token``). ``username`` (from the config) is used when the output names
    none. Neither the output nor stderr ever reaches a message: they hold the secret.
    """
    try:
        done = subprocess.run(
            list(argv),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise RegistryUnavailable(
            f"registry {registry}: {key} ({argv[0]}) did not finish within {timeout:g}s; "
            "check the command (is it waiting for input?)"
        ) from None
    except OSError as exc:
        raise RegistryAuthError(
            f"registry {registry}: {key} cannot run {argv[0]!r} ({exc.strerror or exc}); "
            "install it or fix the path"
        ) from None
    if done.returncode != 0:
        raise RegistryAuthError(
            f"registry {registry}: {key} ({argv[0]}) failed with exit code "
            f"{done.returncode}; run it by hand to see why (its output is not logged)"
        )
    text = done.stdout.decode("utf-8", errors="replace")
    parsed = _parse_command_output(text)
    if parsed is None:
        raise RegistryAuthError(
            f"registry {registry}: {key} ({argv[0]}) printed no secret; it must print a "
            'password or token, or JSON with "Secret" or "password"'
        )
    user, secret, expires_at = parsed
    user = user or username
    if not user:
        raise RegistryAuthError(
            f"registry {registry}: {key} ({argv[0]}) printed no user name; set "
            f"{key.rsplit('.', 1)[0]}.username (e.g. AWS for ECR, oauth2accesstoken for GCR)"
        )
    expires_in = None
    if expires_at is not None:
        expires_in = (expires_at - datetime.now(UTC)).total_seconds()
    return CommandCredentials(Credentials(username=user, password=secret), expires_in)


def _parse_command_output(text: str) -> tuple[str | None, str, datetime | None] | None:
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except ValueError:
            data = None
        if isinstance(data, dict):
            secret = data.get("Secret", data.get("password"))
            user = data.get("Username", data.get("username"))
            if not isinstance(secret, str) or not secret:
                return None
            expires = parse_created(data.get("expires_at"))
            return (
                user if isinstance(user, str) and user else None,
                secret,
                expires if isinstance(expires, datetime) else None,
            )
    first = stripped.splitlines()[0].strip() if stripped else ""
    return (None, first, None) if first else None


_METADATA_NAMES = frozenset(
    {"metadata.google.internal", "metadata.azure.com", "metadata", "instance-data"}
)
_FORBIDDEN_NETWORKS = (
    ipaddress.ip_network("169.254.0.0/16"),  # IPv4 link-local: AWS/GCP/Azure/OCI metadata
    ipaddress.ip_network("fe80::/10"),  # IPv6 link-local
    ipaddress.ip_network("fd00:ec2::254/128"),  # AWS metadata over IPv6
    ipaddress.ip_network("100.100.100.200/32"),  # Alibaba Cloud metadata
)


def _forbidden_address(text: str) -> bool:
    try:
        addr = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return any(addr in net for net in _FORBIDDEN_NETWORKS)


def forbidden_realm(host: str, port: int) -> str | None:
    """Why a token realm on ``host`` must not be contacted, or None when it may be.

    A registry's 401 names the URL we send credentials to; a hostile or compromised
    registry could name a cloud metadata service (SSRF: the answer may hold the node's
    cloud credentials) or a link-local address. Checked: the name, an IP literal, and
    every address the name resolves to now. A name that does not resolve is let through
    (the request itself will then fail as unreachable).
    """
    name = host.strip("[]").rstrip(".").lower()
    if name in _METADATA_NAMES:
        return f"{host} is a cloud metadata service name"
    if _forbidden_address(name):
        return f"{host} is a link-local or cloud metadata address"
    try:
        infos = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return None
    for info in infos:
        address = str(info[4][0])
        if _forbidden_address(address):
            return f"{host} resolves to {address}, a link-local or cloud metadata address"
    return None
