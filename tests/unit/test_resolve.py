"""The resolver keeps registries apart: a hanging one fails alone, within the scan budget."""

from __future__ import annotations

import json
import threading

import httpx

from automator.config import settings_from_mapping
from automator.errors import RegistryUnavailable
from automator.images import ImageRef
from automator.registry import RegistryClient
from automator.resolve import Resolver


def test_a_hanging_registry_fails_alone_and_the_others_still_resolve() -> None:
    release = threading.Event()
    started = threading.Event()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "slow.example":
            started.set()
            release.wait(30)  # hangs until the test is done with it
            return httpx.Response(503)
        if request.url.path == "/v2/":
            return httpx.Response(200)
        repo = request.url.path.removeprefix("/v2/").removesuffix("/tags/list")
        return httpx.Response(200, content=json.dumps({"name": repo, "tags": ["1.0.0", "1.1.0"]}))

    settings = settings_from_mapping({"git": {"url": "file:///x"}})
    client = RegistryClient(settings, transport=httpx.MockTransport(handler), retries=0)
    try:
        resolver = Resolver(client, max_concurrency=4, budget=2.0)
        refs = [ImageRef.parse(f"fast.example/app{i}:1.0.0") for i in range(6)]
        refs.append(ImageRef.parse("slow.example/app:1.0.0"))
        got = resolver.tags(refs)
    finally:
        release.set()
        client.close()

    assert started.is_set()
    for i in range(6):
        assert got[f"fast.example/app{i}"] == ["1.0.0", "1.1.0"]
    slow = got["slow.example/app"]
    assert isinstance(slow, RegistryUnavailable)
    assert "scan budget of 2s exceeded" in str(slow)


def test_without_a_budget_every_lookup_completes() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=json.dumps({"name": "x", "tags": ["a"]}))

    settings = settings_from_mapping({"git": {"url": "file:///x"}})
    with RegistryClient(settings, transport=httpx.MockTransport(handler)) as client:
        resolver = Resolver(client, max_concurrency=2, concurrency_for=lambda host: 1)
        got = resolver.tags(ImageRef.parse(f"r{i % 3}.example/app{i}") for i in range(9))
    assert got == {f"r{i % 3}.example/app{i}": ["a"] for i in range(9)}
