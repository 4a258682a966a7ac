"""Per-registry limits: token-bucket rate, adaptive slowdown on 429, concurrency caps,
timeouts and the stats snapshot. Time is a fake clock that sleeping advances."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import FrozenInstanceError

import httpx
import pytest

from automator.errors import RegistryUnavailable
from automator.images import ImageRef
from automator.registry import RegistryStats
from automator.registry._limits import MIN_RATE, RateLimiter
from tests.unit.registry._fakes import FakeClock, make_settings, tags_response

from .conftest import ClientFor

IMAGE = ImageRef.parse("reg.example/team/app")


def test_the_rate_limit_spaces_requests_by_its_period(
    client_for: ClientFor, sleeps: list[float]
) -> None:
    settings = make_settings({"host": "reg.example", "rate_limit": 4})
    client, rec = client_for(lambda req: tags_response("1"), settings)

    for _ in range(9):
        client.list_tags(IMAGE)

    # A burst of one second's worth (4) goes at once, then one request every 0.25 s.
    assert sleeps == pytest.approx([0.25] * 5)
    assert len(rec.requests) == 9
    assert client.stats()["reg.example"].throttle_wait_seconds == pytest.approx(1.25)


def test_an_explicit_burst_of_one_spaces_every_request(
    client_for: ClientFor, sleeps: list[float], clock: FakeClock
) -> None:
    settings = make_settings({"host": "reg.example", "rate_limit": 2, "burst": 1})
    client, _ = client_for(lambda req: tags_response("1"), settings)

    client.list_tags(IMAGE)
    clock.now += 10  # idle time refills the bucket, but never above the burst
    for _ in range(3):
        client.list_tags(IMAGE)

    assert sleeps == pytest.approx([0.5, 0.5])


def test_reservations_from_many_threads_queue_up_in_the_future() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate=10, burst=2, clock=clock)

    waits = [limiter.reserve() for _ in range(5)]

    assert waits == pytest.approx([0, 0, 0.1, 0.2, 0.3])


def test_an_unlimited_registry_never_waits(client_for: ClientFor, sleeps: list[float]) -> None:
    client, _ = client_for(lambda req: tags_response("1"))

    for _ in range(50):
        client.list_tags(IMAGE)

    assert sleeps == []


def test_a_429_halves_the_rate_and_successes_recover_it_gradually(
    client_for: ClientFor, sleeps: list[float]
) -> None:
    answers = [httpx.Response(429, headers={"Retry-After": "2"})]
    settings = make_settings({"host": "reg.example", "rate_limit": 10, "burst": 1})
    client, _ = client_for(lambda req: answers.pop() if answers else tags_response("1"), settings)

    client.list_tags(IMAGE)
    assert sleeps == pytest.approx([2.0])  # Retry-After honoured, registry-wide
    sleeps.clear()

    for _ in range(3):
        client.list_tags(IMAGE)
    # Halved to 5/s on the 429; each success adds back 5% of 10/s: 5.5, 6.0, 6.5 ...
    # The first call spends the token refilled during the pause.
    assert sleeps == pytest.approx([1 / 6.0, 1 / 6.5])

    for _ in range(20):
        client.list_tags(IMAGE)
    sleeps.clear()
    for _ in range(2):
        client.list_tags(IMAGE)
    assert sleeps == pytest.approx([0.1, 0.1])  # back at the configured 10/s


def test_repeated_429s_keep_halving_down_to_a_floor() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate=1.0, burst=1, clock=clock)

    for _ in range(12):
        limiter.throttled(0.0)

    assert limiter.rate == MIN_RATE


def test_an_unlimited_registry_that_says_429_gets_half_the_rate_it_was_sent() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate=None, burst=1, clock=clock)
    for _ in range(11):  # 20 requests per second
        limiter.reserve()
        clock.now += 0.05

    limiter.throttled(1.0)

    assert limiter.rate == pytest.approx(10.0)
    for _ in range(10):
        limiter.succeeded()
    assert limiter.rate is None  # fully recovered: unlimited again


def test_a_429_pauses_the_other_callers_of_that_registry_too(
    client_for: ClientFor, sleeps: list[float]
) -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path.startswith("/v2/first/") and not sleeps:
            return httpx.Response(429, headers={"Retry-After": "5"})
        return tags_response("1")

    client, _ = client_for(handler)

    client.list_tags(ImageRef.parse("reg.example/first/app"))
    sleeps.clear()
    client.list_tags(ImageRef.parse("other.example/app"))  # another registry: no wait
    assert sleeps == []


def test_during_a_long_429_pause_requests_fail_fast_without_being_sent(
    client_for: ClientFor, sleeps: list[float]
) -> None:
    client, rec = client_for(lambda req: httpx.Response(429, headers={"Retry-After": "600"}))

    with pytest.raises(RegistryUnavailable) as first:
        client.list_tags(IMAGE)
    with pytest.raises(RegistryUnavailable, match="asked us to wait 600s") as second:
        client.list_tags(ImageRef.parse("reg.example/team/other"))

    assert first.value.retry_after == 600
    assert second.value.retry_after == pytest.approx(600)
    assert len(rec.requests) == 1
    assert sleeps == []


def test_a_429_without_retry_after_backs_off_and_slows_down(
    client_for: ClientFor, sleeps: list[float]
) -> None:
    answers = [httpx.Response(429), httpx.Response(429)]
    client, _ = client_for(lambda req: answers.pop() if answers else tags_response("1"))

    client.list_tags(IMAGE)

    # Each wait is at least the jittered backoff, and at least one slot of the reduced
    # rate (assumed 10/s before any measurement, halved twice: 5/s, then 2.5/s).
    assert len(sleeps) == 2
    assert 0.2 <= sleeps[0] <= 0.25
    assert 0.4 <= sleeps[1] <= 0.5
    assert client.stats()["reg.example"].retries == 2


class InFlight:
    """Counts concurrent requests per host; each waits until ``peak`` are in flight
    (or a short while), so the cap is actually reached when it can be."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.lock = threading.Condition()
        self.now: dict[str, int] = {}
        self.peak: dict[str, int] = {}

    def __call__(self, req: httpx.Request) -> httpx.Response:
        host = req.url.host
        with self.lock:
            self.now[host] = self.now.get(host, 0) + 1
            self.peak[host] = max(self.peak.get(host, 0), self.now[host])
            self.lock.notify_all()
            self.lock.wait_for(lambda: self.now[host] >= self.target, timeout=0.2)
        with self.lock:
            self.now[host] -= 1
        return tags_response("1")


def test_the_concurrency_cap_holds_with_many_threads(client_for: ClientFor) -> None:
    fake = InFlight(target=3)
    settings = make_settings({"host": "reg.example", "max_concurrency": 3})
    client, rec = client_for(fake, settings)
    images = [ImageRef.parse(f"reg.example/r{i}/app") for i in range(24)]

    with ThreadPoolExecutor(12) as pool:
        list(pool.map(client.list_tags, images))

    assert fake.peak["reg.example"] == 3
    assert len(rec.requests) == 24


def test_the_cap_defaults_to_the_top_level_max_concurrency(client_for: ClientFor) -> None:
    fake = InFlight(target=2)
    settings = make_settings()
    settings = settings.model_copy(update={"max_concurrency": 2})
    client, _ = client_for(fake, settings)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(client.list_tags, [ImageRef.parse(f"ghcr.io/o/r{i}") for i in range(16)]))

    assert fake.peak["ghcr.io"] == 2


def test_a_hanging_registry_does_not_hold_up_another(client_for: ClientFor) -> None:
    release = threading.Event()
    stuck = threading.Semaphore(0)

    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.host == "slow.example":
            stuck.release()
            release.wait(timeout=10)
        return tags_response("1")

    settings = make_settings({"host": "slow.example", "max_concurrency": 2})
    client, _ = client_for(handler, settings)

    with ThreadPoolExecutor(6) as pool:
        slow = [
            pool.submit(client.list_tags, ImageRef.parse(f"slow.example/r{i}")) for i in range(4)
        ]
        assert stuck.acquire(timeout=5)
        assert stuck.acquire(timeout=5)
        fast = [client.list_tags(ImageRef.parse(f"fast.example/r{i}")) for i in range(5)]
        assert fast == [["1"]] * 5  # answered while slow.example holds both its slots
        release.set()
        assert [f.result(timeout=10) for f in slow] == [["1"]] * 4


def test_the_per_request_timeout_comes_from_the_registry_entry(client_for: ClientFor) -> None:
    settings = make_settings({"host": "reg.example", "timeout": "2.5s"})
    client, rec = client_for(lambda req: tags_response("1"), settings)

    client.list_tags(IMAGE)
    client.list_tags(ImageRef.parse("ghcr.io/o/app"))

    assert rec.requests[0].extensions["timeout"]["read"] == 2.5
    assert rec.requests[1].extensions["timeout"]["read"] == 30.0  # the client's default


def test_a_request_that_times_out_is_retried_and_counted(
    client_for: ClientFor, sleeps: list[float]
) -> None:
    answers: list[Exception] = [httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("reset")]

    def handler(req: httpx.Request) -> httpx.Response:
        if answers:
            raise answers.pop(0)
        return tags_response("1")

    client, _ = client_for(handler)

    assert client.list_tags(IMAGE) == ["1"]
    assert len(sleeps) == 2
    assert client.stats()["reg.example"] == RegistryStats(
        requests=3, retries=2, throttle_wait_seconds=0.0, tags_seen=1
    )


def test_stats_are_a_frozen_snapshot_per_registry(client_for: ClientFor) -> None:
    client, _ = client_for(lambda req: tags_response("a", "b", "a"))

    client.list_tags(IMAGE)
    before = client.stats()
    client.list_tags(ImageRef.parse("ghcr.io/o/app"))
    after = client.stats()

    assert set(before) == {"reg.example"}
    assert before["reg.example"] == RegistryStats(requests=1, tags_seen=2)
    assert set(after) == {"reg.example", "ghcr.io"}
    with pytest.raises(FrozenInstanceError):
        after["ghcr.io"].requests = 0  # type: ignore[misc]
    with pytest.raises(TypeError):
        after["x"] = RegistryStats()  # type: ignore[index]
