"""One exception tree for the whole product.

Every error is either *permanent* (the input is wrong: report it, skip the object, do not
retry until the input changes) or *transient* (the world is flaky: retry with backoff).
Only the engine decides what to do with an error; lower layers translate library errors
at their boundary with ``raise OurError(...) from exc`` and put the object and the fix in
the message.

    AutomatorError
    ├── PermanentError
    │   ├── ConfigError          bad configuration file or command line (exit 2)
    │   ├── PolicyError          malformed policy, filter or extract template
    │   ├── ImageRefError        an image reference that does not parse
    │   ├── ManifestError        a YAML file that does not parse or cannot be edited
    │   ├── RegistryAuthError    credentials refused (401/403 after authenticating)
    │   ├── RegistryNotFound     repository or manifest does not exist (404)
    │   ├── GitError             git operation failed for a reason retrying will not fix
    │   ├── SignatureError       commit unsigned, signed by an untrusted key, or unverifiable
    │   └── ClusterError         the apiserver refused one object (invalid, immutable, forbidden)
    └── TransientError
        ├── RegistryUnavailable  network error, timeout, 429, 5xx
        ├── GitUnavailable       remote unreachable
        ├── ClusterUnavailable   apiserver unreachable, 429 or 5xx
        ├── PushRejected         someone else pushed first: fetch, re-apply, push again
        └── NotLeader            leader election is on and this replica may not write now
"""

from __future__ import annotations

__all__ = [
    "AutomatorError",
    "ClusterError",
    "ClusterUnavailable",
    "ConfigError",
    "GitError",
    "GitUnavailable",
    "ImageRefError",
    "ManifestError",
    "NotLeader",
    "PermanentError",
    "PolicyError",
    "PushRejected",
    "RegistryAuthError",
    "RegistryError",
    "RegistryNotFound",
    "RegistryUnavailable",
    "SignatureError",
    "TransientError",
]


class AutomatorError(Exception):
    """Base of every error the product raises on purpose."""


class PermanentError(AutomatorError):
    """The input is wrong; retrying without changing it gives the same result."""


class TransientError(AutomatorError):
    """The environment failed; the same call may succeed later.

    ``retry_after`` is the server's hint in seconds, when it gave one.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ConfigError(PermanentError):
    """Bad configuration or usage. The CLI turns it into exit code 2."""


class PolicyError(PermanentError):
    """A policy SPEC, filter regex or extract template that cannot be used."""


class ImageRefError(PermanentError):
    """An image reference that does not parse."""


class ManifestError(PermanentError):
    """A manifest file that does not parse or cannot be edited safely."""


class RegistryError(AutomatorError):
    """Marker base for registry failures (both kinds below also derive from it)."""


class RegistryAuthError(RegistryError, PermanentError):
    """The registry refused our credentials (or demands some we do not have)."""


class RegistryNotFound(RegistryError, PermanentError):
    """The repository, tag or manifest does not exist."""


class RegistryUnavailable(RegistryError, TransientError):
    """Network error, timeout, rate limit (429) or server error (5xx)."""


class GitError(PermanentError):
    """A git operation failed for a reason retrying will not fix (bad URL, auth, branch)."""


class SignatureError(PermanentError):
    """A commit must not be applied: unsigned, signed by an untrusted key, or a bad signature.

    Also raised when the signature cannot be checked at all (trust file missing, gpg or
    ssh-keygen not installed): refusing is the only safe answer, and the message says what
    to fix. The synchronizer leaves the cluster as it was.
    """


class ClusterError(PermanentError):
    """The apiserver refused a request about one object, or the object cannot be addressed.

    ``status`` is the HTTP status (0 when no request was made) and ``reason`` the API's
    machine-readable reason (``Invalid``, ``Forbidden``, ...), so callers can tell an
    immutable-field refusal (422) from a missing object (404) without parsing text.
    """

    def __init__(self, message: str, *, status: int = 0, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class ClusterUnavailable(TransientError):
    """The apiserver could not be reached, or answered 429 or 5xx."""


class GitUnavailable(TransientError):
    """The git remote could not be reached."""


class PushRejected(TransientError):
    """The push was rejected because the remote moved; fetch and re-apply."""


class NotLeader(TransientError):
    """Leader election is on and this replica does not hold a lease valid long enough to
    push: the cycle stops before pushing and the leader (this one again, or another) runs
    the next one."""
