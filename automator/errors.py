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
    │   └── GitError             git operation failed for a reason retrying will not fix
    └── TransientError
        ├── RegistryUnavailable  network error, timeout, 429, 5xx
        ├── GitUnavailable       remote unreachable
        └── PushRejected         someone else pushed first: fetch, re-apply, push again
"""

from __future__ import annotations

__all__ = [
    "AutomatorError",
    "ConfigError",
    "GitError",
    "GitUnavailable",
    "ImageRefError",
    "ManifestError",
    "PermanentError",
    "PolicyError",
    "PushRejected",
    "RegistryAuthError",
    "RegistryError",
    "RegistryNotFound",
    "RegistryUnavailable",
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


class GitUnavailable(TransientError):
    """The git remote could not be reached."""


class PushRejected(TransientError):
    """The push was rejected because the remote moved; fetch and re-apply."""
