"""Prometheus counters, read back from the caller's own CollectorRegistry; and the
promise that no secret reaches a label, a log line or an exception."""

from __future__ import annotations

import base64
import logging

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from structlog.testing import capture_logs

from automator.errors import RegistryAuthError
from automator.images import ImageRef
from automator.registry import RegistryMetrics
from tests.unit.registry._fakes import make_settings, tags_response

from .conftest import ClientFor

IMAGE = ImageRef.parse("reg.example/team/app")
PASSWORD = "pw-very-secret-42"
TOKEN = "tok-very-secret-43"


def _value(collectors: CollectorRegistry, name: str, /, **labels: str) -> float:
    return collectors.get_sample_value(name, labels) or 0.0


def test_requests_retries_throttling_and_tags_are_counted(client_for: ClientFor) -> None:
    collectors = CollectorRegistry()
    answers = [
        httpx.Response(503),
        httpx.Response(429, headers={"Retry-After": "3"}),
    ]

    def handler(req: httpx.Request) -> httpx.Response:
        if answers:
            return answers.pop()
        return tags_response("a", "b", "c")

    client, _ = client_for(handler, metrics=RegistryMetrics(collectors))

    client.list_tags(IMAGE)

    requests = "automator_registry_requests_total"
    assert _value(collectors, requests, registry="reg.example", method="GET", status="429") == 1
    assert _value(collectors, requests, registry="reg.example", method="GET", status="503") == 1
    assert _value(collectors, requests, registry="reg.example", method="GET", status="200") == 1
    retries = "automator_registry_retries_total"
    assert _value(collectors, retries, registry="reg.example", reason="rate_limited") == 1
    assert _value(collectors, retries, registry="reg.example", reason="server_error") == 1
    throttle = "automator_registry_throttle_seconds_total"
    assert _value(collectors, throttle, registry="reg.example") == pytest.approx(3.0)
    assert _value(collectors, "automator_registry_tags_total", registry="reg.example") == 3


def test_network_errors_are_counted_with_status_error(client_for: ClientFor) -> None:
    collectors = CollectorRegistry()
    failures: list[Exception] = [httpx.ConnectError("refused"), httpx.ReadTimeout("slow")]

    def handler(req: httpx.Request) -> httpx.Response:
        if failures:
            raise failures.pop()
        return tags_response("a")

    client, _ = client_for(handler, metrics=RegistryMetrics(collectors))
    client.list_tags(IMAGE)

    requests = "automator_registry_requests_total"
    assert _value(collectors, requests, registry="reg.example", method="GET", status="error") == 2
    retries = "automator_registry_retries_total"
    assert _value(collectors, retries, registry="reg.example", reason="timeout") == 1
    assert _value(collectors, retries, registry="reg.example", reason="connection") == 1


def test_two_metrics_objects_in_separate_registries_do_not_collide() -> None:
    first, second = CollectorRegistry(), CollectorRegistry()
    RegistryMetrics(first).request("a", "GET", 200)
    RegistryMetrics(second)

    assert (
        _value(first, "automator_registry_requests_total", registry="a", method="GET", status="200")
        == 1
    )
    assert (
        second.get_sample_value(
            "automator_registry_requests_total", {"registry": "a", "method": "GET", "status": "200"}
        )
        is None
    )


def test_no_secret_appears_in_metrics_logs_or_errors(
    client_for: ClientFor, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("REG_PW", PASSWORD)
    basic = "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    challenge = 'Bearer realm="https://auth.example/token",service="reg"'
    throttled: list[bool] = []

    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.host == "auth.example":
            return httpx.Response(200, json={"token": TOKEN, "expires_in": 300})
        if req.headers.get("authorization") == f"Bearer {TOKEN}":
            if not throttled:
                throttled.append(True)
                return httpx.Response(429, headers={"Retry-After": "1"})
            if req.url.params.get("last") is None:
                return tags_response("a", link="</v2/team/app/tags/list?last=a>; rel=next")
            return httpx.Response(403)
        return httpx.Response(401, headers={"WWW-Authenticate": challenge})

    collectors = CollectorRegistry()
    settings = make_settings({"host": "reg.example", "username": "alice", "password_env": "REG_PW"})
    client, _ = client_for(handler, settings, retries=1, metrics=RegistryMetrics(collectors))
    caplog.set_level(logging.DEBUG)

    with capture_logs() as logs, pytest.raises(RegistryAuthError) as err:
        client.list_tags(IMAGE)

    exposition = generate_latest(collectors).decode()
    everything = " ".join(
        [exposition, repr(logs), caplog.text, str(err.value), repr(err.value), repr(client.stats())]
    )
    for secret in (PASSWORD, TOKEN, basic, base64.b64encode(PASSWORD.encode()).decode()):
        assert secret not in everything
    assert "automator_registry_requests_total" in exposition
    assert (
        _value(
            collectors,
            "automator_registry_requests_total",
            registry="reg.example",
            method="GET",
            status="403",
        )
        == 1
    )
