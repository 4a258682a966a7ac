"""Structured logging set-up: structlog, JSON or console, stable snake_case event names.

Every module logs with ``structlog.get_logger(__name__)`` and an event name that tests can
assert on; context (workload, container, image) is bound, never formatted into the event.
A last processor drops values under keys that look like secrets, as a safety net: the
real rule is that no code ever passes a secret to a logger.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, Literal, TextIO

import structlog

__all__ = ["LogFormat", "configure_logging", "redact_urls"]

LogFormat = Literal["json", "console"]

_SECRET_KEYS = ("password", "token", "authorization", "secret")

# scheme://userinfo@  -- userinfo may contain anything but '/', '@' and whitespace.
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/@\s'\"]+)@")
_REDACTED = "***"


def _redact_userinfo(match: re.Match[str]) -> str:
    scheme, userinfo = match.group("scheme"), match.group("userinfo")
    if scheme.lower().rstrip(":/").endswith("ssh") and ":" not in userinfo:
        # An ssh login name is not a secret, and it helps to see it in an error.
        return match.group(0)
    user, sep, _ = userinfo.partition(":")
    if sep:
        return f"{scheme}{user}:{_REDACTED}@"
    # A lone http userinfo is often a token (https://<token>@host/...): hide it whole.
    return f"{scheme}{_REDACTED}@"


def redact_urls(text: str) -> str:
    """``text`` with every URL's password (or lone token user) replaced by ``***``.

    For any message that may quote a URL from the configuration: a credential written
    into ``git.url`` by mistake must still never reach a log, an error or stdout.
    """
    return _USERINFO.sub(_redact_userinfo, text)


def _redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event):
        if any(word in key.lower() for word in _SECRET_KEYS):
            event[key] = "[redacted]"
    return event


def configure_logging(
    fmt: LogFormat = "console", *, level: str = "info", stream: TextIO | None = None
) -> None:
    """Configure structlog once for the process (idempotent)."""
    out = stream if stream is not None else sys.stderr
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(sort_keys=False)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    _route_stdlib_logging(out, renderer)


class _StdlibHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the one handler :func:`configure_logging` installs, so a second call
    replaces it instead of doubling every line."""


def _foreign_text(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    event["event"] = redact_urls(str(event.get("event", "")))
    return event


def _route_stdlib_logging(out: TextIO, renderer: Any) -> None:
    """Send libraries' stdlib log records (APScheduler, httpx, lightkube) through the
    same renderer, so ``--log-format json`` stays one JSON object per line (a plain-text
    warning from APScheduler used to land in the middle of the stream). Warnings and
    above only; URLs in their text are redacted like ours."""
    handler = _StdlibHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.add_logger_name,
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                _foreign_text,
                _redact,
            ],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StdlibHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
