"""Notifications out: events posted to webhooks and Slack, never blocking a cycle.

:class:`Notifier` takes events from the daemon's threads and posts them from one daemon
worker thread of its own, through a bounded queue: when the queue is full the *oldest*
event is dropped (counted and logged as ``notification_dropped``), so a dead endpoint
costs memory that is capped and never a stalled or failed cycle. Each POST is retried on
connection errors, 5xx and 429 (honouring ``Retry-After``) with exponential backoff and
jitter, up to a few attempts; anything else is logged and given up.

:class:`CycleEvents` turns a :class:`CycleResult` (or a :class:`SyncReport`) into the
events to post; it keeps the little state some events need (how many full cycles in a
row a registry host has failed), so the daemon only calls it.

Only the standard library speaks HTTP here (``urllib.request``): httpx stays the
registry client's. URLs and secrets are read at send time through
:func:`automator.config.read_secret` (a rotated, file-mounted secret is picked up), and
logs name an endpoint by its index, kind and host only: a Slack URL's path is a secret.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import random
import threading
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import structlog

from automator.config import NotificationSettings, Settings, read_secret
from automator.engine import CycleResult
from automator.errors import ConfigError
from automator.log import redact_urls
from automator.sync import SyncReport

__all__ = ["CycleEvents", "Event", "Notifier", "signature", "slack_text"]

log = structlog.get_logger(__name__)

Event = tuple[str, dict[str, Any]]
"""An event name and its fields (JSON-serialisable)."""

_USER_AGENT = "automator-notify/1"
_MAX_RETRY_AFTER = 300.0
_MAX_LISTED = 10  # objects / changes listed in one drift_found or Slack line


def signature(secret: str, body: bytes) -> str:
    """The ``X-Automator-Signature`` header value: ``sha256=`` + HMAC-SHA256 hex of the body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class _Item:
    endpoint: int
    event: str
    body: dict[str, Any]


class _Retry(Exception):
    """A send worth retrying; ``delay`` is the server's Retry-After, when it gave one."""

    def __init__(self, reason: str, delay: float | None = None) -> None:
        super().__init__(reason)
        self.delay = delay


class _Permanent(Exception):
    """A send not worth retrying (4xx other than 429)."""


class Notifier:
    """Posts events to the configured endpoints from one background thread."""

    def __init__(
        self,
        endpoints: Sequence[NotificationSettings],
        *,
        queue_size: int = 1000,
        attempts: int = 5,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        on_outcome: Callable[[str], None] | None = None,
    ) -> None:
        """``on_outcome`` is told ``sent``, ``failed`` or ``dropped`` for every event that
        leaves the queue (the daemon counts them in a metric)."""
        self.endpoints = tuple(endpoints)
        self._on_outcome = on_outcome
        self._attempts, self._backoff, self._max_backoff = attempts, backoff, max_backoff
        self._queue: deque[_Item] = deque()
        self._size = queue_size
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._busy = False
        self.sent = self.failed = self.dropped = 0
        self._thread: threading.Thread | None = None
        if self.endpoints:
            self._thread = threading.Thread(target=self._work, name="notify", daemon=True)
            self._thread.start()

    @classmethod
    def from_settings(
        cls, settings: Settings, *, on_outcome: Callable[[str], None] | None = None
    ) -> Notifier:
        return cls(settings.notifications, on_outcome=on_outcome)

    def notify(self, event: str, fields: Mapping[str, Any]) -> None:
        """Queue ``event`` for every endpoint that wants it; returns at once, never raises."""
        body = {"event": event, "time": datetime.now(UTC).isoformat(timespec="seconds")}
        body.update(fields)
        with self._cond:
            if self._stop.is_set():
                return
            for i, ep in enumerate(self.endpoints):
                if event not in ep.events:
                    continue
                if len(self._queue) >= self._size:
                    old = self._queue.popleft()
                    self.dropped += 1
                    self._outcome("dropped")
                    log.warning(
                        "notification_dropped",
                        notification=old.event,
                        endpoint=self._name(old.endpoint),
                        dropped=self.dropped,
                        reason="queue full",
                    )
                self._queue.append(_Item(i, event, body))
            self._cond.notify()

    def notify_all(self, events: Iterable[Event]) -> None:
        for name, fields in events:
            self.notify(name, fields)

    def close(self, timeout: float = 5.0) -> None:
        """Give queued events up to ``timeout`` seconds to go out, then stop the worker."""
        if self._thread is None:
            return
        with self._cond:
            self._cond.wait_for(lambda: not self._queue and not self._busy, timeout=timeout)
            left = len(self._queue)
            self._stop.set()
            self._cond.notify_all()
        if left:
            log.warning("notifications_abandoned", count=left)
        self._thread.join(timeout=1.0)

    # -- the worker ---------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            with self._cond:
                self._busy = False
                self._cond.notify_all()
                self._cond.wait_for(lambda: self._queue or self._stop.is_set())
                if self._stop.is_set():
                    return
                item = self._queue.popleft()
                self._busy = True
            try:
                self._deliver(item)
            except Exception:  # never let one bad event kill the worker
                log.exception("notification_crashed", notification=item.event)

    def _deliver(self, item: _Item) -> None:
        ep = self.endpoints[item.endpoint]
        name = self._name(item.endpoint)
        try:
            url = read_secret(ep.url_ref, key=f"notifications[{item.endpoint}].url") or ep.url
            secret = read_secret(ep.secret, key=f"notifications[{item.endpoint}].secret")
        except ConfigError as exc:
            self.failed += 1
            self._outcome("failed")
            log.error("notification_failed", notification=item.event, endpoint=name, error=str(exc))
            return
        assert url is not None  # exactly one of url / url_env / url_file is set
        where = _where(url)
        payload = {"text": slack_text(item.event, item.body)} if ep.kind == "slack" else item.body
        data = json.dumps(payload, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": _USER_AGENT,
            "X-Automator-Event": item.event,
        }
        if secret:
            headers["X-Automator-Signature"] = signature(secret, data)
        for attempt in range(1, self._attempts + 1):
            try:
                status = self._post(url, data, headers, ep.timeout)
            except _Retry as exc:
                if attempt == self._attempts or self._stop.is_set():
                    self._give_up(item, name, where, attempt, str(exc))
                    return
                delay = exc.delay if exc.delay is not None else self._delay(attempt)
                log.info(
                    "notification_retry",
                    notification=item.event,
                    endpoint=name,
                    host=where,
                    attempt=attempt,
                    error=str(exc),
                    delay_s=round(delay, 3),
                )
                if self._stop.wait(delay):
                    self._give_up(item, name, where, attempt, "shutting down")
                    return
                continue
            except _Permanent as exc:
                self._give_up(item, name, where, attempt, str(exc))
                return
            self.sent += 1
            self._outcome("sent")
            log.info(
                "notification_sent",
                notification=item.event,
                endpoint=name,
                host=where,
                status=status,
                attempts=attempt,
            )
            return

    def _post(self, url: str, data: bytes, headers: dict[str, str], timeout: float) -> int:
        if not url.startswith(("http://", "https://")):
            raise _Permanent("the URL must start with http:// or https://; fix the setting")
        request = urllib.request.Request(url, data=data, headers=headers, method="POST")  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                response.read()
                return int(response.status)
        except urllib.error.HTTPError as exc:
            with contextlib.closing(exc):
                status = exc.code
                retry_after = exc.headers.get("Retry-After") if exc.headers else None
            if status == 429 or status >= 500:
                raise _Retry(f"HTTP {status}", _retry_after(retry_after)) from None
            raise _Permanent(f"HTTP {status}; check the endpoint's URL and secret") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise _Retry(redact_urls(f"{type(exc).__name__}: {reason}").replace(url, "")) from None

    def _delay(self, attempt: int) -> float:
        base: float = min(self._max_backoff, self._backoff * 2.0 ** (attempt - 1))
        return base / 2 + random.uniform(0, base / 2)

    def _give_up(self, item: _Item, name: str, where: str, attempts: int, error: str) -> None:
        self.failed += 1
        self._outcome("failed")
        log.warning(
            "notification_failed",
            notification=item.event,
            endpoint=name,
            host=where,
            attempts=attempts,
            error=error,
        )

    def _outcome(self, result: str) -> None:
        if self._on_outcome is not None:
            self._on_outcome(result)

    def _name(self, index: int) -> str:
        return f"notifications[{index}] {self.endpoints[index].kind}"


def _where(url: str) -> str:
    """``scheme://host[:port]`` of a URL: all a log may say of it (the path may be a key)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}" + (f":{parts.port}" if parts.port else "")


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), capped."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = (when - datetime.now(UTC)).total_seconds()
    return max(0.0, min(seconds, _MAX_RETRY_AFTER))


def slack_text(event: str, body: Mapping[str, Any]) -> str:
    """One readable line for a Slack message."""
    if event == "update_committed":
        changes = body.get("changes", [])
        listed = ", ".join(
            f"{c['workload']}/{c['container']} {c['old']} -> {c['new']}"
            for c in changes[:_MAX_LISTED]
        )
        more = f" (+{len(changes) - _MAX_LISTED} more)" if len(changes) > _MAX_LISTED else ""
        return (
            f"Automator committed {str(body.get('commit'))[:12]} to {body.get('branch')}: "
            f"{listed}{more}"
        )
    if event == "push_failed":
        return (
            f"Automator could not push after {body.get('attempts')} attempts "
            f"(retry budget exhausted): {body.get('error')}"
        )
    if event == "registry_failing":
        return (
            f"Registry {body.get('host')} has failed for {body.get('cycles')} cycles in a row; "
            "its workloads are left unchanged"
        )
    if event == "registry_recovered":
        return f"Registry {body.get('host')} answers again"
    if event == "sync_failed":
        return f"Sync of revision {body.get('revision')} failed: {body.get('error')}"
    if event == "drift_found":
        objects = ", ".join(str(o) for o in body.get("objects", []))
        return f"Drift: {body.get('count')} object(s) differ from Git: {objects}"
    return f"Automator event {event}"


class CycleEvents:
    """Which events a cycle or a sync gives rise to (and the streaks some events need)."""

    def __init__(self, *, branch: str, threshold: int = 3) -> None:
        self._branch, self._threshold = branch, threshold
        self._streaks: dict[str, int] = {}
        self._drift: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> CycleEvents:
        return cls(branch=settings.git.target_branch, threshold=settings.registry_failure_threshold)

    def cycle(self, result: CycleResult, *, partial: bool = False) -> list[Event]:
        """Events of one automation cycle. A ``partial`` (webhook) cycle saw only some
        registries, so it neither extends nor ends a registry's failure streak."""
        events: list[Event] = []
        if result.commit is not None:
            changes = [
                {
                    "file": c.field.file,
                    "workload": c.field.ref,
                    "container": c.field.container,
                    "old": c.current,
                    "new": c.new,
                }
                for c in result.changes
            ]
            fields = {"commit": result.commit, "branch": self._branch, "changes": changes}
            events.append(("update_committed", fields))
        if result.push_exhausted:
            errors = [str(f) for f in result.failures if f.subject.startswith("git ")]
            error = errors[-1] if errors else "push rejected"
            events.append(("push_failed", {"attempts": result.attempts, "error": error}))
        if not partial and result.revision is not None:
            events += self._registries(set(result.registries_failed))
        return events

    def _registries(self, failing: set[str]) -> list[Event]:
        events: list[Event] = []
        for host in sorted(failing):
            self._streaks[host] = self._streaks.get(host, 0) + 1
            if self._streaks[host] == self._threshold:
                events.append(("registry_failing", {"host": host, "cycles": self._threshold}))
        for host in sorted(set(self._streaks) - failing):
            if self._streaks.pop(host) >= self._threshold:
                events.append(("registry_recovered", {"host": host}))
        return events

    def sync(self, report: SyncReport) -> list[Event]:
        """Events of one sync: a failed one, and drift when the drifted set changes."""
        events: list[Event] = []
        if report.result == "failed":
            error = report.message or "; ".join(report.errors[:3]) or "sync failed"
            events.append(("sync_failed", {"revision": report.revision, "error": error}))
        drifted = tuple(sorted(d.id for d in report.drift))
        if drifted and drifted != self._drift:
            fields = {"count": len(drifted), "objects": list(drifted[:_MAX_LISTED])}
            events.append(("drift_found", fields))
        if report.result != "refused":
            self._drift = drifted
        return events
