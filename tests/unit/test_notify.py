"""Notifications: delivered to a real loopback HTTP server, signed, retried, never blocking."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from automator.config import NotificationSettings, settings_from_mapping
from automator.engine import CycleResult, Failure, PlannedChange
from automator.errors import ConfigError
from automator.manifests import ImageField
from automator.notify import CycleEvents, Notifier
from automator.sync import SyncReport
from tests.support.process import wait_until

CANARY = "canary-9f3c1d"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Endpoint:
    """A loopback server answering from a script of (status, headers) replies, then 200."""

    url: str
    requests: list[Received] = field(default_factory=list)
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    gate: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    ep = Endpoint(url="")
    ep.gate.set()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            ep.gate.wait(30)
            ep.requests.append(Received(self.path, dict(self.headers.items()), body))
            status, headers = ep.script.pop(0) if ep.script else (200, {})
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    ep.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/{CANARY}"
    try:
        yield ep
    finally:
        ep.gate.set()
        server.shutdown()
        server.server_close()


def webhook(url: str, **extra: Any) -> NotificationSettings:
    return NotificationSettings.model_validate({"kind": "webhook", "url": url, **extra})


def test_a_webhook_event_is_json_with_its_fields_and_an_hmac_of_the_raw_body(
    endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SECRET", CANARY)
    notifier = Notifier([webhook(endpoint.url, secret_env="NOTIFY_SECRET")])
    notifier.notify("push_failed", {"attempts": 4, "error": "rejected"})
    notifier.close(timeout=30)

    (req,) = endpoint.requests
    assert req.json()["event"] == "push_failed"
    assert req.json()["attempts"] == 4
    assert "time" in req.json()
    assert req.headers["X-Automator-Event"] == "push_failed"
    expected = hmac.new(CANARY.encode(), req.body, hashlib.sha256).hexdigest()
    assert req.headers["X-Automator-Signature"] == f"sha256={expected}"
    assert notifier.sent == 1


def test_an_unsigned_webhook_has_no_signature_header(endpoint: Endpoint) -> None:
    notifier = Notifier([webhook(endpoint.url)])
    notifier.notify("registry_recovered", {"host": "ghcr.io"})
    notifier.close(timeout=30)
    (req,) = endpoint.requests
    assert "X-Automator-Signature" not in req.headers


def test_a_slack_endpoint_gets_one_readable_text_line_from_a_url_read_at_send_time(
    endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLACK_WEBHOOK_URL", endpoint.url)
    slack = NotificationSettings(kind="slack", url_env="SLACK_WEBHOOK_URL")
    notifier = Notifier([slack])
    change = {"file": "a.yaml", "workload": "Deployment/-/api", "container": "api"}
    notifier.notify(
        "update_committed",
        {
            "commit": "abcdef1234567890",
            "branch": "main",
            "changes": [change | {"old": "r/api:1.0", "new": "r/api:1.1"}],
        },
    )
    notifier.close(timeout=30)

    (req,) = endpoint.requests
    body = req.json()
    assert list(body) == ["text"]
    assert "\n" not in body["text"]
    assert "abcdef123456" in body["text"]
    assert "r/api:1.0 -> r/api:1.1" in body["text"]


def test_a_server_error_is_retried_until_the_event_is_delivered(endpoint: Endpoint) -> None:
    endpoint.script = [(500, {}), (503, {})]
    notifier = Notifier([webhook(endpoint.url)], backoff=0.01)
    notifier.notify("sync_failed", {"revision": "abc", "error": "boom"})
    notifier.close(timeout=30)
    assert len(endpoint.requests) == 3
    assert notifier.sent == 1
    assert notifier.failed == 0


def test_a_429_is_retried_after_the_delay_the_server_asks_for(endpoint: Endpoint) -> None:
    endpoint.script = [(429, {"Retry-After": "1"})]
    notifier = Notifier([webhook(endpoint.url)], backoff=0.01)
    with capture_logs() as logs:
        notifier.notify("drift_found", {"count": 1, "objects": ["Deployment/x/api"]})
        notifier.close(timeout=30)
    assert len(endpoint.requests) == 2
    (retry,) = [e for e in logs if e["event"] == "notification_retry"]
    assert retry["delay_s"] == 1.0
    assert retry["error"] == "HTTP 429"


def test_a_client_error_is_not_retried(endpoint: Endpoint) -> None:
    endpoint.script = [(404, {})]
    notifier = Notifier([webhook(endpoint.url)], backoff=0.01)
    with capture_logs() as logs:
        notifier.notify("sync_failed", {"revision": "abc", "error": "boom"})
        notifier.close(timeout=30)
    assert len(endpoint.requests) == 1
    assert notifier.failed == 1
    assert [e["attempts"] for e in logs if e["event"] == "notification_failed"] == [1]


def test_a_full_queue_drops_the_oldest_events_counts_them_and_never_blocks(
    endpoint: Endpoint,
) -> None:
    endpoint.gate.clear()  # the server holds every request: the worker is stuck on one
    notifier = Notifier([webhook(endpoint.url)], queue_size=3)
    with capture_logs() as logs:
        for i in range(10):
            notifier.notify("registry_recovered", {"host": f"h{i}"})
        # the call returned while nothing could be delivered
        assert notifier.sent == 0
        dropped = notifier.dropped
        endpoint.gate.set()
        notifier.close(timeout=30)
    assert dropped in (6, 7)  # 10 minus 3 queued, minus the one in flight if picked up
    assert len([e for e in logs if e["event"] == "notification_dropped"]) == dropped
    hosts = [r.json()["host"] for r in endpoint.requests]
    assert hosts[-3:] == ["h7", "h8", "h9"]  # the newest survive


def test_an_endpoint_that_never_answers_does_not_hold_up_notify() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts the connection in the kernel, never answers
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
        notifier = Notifier([webhook(url, timeout="30s")])
        notifier.notify("push_failed", {"attempts": 1, "error": "x"})
        notifier.notify("push_failed", {"attempts": 2, "error": "x"})
        assert notifier.sent == 0
        assert notifier.failed == 0
        notifier.close(timeout=0)
    finally:
        listener.close()


def test_an_unreachable_endpoint_is_given_up_after_the_capped_attempts() -> None:
    port = _closed_port()
    notifier = Notifier([webhook(f"http://127.0.0.1:{port}/")], attempts=3, backoff=0.01)
    with capture_logs() as logs:
        notifier.notify("push_failed", {"attempts": 1, "error": "x"})
        wait_until(lambda: notifier.failed == 1, timeout=30, what="the notification to fail")
        notifier.close(timeout=1)
    (failed,) = [e for e in logs if e["event"] == "notification_failed"]
    assert failed["attempts"] == 3
    assert failed["host"] == f"http://127.0.0.1:{port}"


def test_neither_the_secret_nor_the_secret_part_of_a_url_is_ever_logged(
    endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("NOTIFY_SECRET", CANARY)
    monkeypatch.setenv("SLACK_WEBHOOK_URL", endpoint.url)
    dead = f"http://127.0.0.1:{_closed_port()}/services/{CANARY}"
    (tmp_path / "url").write_text(dead)
    endpoint.script = [(500, {}), (403, {})]
    notifier = Notifier(
        [
            webhook(endpoint.url, secret_env="NOTIFY_SECRET"),
            NotificationSettings(kind="slack", url_env="SLACK_WEBHOOK_URL"),
            NotificationSettings(kind="webhook", url_file=tmp_path / "url"),
        ],
        attempts=2,
        backoff=0.01,
    )
    with capture_logs() as logs:
        notifier.notify("sync_failed", {"revision": "abc", "error": "boom"})
        wait_until(lambda: notifier.sent + notifier.failed == 3, timeout=30, what="3 outcomes")
        notifier.close(timeout=1)
    assert {e["event"] for e in logs} >= {"notification_sent", "notification_failed"}
    assert CANARY not in repr(logs)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- events derived from cycles and syncs --------------------------------------------------


def _field(image: str = "reg.example/api:1.0.0") -> ImageField:
    return ImageField(
        file="api.yaml",
        doc=0,
        kind="Deployment",
        namespace="prod",
        name="api",
        container="api",
        init=False,
        image=image,
        policy="semver:>=1.0.0",
        filter=None,
        extract=None,
        source="automator.gitops.io/policy",
        line=12,
    )


def test_a_pushed_commit_gives_update_committed_with_every_change() -> None:
    events = CycleEvents(branch="main")
    result = CycleResult(
        changes=[PlannedChange(_field(), "reg.example/api:1.1.0")], commit="c0ffee", revision="r"
    )
    assert events.cycle(result) == [
        (
            "update_committed",
            {
                "commit": "c0ffee",
                "branch": "main",
                "changes": [
                    {
                        "file": "api.yaml",
                        "workload": "Deployment/prod/api",
                        "container": "api",
                        "old": "reg.example/api:1.0.0",
                        "new": "reg.example/api:1.1.0",
                    }
                ],
            },
        )
    ]


def test_a_cycle_without_a_commit_gives_no_update_event() -> None:
    assert CycleEvents(branch="main").cycle(CycleResult(unchanged=3, revision="r")) == []


def test_an_exhausted_push_budget_gives_push_failed_with_the_attempts_and_the_error() -> None:
    failure = Failure("git file:///repo.git", "push to main rejected: fetch first")
    result = CycleResult(failures=[failure], attempts=4, push_exhausted=True, revision="r")
    assert CycleEvents(branch="main").cycle(result) == [
        (
            "push_failed",
            {"attempts": 4, "error": "git file:///repo.git: push to main rejected: fetch first"},
        )
    ]


def test_a_registry_is_reported_failing_once_after_n_full_cycles_and_then_recovered() -> None:
    events = CycleEvents(branch="main", threshold=3)
    failing = CycleResult(revision="r", registries_failed=("ghcr.io",))
    assert events.cycle(failing) == []
    assert events.cycle(failing) == []
    assert events.cycle(failing, partial=True) == []  # a webhook cycle does not count
    assert events.cycle(failing) == [("registry_failing", {"host": "ghcr.io", "cycles": 3})]
    assert events.cycle(failing) == []  # once, not every cycle
    assert events.cycle(CycleResult(revision="r", failures=[])) == [
        ("registry_recovered", {"host": "ghcr.io"})
    ]
    assert events.cycle(CycleResult(revision="r")) == []


def test_a_registry_that_recovers_before_the_threshold_is_never_reported() -> None:
    events = CycleEvents(branch="main", threshold=3)
    assert events.cycle(CycleResult(revision="r", registries_failed=("ghcr.io",))) == []
    assert events.cycle(CycleResult(revision="r")) == []
    assert events.cycle(CycleResult(revision="r", registries_failed=("ghcr.io",))) == []


def test_a_cycle_that_never_reached_the_registries_does_not_end_a_failure_streak() -> None:
    events = CycleEvents(branch="main", threshold=1)
    assert events.cycle(CycleResult(revision="r", registries_failed=("q.io",)))[0][0] == (
        "registry_failing"
    )
    assert events.cycle(CycleResult(revision=None)) == []  # git was down: no news
    assert events.cycle(CycleResult(revision="r")) == [("registry_recovered", {"host": "q.io"})]


def test_a_failed_sync_and_new_drift_give_their_events_once() -> None:
    from automator.sync.syncer import DriftReport

    events = CycleEvents(branch="main")
    drift = [DriftReport(id="Deployment/prod/api", source="api.yaml", differences=())]
    report = SyncReport(revision="abc", result="failed", message="apply failed", drift=drift)
    assert events.sync(report) == [
        ("sync_failed", {"revision": "abc", "error": "apply failed"}),
        ("drift_found", {"count": 1, "objects": ["Deployment/prod/api"]}),
    ]
    assert events.sync(SyncReport(revision="abc", drift=drift)) == []  # same drift


# -- settings --------------------------------------------------------------------------------


def _settings(notifications: object) -> object:
    return settings_from_mapping(
        {"git": {"url": "file:///repo.git"}, "notifications": notifications}
    )


def test_the_contract_example_is_valid_and_events_default_to_all() -> None:
    s: Any = _settings(
        [
            {"kind": "slack", "url_env": "SLACK_WEBHOOK_URL"},
            {"kind": "webhook", "url": "https://hooks.example/automator", "secret_env": "S"},
        ]
    )
    assert s.notifications[0].events[0] == "update_committed"
    assert len(s.notifications[1].events) == 6
    assert s.registry_failure_threshold == 3


def test_a_notification_needs_exactly_one_url_source() -> None:
    with pytest.raises(ConfigError, match=r"notifications\[0\].*exactly one of url, url_env"):
        _settings([{"kind": "webhook", "url": "https://a.example", "url_env": "X"}])
    with pytest.raises(ConfigError, match=r"notifications\[0\].*exactly one"):
        _settings([{"kind": "webhook"}])


def test_an_unknown_event_name_is_refused_with_the_valid_ones_listed() -> None:
    with pytest.raises(ConfigError, match=r"notifications\[0\]\.events.*valid events: update_"):
        _settings([{"kind": "webhook", "url": "https://a.example", "events": ["pushed"]}])


def test_a_missing_notification_url_variable_stops_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from automator.config import load_settings

    monkeypatch.delenv("NO_SUCH_SLACK_URL", raising=False)
    config = tmp_path / "automator.yaml"
    config.write_text(
        "git: {url: 'file:///repo.git'}\n"
        "notifications: [{kind: slack, url_env: NO_SUCH_SLACK_URL}]\n"
    )
    with pytest.raises(ConfigError, match=r"notifications\[0\]\.url_env: .*NO_SUCH_SLACK_URL"):
        load_settings(config)


class _FailingSynchronizer:
    """A stand-in whose every sync fails with drift found."""

    def run(self, *, dry_run: bool = False) -> SyncReport:
        from automator.sync.syncer import DriftReport

        drift = [DriftReport(id="Deployment/prod/api", source="api.yaml", differences=())]
        return SyncReport(revision="abc", result="failed", message="apply refused", drift=drift)

    def interrupt(self) -> None:
        pass


def test_the_sync_daemon_posts_sync_failed_and_drift_found(endpoint: Endpoint) -> None:
    from typing import cast

    from automator.daemon import run_sync_daemon
    from automator.sync import Synchronizer

    settings = settings_from_mapping(
        {
            "git": {"url": "file:///dev/null"},
            "sync": {"interval": "1h"},
            "notifications": [{"kind": "webhook", "url": endpoint.url}],
        }
    )
    stop = threading.Event()
    fake = cast(Synchronizer, cast(Any, _FailingSynchronizer()))
    daemon = threading.Thread(target=run_sync_daemon, args=(settings, fake), kwargs={"stop": stop})
    daemon.start()
    try:
        wait_until(lambda: len(endpoint.requests) >= 2, timeout=60, what="two notifications")
    finally:
        stop.set()
        daemon.join(timeout=60)
    events = {r.json()["event"]: r.json() for r in endpoint.requests}
    assert events["sync_failed"]["error"] == "apply refused"
    assert events["drift_found"]["objects"] == ["Deployment/prod/api"]


def test_a_slack_endpoint_cannot_be_given_a_signing_secret() -> None:
    with pytest.raises(ConfigError, match=r"notifications\[0\].*slack endpoint is not signed"):
        _settings([{"kind": "slack", "url_env": "U", "secret_env": "S"}])


def test_a_notification_timeout_is_a_duration() -> None:
    s: Any = _settings([{"kind": "webhook", "url": "https://a.example", "timeout": "2s"}])
    assert s.notifications[0].timeout == 2.0
    with pytest.raises(ConfigError, match=r"notifications\[0\]\.timeout"):
        _settings([{"kind": "webhook", "url": "https://a.example", "timeout": "soon"}])
