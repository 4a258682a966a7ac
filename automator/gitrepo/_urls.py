"""Git remote URLs: which transport, where the credentials sit, and how to redact them.

Pure string functions (no I/O) so they are unit-tested exhaustively: every message and
log line that names a remote goes through :func:`redact`, and credentials embedded in
``git.url`` are split off before the URL is ever written to ``.git/config``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

from automator.log import redact_urls

__all__ = ["RemoteUrl", "is_http", "is_ssh", "parse_remote_url", "redact"]

_SCP_LIKE = re.compile(r"^(?P<user>[\w.-]+)@(?P<host>[\w.-]+):(?!//)")
_REDACTED = "***"


def is_ssh(url: str) -> bool:
    """ssh:// URLs and scp-like ``user@host:path`` both go through ssh."""
    return url.startswith(("ssh://", "git+ssh://", "ssh+git://")) or bool(_SCP_LIKE.match(url))


def is_http(url: str) -> bool:
    return url.startswith(("http://", "https://"))


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """``text`` with URL passwords (and any of ``secrets``) replaced by ``***``.

    Used on every message that may contain a URL or git's own stderr, so a credential
    written into ``git.url`` by mistake still never reaches a log or an exception.
    """
    out = redact_urls(text)
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            out = out.replace(secret, _REDACTED)
    return out


@dataclass(frozen=True)
class RemoteUrl:
    """A remote URL split into what may be stored (``clean``) and what may not."""

    clean: str
    """The URL without any password/token: the only form written to ``.git/config``."""
    username: str | None
    password: str | None

    @property
    def http_origin(self) -> str | None:
        """``scheme://host[:port]/`` for http(s) remotes: the scope of the auth header."""
        if not is_http(self.clean):
            return None
        parts = urlsplit(self.clean)
        return urlunsplit((parts.scheme, parts.netloc, "/", "", ""))


def parse_remote_url(url: str) -> RemoteUrl:
    """Split credentials off an http(s) URL; other transports are returned unchanged.

    For http(s) the whole userinfo is removed from the stored URL (a lone userinfo is
    usually a token). For ssh the login name is part of the address and stays.
    """
    if not is_http(url):
        return RemoteUrl(clean=url, username=None, password=None)
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return RemoteUrl(clean=url, username=None, password=None)
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, sep, password = userinfo.partition(":")
    clean = urlunsplit((parts.scheme, hostport, parts.path, parts.query, parts.fragment))
    return RemoteUrl(
        clean=clean,
        username=unquote(user) if user else None,
        password=unquote(password) if sep else None,
    )
