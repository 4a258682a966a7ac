"""Tag-list paging helpers: tolerant ``Link`` parsing and the ETag page cache (no I/O).

Registries page ``tags/list`` with an RFC 8288 ``Link: <url>; rel="next"`` header, but in
the wild the header comes relative or absolute (with ports), with ``rel=next`` unquoted,
without the angle brackets, with extra parameters, several links in one header or one
header per link. :func:`next_link_target` accepts all of those and returns the target
as written; the caller resolves it against the request URL and follows it as given
(``last`` tokens are opaque: GHCR and Harbor do not send tag names there).
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["TagPage", "TagPageCache", "next_link_target", "parse_links"]

_VALUE_RE = re.compile(r"\s*(?:<([^>]*)>|([^<>;,\s][^;,\s]*))\s*")
_PARAM_RE = re.compile(r';\s*([^=;,\s]+)\s*(?:=\s*("(?:[^"\\]|\\.)*"|[^;,]*))?\s*')


def parse_links(headers: Iterable[str]) -> list[tuple[str, dict[str, str]]]:
    """Every ``(target, params)`` of the ``Link`` header lines; junk is skipped, not fatal.

    Parameter names are lower-cased and quoted values unquoted.
    """
    links: list[tuple[str, dict[str, str]]] = []
    for header in headers:
        pos = 0
        while pos < len(header):
            value = _VALUE_RE.match(header, pos)
            if value is None or value.end() == pos:
                comma = header.find(",", pos + 1)
                pos = len(header) if comma < 0 else comma + 1
                continue
            target = value.group(1) if value.group(1) is not None else value.group(2)
            pos = value.end()
            params: dict[str, str] = {}
            while (param := _PARAM_RE.match(header, pos)) is not None and param.end() > pos:
                raw = (param.group(2) or "").strip()
                if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
                    raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
                params.setdefault(param.group(1).lower(), raw)
                pos = param.end()
            comma = header.find(",", pos)
            # A comma inside an unbracketed target cannot be told apart from a separator;
            # anything between the parameters and the next comma is junk and skipped.
            pos = len(header) if comma < 0 else comma + 1
            links.append((target.strip(), params))
    return links


def next_link_target(headers: Iterable[str]) -> str | None:
    """The target of the first link whose ``rel`` includes ``next``, as written."""
    for target, params in parse_links(headers):
        if target and "next" in params.get("rel", "").lower().split():
            return target
    return None


@dataclass(frozen=True)
class TagPage:
    """One ``tags/list`` answer worth revalidating: its ETag, tags and next link."""

    etag: str
    tags: tuple[str, ...]
    next_url: str | None


class TagPageCache:
    """LRU of tag pages by exact URL, bounded by the total number of tags it holds.

    Bounded by tags rather than entries because pages differ wildly in size (one page of
    a 100,000-tag repository weighs as much as a thousand small repositories).
    """

    def __init__(self, max_tags: int) -> None:
        self._max = max(0, max_tags)
        self._weight = 0
        self._lock = threading.Lock()
        self._pages: OrderedDict[str, TagPage] = OrderedDict()

    def get(self, url: str) -> TagPage | None:
        with self._lock:
            page = self._pages.get(url)
            if page is not None:
                self._pages.move_to_end(url)
            return page

    def put(self, url: str, page: TagPage) -> None:
        weight = len(page.tags) + 1
        if weight > self._max:
            return
        with self._lock:
            old = self._pages.pop(url, None)
            if old is not None:
                self._weight -= len(old.tags) + 1
            self._pages[url] = page
            self._weight += weight
            while self._weight > self._max:
                _, evicted = self._pages.popitem(last=False)
                self._weight -= len(evicted.tags) + 1

    def __len__(self) -> int:
        with self._lock:
            return len(self._pages)
