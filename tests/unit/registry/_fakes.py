"""Fakes for the registry client's unit tests: a recording handler for
``httpx.MockTransport`` (we replace the transport, never our code), a hand-driven clock
and settings builders."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from automator.config import Settings, settings_from_mapping

Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """Wraps a handler, remembering every request so tests can assert on what was sent."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)

    def paths(self) -> list[str]:
        return [r.url.path for r in self.requests]

    def to(self, path: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path == path]


class FakeClock:
    """A monotonic clock that only moves when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_settings(*registries: dict[str, Any]) -> Settings:
    return settings_from_mapping(
        {"git": {"url": "file:///tmp/repo.git"}, "registries": list(registries)}
    )


def tags_response(*tags: str, link: str | None = None) -> httpx.Response:
    headers = {"Link": link} if link else {}
    return httpx.Response(200, json={"name": "x", "tags": list(tags)}, headers=headers)


def write_file(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
