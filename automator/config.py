"""Configuration: one frozen :class:`Settings`, validated once at start, passed explicitly.

The file format is the contract of DESIGN §3. Validation is done by pydantic (strict
models, ``extra="forbid"``) because it reports *every* problem with its key path in one
go, which is exactly what a user fixing a config file needs; we only reword its messages
so that each names the key path and the fix.

Secrets are never stored here: the settings hold the *name* of an environment variable or
the *path* of a file, and :func:`read_secret` reads the value at the moment of use (so a
rotated, file-mounted token is picked up without a restart, and a Settings object can be
logged whole without leaking anything).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from automator.errors import ConfigError
from automator.log import redact_urls

__all__ = [
    "DEFAULT_CONFIG_FILE",
    "Author",
    "GitSettings",
    "HttpSettings",
    "LeaderElectionSettings",
    "NotificationSettings",
    "RegistrySettings",
    "SecretRef",
    "Settings",
    "Signing",
    "SyncPath",
    "SyncSettings",
    "SyncVerify",
    "config_path",
    "load_settings",
    "parse_duration",
    "read_secret",
    "settings_from_mapping",
]

DEFAULT_CONFIG_FILE = "automator.yaml"

_DURATION_RE = re.compile(r"(?:(\d+(?:\.\d+)?)(ms|s|m|h))+?")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_MAX_DURATION = 365 * 24 * 3600.0


def parse_duration(value: object) -> float:
    """Seconds from ``5m``, ``30s``, ``1h30m``, ``250ms`` or a bare number of seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 5m or 1h")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise ValueError("a duration must be a finite, non-negative number of seconds")
        if value > _MAX_DURATION:
            raise ValueError("a duration cannot exceed 365 days")
        return float(value)
    if not isinstance(value, str):
        raise ValueError("expected a duration such as 30s, 5m or 1h")
    text = value.strip()
    pos, total = 0, 0.0
    for match in _DURATION_RE.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if not text or pos != len(text):
        raise ValueError(f"{value!r} is not a duration; write e.g. 30s, 5m, 1h or 1h30m")
    if total > _MAX_DURATION:
        raise ValueError(f"{value!r} is longer than 365 days")
    return total


Duration = Annotated[float, BeforeValidator(parse_duration)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Author(_Model):
    """Commit author (and committer) of every automation commit."""

    name: str = "Automator"
    email: str = "automator@example.com"


class SecretRef(_Model):
    """Where a secret lives; never the secret itself."""

    env: str | None = None
    file: Path | None = None


class Signing(_Model):
    """How automation commits are signed (``git.signing``); see gitrepo._sign for the how.

    ``key_file`` is an SSH private key (``format: ssh``) or an armored OpenPGP secret key
    (``format: openpgp``, from ``gpg --export-secret-keys --armor KEYID``). The passphrase,
    when the key has one, comes from ``passphrase_env`` or ``passphrase_file``, never inline.
    """

    format: Literal["ssh", "openpgp"]
    key_file: Path
    passphrase_env: str | None = None
    passphrase_file: Path | None = None

    @model_validator(mode="after")
    def _check_passphrase(self) -> Signing:
        if self.passphrase_env is not None and self.passphrase_file is not None:
            raise ValueError(
                "set git.signing.passphrase_env or git.signing.passphrase_file, not both"
            )
        return self

    @property
    def passphrase(self) -> SecretRef:
        return SecretRef(env=self.passphrase_env, file=self.passphrase_file)


class GitSettings(_Model):
    """The config repository: where to read manifests and push commits."""

    url: str
    branch: str = "main"
    push_branch: str | None = None
    paths: tuple[str, ...] = ()
    author: Author = Author()
    username: str | None = None
    password_env: str | None = None
    password_file: Path | None = None
    ssh_key_file: Path | None = None
    known_hosts_file: Path | None = None
    signing: Signing | None = None
    push_options: tuple[str, ...] = Field(
        default=(), description="passed as `git push -o OPTION`, one per entry"
    )

    @field_validator("push_options")
    @classmethod
    def _check_push_options(cls, options: tuple[str, ...]) -> tuple[str, ...]:
        for option in options:
            if not option.strip() or any(c in option for c in "\n\r\0"):
                raise ValueError(
                    f"{option!r} is not a push option: write one non-empty line per entry, "
                    "e.g. merge_request.create"
                )
        return options

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        if re.match(r"^(file|git|https?|ssh)://", url) or re.match(r"^[\w.-]+@[\w.-]+:", url):
            return url
        raise ValueError(
            f"{url!r} is not a supported git URL; use file://, git://, http://, https://, "
            "ssh:// or user@host:path"
        )

    @field_validator("paths")
    @classmethod
    def _check_paths(cls, paths: tuple[str, ...]) -> tuple[str, ...]:
        for p in paths:
            if Path(p).is_absolute() or ".." in Path(p).parts:
                raise ValueError(f"{p!r} must be a path inside the repository (relative, no '..')")
        return paths

    @model_validator(mode="after")
    def _check_credentials(self) -> GitSettings:
        has_password = self.password_env is not None or self.password_file is not None
        if self.password_env is not None and self.password_file is not None:
            raise ValueError("set git.password_env or git.password_file, not both")
        url_has_user = "@" in self.url.partition("://")[2].split("/", 1)[0]
        if has_password and self.username is None and not url_has_user:
            raise ValueError(
                "git.password_env/password_file needs git.username (for tokens, any "
                "non-empty user name your Git host accepts, e.g. git)"
            )
        return self

    @property
    def target_branch(self) -> str:
        """The branch commits are pushed to (``push_branch``, default ``branch``)."""
        return self.push_branch or self.branch

    @property
    def password(self) -> SecretRef:
        return SecretRef(env=self.password_env, file=self.password_file)


class RegistrySettings(_Model):
    """How to reach one registry host (as written in image references), and how gently.

    Everything beyond ``host`` is optional; the defaults suit Docker Hub, GHCR, Quay and a
    self-hosted Distribution alike. Secrets are never inline: ``password_env`` /
    ``password_file`` name where the password lives, ``credential_command`` names a
    program that prints a short-lived one (ECR, GCR/Artifact Registry, ACR tokens).
    """

    host: str
    url: str | None = None
    username: str | None = None
    password_env: str | None = None
    password_file: Path | None = None
    docker_config: Path | None = None
    ca_file: Path | None = None
    insecure: bool = Field(
        default=False,
        description="https without certificate verification (a warning is logged at start)",
    )
    cert_file: Path | None = Field(default=None, description="client certificate (mTLS), PEM")
    key_file: Path | None = Field(default=None, description="its private key, PEM")
    credential_command: tuple[str, ...] | None = Field(
        default=None,
        description="argv of a program printing a secret, or Docker-helper / expiring JSON",
    )
    credential_ttl: Duration = Field(
        default=600.0,
        description="how long a credential_command answer without expires_at is reused",
    )
    rate_limit: float | None = Field(default=None, description="requests per second, at most")
    burst: int | None = Field(
        default=None, description="token-bucket size; default: one second of rate_limit"
    )
    max_concurrency: int | None = Field(
        default=None, description="requests in flight at once; default: top-level max_concurrency"
    )
    page_size: int = Field(default=1000, description="tags per tags/list page (n=)")
    max_tags: int | None = Field(
        default=None, description="keep at most this many tags per repository (logged when cut)"
    )
    timeout: Duration | None = Field(default=None, description="per-request timeout; default 30s")

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str | None) -> str | None:
        if url is not None and not re.match(r"^https?://[^/]+", url):
            raise ValueError(f"{url!r} must start with http:// or https:// and name a host")
        return url.rstrip("/") if url is not None else None

    @field_validator("credential_command")
    @classmethod
    def _check_command(cls, argv: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if argv is not None and (not argv or not argv[0].strip()):
            raise ValueError(
                "must be a non-empty list: the program and its arguments, "
                "e.g. [aws, ecr, get-login-password]"
            )
        return argv

    @field_validator("rate_limit")
    @classmethod
    def _check_rate(cls, rate: float | None) -> float | None:
        if rate is not None and not 0 < rate <= 100_000:
            raise ValueError("must be a number of requests per second above 0, e.g. 5 or 0.5")
        return rate

    @field_validator("credential_ttl", "timeout")
    @classmethod
    def _check_positive(cls, seconds: float | None) -> float | None:
        if seconds is not None and seconds <= 0:
            raise ValueError("must be a positive duration such as 30s or 10m")
        return seconds

    @field_validator("burst", "max_concurrency", "max_tags")
    @classmethod
    def _check_count(cls, count: int | None) -> int | None:
        if count is not None and count < 1:
            raise ValueError("must be at least 1 (or left out)")
        return count

    @field_validator("page_size")
    @classmethod
    def _check_page_size(cls, size: int) -> int:
        if not 1 <= size <= 100_000:
            raise ValueError("must be between 1 and 100000 (registries commonly accept 1000)")
        return size

    @model_validator(mode="after")
    def _check_combinations(self) -> RegistrySettings:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError(
                f"registry {self.host}: set both cert_file and key_file (client certificate "
                "and its key), or neither"
            )
        if self.password_env is not None and self.password_file is not None:
            raise ValueError(f"registry {self.host}: set password_env or password_file, not both")
        if self.credential_command is not None and (
            self.password_env is not None
            or self.password_file is not None
            or self.docker_config is not None
        ):
            raise ValueError(
                f"registry {self.host}: credential_command supplies the password; remove "
                "password_env/password_file/docker_config (or the command)"
            )
        if self.burst is not None and self.rate_limit is None:
            raise ValueError(f"registry {self.host}: burst needs rate_limit; set both")
        return self

    @property
    def base_url(self) -> str:
        """API base URL: the configured one, else https://<host>."""
        return self.url or f"https://{self.host}"

    @property
    def password(self) -> SecretRef:
        return SecretRef(env=self.password_env, file=self.password_file)

    @property
    def effective_burst(self) -> int:
        """Token-bucket size: ``burst``, else one second's worth of ``rate_limit`` (>= 1)."""
        if self.burst is not None:
            return self.burst
        return max(1, -int(-(self.rate_limit or 1.0) // 1))


class HttpSettings(_Model):
    """The daemon's own HTTP endpoints."""

    listen: str = "127.0.0.1:8080"
    webhook_secret_env: str | None = None

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, listen: str) -> str:
        return _listen_address(listen)


def _listen_address(listen: str) -> str:
    match = re.fullmatch(r"(\[[0-9a-fA-F:]+\]|[\w.-]*):(\d{1,5})", listen)
    if not match or not 0 < int(match.group(2)) < 65536:
        raise ValueError(f"{listen!r} must be host:port with a port 1-65535, e.g. 127.0.0.1:8080")
    return listen


_K8S_NAME_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def _dns_label(value: str, what: str) -> str:
    if len(value) > 63 or not _K8S_NAME_RE.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid {what}: use at most 63 lowercase letters, digits "
            "and '-', starting and ending with a letter or digit"
        )
    return value


class SyncPath(_Model):
    """One directory (plain YAML, recursive) or Kustomize overlay to apply."""

    path: str
    namespace: str | None = Field(
        default=None,
        description="target namespace: set on every namespaced object of this path, "
        "overriding what the manifest says (Flux's targetNamespace)",
    )

    @field_validator("path")
    @classmethod
    def _check_path(cls, path: str) -> str:
        parts = Path(path).parts
        if not path.strip() or Path(path).is_absolute() or ".." in parts:
            raise ValueError(
                f"{path!r} must be a path relative to the repository root, without '..'"
            )
        return path

    @field_validator("namespace")
    @classmethod
    def _check_namespace(cls, namespace: str | None) -> str | None:
        return None if namespace is None else _dns_label(namespace, "namespace")


class SyncVerify(_Model):
    """Which commit signatures the synchronizer trusts; unsigned commits are refused."""

    allowed_signers_file: Path | None = Field(
        default=None, description="SSH signatures: git's gpg.ssh.allowedSignersFile format"
    )
    keyring_file: Path | None = Field(
        default=None, description="OpenPGP signatures: public keys (armored or binary)"
    )

    @model_validator(mode="after")
    def _check_some(self) -> SyncVerify:
        if self.allowed_signers_file is None and self.keyring_file is None:
            raise ValueError(
                "set allowed_signers_file (SSH) or keyring_file (OpenPGP), "
                "or remove sync.verify to apply unsigned commits"
            )
        return self


class SyncSettings(_Model):
    """The synchronizer: apply the config repo to one cluster (``automator sync``)."""

    interval: Annotated[Duration, Field(ge=1.0)] = 60.0
    timeout: Annotated[Duration, Field(gt=0)] = 300.0
    mode: Literal["correct", "report"] = "correct"
    prune: bool = True
    paths: tuple[SyncPath, ...] = (SyncPath(path="."),)
    name: str = Field(default="default", description="names this sync's inventory and labels")
    namespace: str = Field(
        default="automator-system", description="where the inventory and state live"
    )
    kubeconfig: Path | None = Field(
        default=None, description="default: in-cluster, then $KUBECONFIG, then ~/.kube/config"
    )
    context: str | None = None
    verify: SyncVerify | None = None
    workdir: Path | None = Field(
        default=None, description="the synchronizer's own clone; default beside the automator's"
    )
    max_concurrency: int = Field(default=8, ge=1, le=64)
    listen: str | None = Field(
        default=None, description="host:port for /healthz, /readyz, /metrics, /hooks/git"
    )
    webhook_secret_env: str | None = Field(
        default=None, description="env var holding the secret /hooks/git must prove"
    )

    @field_validator("name", "namespace")
    @classmethod
    def _check_names(cls, value: str) -> str:
        return _dns_label(value, "name")

    @field_validator("paths")
    @classmethod
    def _check_paths(cls, paths: tuple[SyncPath, ...]) -> tuple[SyncPath, ...]:
        if not paths:
            raise ValueError("list at least one path, e.g. [{path: clusters/prod}]")
        return paths

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, listen: str | None) -> str | None:
        return None if listen is None else _listen_address(listen)


class LeaderElectionSettings(_Model):
    """``leader_election``: replicas of ``automator run`` take turns through one Lease.

    The timing keys mean what they mean in client-go's leaderelection: a follower takes
    over a lease nobody renewed for ``lease_duration``; the leader stops writing when it
    could not renew for ``renew_deadline``; everyone retries every ``retry_period``.
    """

    lease: str = Field(description="name of the coordination.k8s.io/v1 Lease")
    namespace: str = Field(default="automator-system", description="the Lease's namespace")
    kubeconfig: Path | None = Field(
        default=None, description="default: in-cluster, then $KUBECONFIG, then ~/.kube/config"
    )
    context: str | None = None
    identity: str | None = Field(
        default=None, description="holderIdentity; default $POD_NAME (else hostname) _ pid"
    )
    lease_duration: Duration = 15.0
    renew_deadline: Duration = 10.0
    retry_period: Duration = 2.0

    @field_validator("lease")
    @classmethod
    def _check_lease(cls, name: str) -> str:
        return _dns_label(name, "Lease name")

    @field_validator("namespace")
    @classmethod
    def _check_namespace(cls, namespace: str) -> str:
        return _dns_label(namespace, "namespace")

    @field_validator("identity")
    @classmethod
    def _check_identity(cls, identity: str | None) -> str | None:
        if identity is not None and not identity.strip():
            raise ValueError("must not be empty; remove it to use $POD_NAME (or hostname) and pid")
        return identity

    @field_validator("lease_duration")
    @classmethod
    def _check_lease_duration(cls, seconds: float) -> float:
        if seconds < 1 or seconds != int(seconds):
            raise ValueError(
                "must be a whole number of seconds, at least 1s (the Lease stores "
                "leaseDurationSeconds), e.g. 15s"
            )
        return seconds

    @field_validator("renew_deadline", "retry_period")
    @classmethod
    def _check_positive(cls, seconds: float) -> float:
        if seconds <= 0:
            raise ValueError("must be a positive duration such as 2s")
        return seconds

    @model_validator(mode="after")
    def _check_order(self) -> LeaderElectionSettings:
        # client-go's rules: the leader gives up before anyone may take over, and has
        # time for more than one renewal attempt before it gives up.
        if self.renew_deadline >= self.lease_duration:
            raise ValueError(
                f"leader_election.renew_deadline ({self.renew_deadline:g}s) must be shorter "
                f"than leader_election.lease_duration ({self.lease_duration:g}s): the leader "
                "must stop writing before a follower may take over; lower renew_deadline"
            )
        if self.renew_deadline <= 1.2 * self.retry_period:
            raise ValueError(
                f"leader_election.renew_deadline ({self.renew_deadline:g}s) must exceed 1.2 x "
                f"leader_election.retry_period ({self.retry_period:g}s), so the leader can "
                "retry a failed renewal before giving up; lower retry_period"
            )
        return self


NOTIFICATION_EVENTS = (
    "update_committed",
    "push_failed",
    "registry_failing",
    "registry_recovered",
    "sync_failed",
    "drift_found",
)
"""Every event :mod:`automator.notify` posts; ``notifications[].events`` picks among them."""


class NotificationSettings(_Model):
    """One endpoint events are posted to (``notifications[]``): a generic JSON webhook,
    HMAC-signed when a secret is set, or a Slack-compatible incoming webhook.

    A Slack URL is itself a credential, so it may come from ``url_env`` / ``url_file``.
    """

    kind: Literal["slack", "webhook"]
    url: str | None = None
    url_env: str | None = None
    url_file: Path | None = None
    secret_env: str | None = None
    secret_file: Path | None = None
    events: tuple[str, ...] = NOTIFICATION_EVENTS
    timeout: Annotated[Duration, Field(gt=0)] = 10.0

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str | None) -> str | None:
        if url is not None and not re.match(r"^https?://[^/]+", url):
            raise ValueError("the URL must start with http:// or https:// and name a host")
        return url

    @field_validator("events")
    @classmethod
    def _check_events(cls, events: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [e for e in events if e not in NOTIFICATION_EVENTS]
        if unknown:
            valid = ", ".join(NOTIFICATION_EVENTS)
            raise ValueError(f"unknown event {', '.join(unknown)}; valid events: {valid}")
        if not events:
            raise ValueError("list at least one event, or remove the key to get them all")
        return events

    @model_validator(mode="after")
    def _check_sources(self) -> NotificationSettings:
        given = [k for k in ("url", "url_env", "url_file") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "set exactly one of url, url_env or url_file"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if self.secret_env is not None and self.secret_file is not None:
            raise ValueError("set secret_env or secret_file, not both")
        if self.kind == "slack" and (self.secret_env or self.secret_file):
            raise ValueError("a slack endpoint is not signed; remove secret_env/secret_file")
        return self

    @property
    def url_ref(self) -> SecretRef:
        return SecretRef(env=self.url_env, file=self.url_file)

    @property
    def secret(self) -> SecretRef:
        return SecretRef(env=self.secret_env, file=self.secret_file)


class Settings(_Model):
    """Everything the product needs to know, validated once."""

    git: GitSettings
    registries: tuple[RegistrySettings, ...] = ()
    interval: Annotated[Duration, Field(ge=1.0)] = 300.0
    http: HttpSettings = HttpSettings()
    batch_window: Annotated[Duration, Field(le=3600.0)] = 5.0
    workdir: Path | None = Field(
        default=None,
        description="where the working clone lives; default $XDG_CACHE_HOME/automator",
    )
    max_concurrency: int = Field(default=8, ge=1, le=256)
    push_retries: int = Field(default=3, ge=0, le=20)
    scan_budget: Duration = Field(
        default=300.0,
        gt=0,
        description="longest a cycle waits for registries; lookups still running then fail "
        "as transient and leave their workloads unchanged",
    )
    sync: SyncSettings = SyncSettings()
    leader_election: LeaderElectionSettings | None = None
    notifications: tuple[NotificationSettings, ...] = ()
    registry_failure_threshold: int = Field(
        default=3,
        ge=1,
        le=1000,
        description="full cycles in a row a registry host must fail before registry_failing",
    )

    @model_validator(mode="after")
    def _separate_clones(self) -> Settings:
        if self.sync_clone_dir.expanduser().absolute() == self.clone_dir.expanduser().absolute():
            raise ValueError(
                "sync.workdir must differ from workdir: the synchronizer and the automator "
                "each reset their own clone, and would wipe each other's work"
            )
        return self

    def concurrency_for(self, host: str) -> int:
        """Requests in flight at once for one registry host (its own cap, else the global)."""
        reg = self.registry_for(host)
        if reg is not None and reg.max_concurrency is not None:
            return reg.max_concurrency
        return self.max_concurrency

    @classmethod
    def without_repo(cls) -> Settings:
        """Defaults for commands that need no config repo (``check``) when no file exists.

        The git URL is a placeholder that such commands never use.
        """
        return cls(git=GitSettings(url="file:///dev/null"))

    def registry_for(self, host: str) -> RegistrySettings | None:
        """The configured entry for an image host as written, if any."""
        for reg in self.registries:
            if reg.host == host:
                return reg
        return None

    @property
    def clone_dir(self) -> Path:
        """Where the working clone lives."""
        if self.workdir is not None:
            return self.workdir
        return _cache_dir() / "repo"

    @property
    def sync_clone_dir(self) -> Path:
        """Where the synchronizer's own, read-only clone lives (never the automator's)."""
        if self.sync.workdir is not None:
            return self.sync.workdir
        if self.workdir is not None:
            return self.workdir.with_name(self.workdir.name + "-sync")
        return _cache_dir() / "sync"


def _cache_dir() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "automator"


def config_path(explicit: str | None) -> Path:
    """``--config``, else ``$AUTOMATOR_CONFIG``, else ``./automator.yaml``."""
    return Path(explicit or os.environ.get("AUTOMATOR_CONFIG") or DEFAULT_CONFIG_FILE)


def read_secret(ref: SecretRef, *, key: str) -> str | None:
    """The secret's value, read now; ConfigError naming ``key`` when it cannot be read."""
    if ref.env is not None:
        value = os.environ.get(ref.env)
        if value is None:
            raise ConfigError(
                f"{key}_env: environment variable {ref.env} is not set; export it or remove the key"
            )
        return value
    if ref.file is not None:
        try:
            return ref.file.expanduser().read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                f"{key}_file: cannot read {ref.file} ({exc.strerror}); fix the path"
            ) from exc
    return None


def _check_signing_key(signing: Signing) -> None:
    """The signing key file must be readable and its passphrase available before a cycle."""
    read_secret(signing.passphrase, key="git.signing.passphrase")
    path = signing.key_file.expanduser()
    try:
        with path.open("rb") as key:
            key.read(1)
    except OSError as exc:
        raise ConfigError(
            f"git.signing.key_file: cannot read {path} ({exc.strerror}); fix the path or "
            "the file's permissions (the automator's user must be able to read it)"
        ) from exc


def load_settings(path: Path) -> Settings:
    """Read, parse and validate the configuration file; ConfigError on any problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(
            f"configuration file {path} not found; pass --config FILE or set AUTOMATOR_CONFIG"
        ) from exc
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {path}: {exc.strerror}") from exc
    try:
        data = YAML(typ="safe", pure=True).load(text)
    except YAMLError as exc:
        raise ConfigError(f"configuration file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"configuration file {path} must be a mapping with at least a 'git' key "
            "(see README: Configuration)"
        )
    settings = settings_from_mapping(data, source=str(path))
    _check_secrets(settings)
    return settings


def settings_from_mapping(data: Mapping[str, Any], *, source: str = "config") -> Settings:
    """Validate an already-parsed mapping (used by tests and the demo)."""
    try:
        return Settings.model_validate(_lists_to_tuples(data), strict=False)
    except ValidationError as exc:
        problems = [_describe(err) for err in exc.errors()]
        raise ConfigError(f"{source}: " + "; ".join(problems)) from None


def _lists_to_tuples(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _lists_to_tuples(v) for k, v in value.items()}
    if isinstance(value, list):
        return tuple(_lists_to_tuples(v) for v in value)
    return value


def _key_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith(("function-", "json-or-python")) or part in {"tuple", "list"}:
            continue
        else:
            out += f".{part}" if out else part
    return out or "(top level)"


def _describe(err: Any) -> str:
    key = _key_path(tuple(err["loc"]))
    kind = err["type"]
    if kind == "extra_forbidden":
        return f"unknown key {key}; remove it or correct its spelling (see README: Configuration)"
    if kind == "missing":
        return f"required key {key} is missing; add it"
    msg = str(err["msg"]).removeprefix("Value error, ").replace("valid tuple", "list")
    return redact_urls(f"key {key}: {msg} (got {err.get('input')!r})")


def _check_secrets(settings: Settings) -> None:
    """Fail at start, not mid-cycle, when a referenced secret is missing."""
    read_secret(settings.git.password, key="git.password")
    if settings.git.signing is not None:
        _check_signing_key(settings.git.signing)
    for i, reg in enumerate(settings.registries):
        read_secret(reg.password, key=f"registries[{i}].password")
    for i, note in enumerate(settings.notifications):
        read_secret(note.url_ref, key=f"notifications[{i}].url")
        read_secret(note.secret, key=f"notifications[{i}].secret")
