"""Transient failures: retried with backoff (sleep is injected, so nothing waits), then
reported as RegistryUnavailable carrying the server's Retry-After hint."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from automator.errors import RegistryUnavailable, TransientError
from automator.images import ImageRef
from tests.unit.registry._fakes import Handler, make_settings, tags_response

from .conftest import ClientFor

IMAGE = ImageRef.parse("reg.example/team/app")


def _fail_then_succeed(*failures: httpx.Response | Exception) -> Handler:
    queue = list(failures)

    def handler(req: httpx.Request) -> httpx.Response:
        if queue:
            failure = queue.pop(0)
            if isinstance(failure, Exception):
                raise failure
            return failure
        return tags_response("1.0")

    return handler


def test_429_with_retry_after_waits_as_told_then_succeeds(
    client_for: ClientFor, sleeps: list[float]
) -> None:
    client, rec = client_for(_fail_then_succeed(httpx.Response(429, headers={"Retry-After": "7"})))

    assert client.list_tags(IMAGE) == ["1.0"]
    assert sleeps == [7.0]
    assert len(rec.requests) == 2


def test_retry_after_as_an_http_date_is_understood(
    client_for: ClientFor, sleeps: list[float]
) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=20), usegmt=True)
    client, _ = client_for(_fail_then_succeed(httpx.Response(429, headers={"Retry-After": when})))

    client.list_tags(IMAGE)
    assert len(sleeps) == 1
    assert 10 < sleeps[0] <= 20


def test_429_without_retry_after_backs_off_exponentially(
    client_for: ClientFor, sleeps: list[float]
) -> None:
    client, _ = client_for(
        _fail_then_succeed(httpx.Response(429), httpx.Response(429), httpx.Response(429))
    )

    assert client.list_tags(IMAGE) == ["1.0"]
    assert len(sleeps) == 3
    # Jitter keeps each delay within [half, full] of 0.25 * 2**attempt.
    for attempt, delay in enumerate(sleeps):
        assert 0.125 * 2**attempt <= delay <= 0.25 * 2**attempt


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_retried_then_succeed(
    client_for: ClientFor, sleeps: list[float], status: int
) -> None:
    client, rec = client_for(_fail_then_succeed(httpx.Response(status), httpx.Response(status)))

    assert client.list_tags(IMAGE) == ["1.0"]
    assert len(rec.requests) == 3
    assert len(sleeps) == 2


def test_network_errors_are_retried_then_succeed(
    client_for: ClientFor, sleeps: list[float]
) -> None:
    client, _ = client_for(
        _fail_then_succeed(httpx.ConnectError("refused"), httpx.ReadTimeout("slow"))
    )

    assert client.list_tags(IMAGE) == ["1.0"]
    assert len(sleeps) == 2


def test_exhausted_retries_raise_unavailable_with_the_hint(
    client_for: ClientFor, sleeps: list[float]
) -> None:
    client, rec = client_for(
        lambda req: httpx.Response(503, headers={"Retry-After": "2"}), retries=2
    )

    with pytest.raises(RegistryUnavailable) as err:
        client.list_tags(IMAGE)

    assert isinstance(err.value, TransientError)
    assert err.value.retry_after == 2.0
    assert "registry reg.example: server error (HTTP 503) for team/app" in str(err.value)
    assert len(rec.requests) == 3
    assert sleeps == [2.0, 2.0]


def test_exhausted_network_retries_keep_the_cause(client_for: ClientFor) -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    client, _ = client_for(handler, retries=1)

    with pytest.raises(RegistryUnavailable, match=r"cannot reach reg\.example") as err:
        client.list_tags(IMAGE)
    assert isinstance(err.value.__cause__, httpx.ConnectError)


def test_a_long_retry_after_is_handed_to_the_caller_instead_of_slept(
    client_for: ClientFor, sleeps: list[float]
) -> None:
    client, rec = client_for(lambda req: httpx.Response(429, headers={"Retry-After": "3600"}))

    with pytest.raises(RegistryUnavailable, match="rate limited") as err:
        client.list_tags(IMAGE)
    assert err.value.retry_after == 3600.0
    assert sleeps == []
    assert len(rec.requests) == 1


def test_retries_zero_means_one_attempt(client_for: ClientFor, sleeps: list[float]) -> None:
    client, rec = client_for(lambda req: httpx.Response(500), retries=0)

    with pytest.raises(RegistryUnavailable):
        client.list_tags(IMAGE)
    assert len(rec.requests) == 1
    assert sleeps == []


def test_token_service_outages_are_retried_too(client_for: ClientFor, sleeps: list[float]) -> None:
    failures = [httpx.Response(502)]

    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.host == "auth.example":
            return failures.pop() if failures else httpx.Response(200, json={"token": "t"})
        if req.headers.get("authorization") == "Bearer t":
            return tags_response("1.0")
        challenge = 'Bearer realm="https://auth.example/token",service="reg"'
        return httpx.Response(401, headers={"WWW-Authenticate": challenge})

    client, _ = client_for(handler, make_settings())

    assert client.list_tags(IMAGE) == ["1.0"]
    assert len(sleeps) == 1
