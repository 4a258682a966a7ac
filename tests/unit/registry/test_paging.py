"""Tag-list paging as registries really do it: every Link form, opaque ``last`` tokens,
refused page sizes, lists that move between two pages, loops, caps and ETags."""

from __future__ import annotations

import httpx
import pytest
from structlog.testing import capture_logs

from automator.errors import RegistryNotFound, RegistryUnavailable
from automator.images import ImageRef
from automator.registry import _client
from automator.registry._paging import TagPage, TagPageCache, next_link_target, parse_links
from tests.unit.registry._fakes import make_settings, tags_response

from .conftest import ClientFor

IMAGE = ImageRef.parse("reg.example:8443/team/app")
SETTINGS = make_settings({"host": "reg.example:8443"})


class PagedRegistry:
    """Serves ``tags`` in pages of ``n`` with opaque cursors, via a Link of ``link_form``."""

    def __init__(self, tags: list[str], *, link_form: str = '<{url}>; rel="next"') -> None:
        self.tags = tags
        self.link_form = link_form
        self.max_n: int | None = None
        self.refusal = httpx.Response(413)

    def __call__(self, req: httpx.Request) -> httpx.Response:
        n = int(req.url.params.get("n", "1000"))
        if self.max_n is not None and n > self.max_n:
            return self.refusal
        cursor = req.url.params.get("last")
        start = int(cursor.removeprefix("opaque-")) if cursor else 0
        page = self.tags[start : start + n]
        link = None
        if start + n < len(self.tags):
            url = f"/v2/team/app/tags/list?n={n}&last=opaque-{start + n}"
            link = self.link_form.format(url=url)
        return tags_response(*page, link=link)


@pytest.mark.parametrize(
    "header",
    [
        '</v2/a/tags/list?last=x>; rel="next"',
        "</v2/a/tags/list?last=x>; rel=next",
        '</v2/a/tags/list?last=x>;rel="next"',
        "/v2/a/tags/list?last=x; rel=next",
        '/v2/a/tags/list?last=x; rel="next"',
        '</v2/a/tags/list?last=x>; type="application/json"; rel="next"; title=x',
        '</v2/a/tags/list?last=y>; rel="prev", </v2/a/tags/list?last=x>; rel="next"',
        '</v2/a/tags/list?last=x>; rel="next prefetch"',
        '</v2/a/tags/list?last=x>; REL="NEXT"',
        'garbage;;, </v2/a/tags/list?last=x>; rel="next"',
    ],
    ids=[
        "canonical",
        "unquoted-rel",
        "no-space",
        "no-angle-brackets",
        "no-angle-brackets-quoted",
        "extra-params",
        "several-links",
        "several-rels",
        "upper-case",
        "junk-before",
    ],
)
def test_next_link_is_found_in_every_form_seen_in_the_wild(header: str) -> None:
    assert next_link_target([header]) == "/v2/a/tags/list?last=x"


def test_links_in_separate_header_lines_are_all_read() -> None:
    lines = ['</p>; rel="prev"', '<https://r.example:5000/n?last=a%2Fb>; rel="next"']

    assert next_link_target(lines) == "https://r.example:5000/n?last=a%2Fb"
    assert parse_links(lines)[0] == ("/p", {"rel": "prev"})


@pytest.mark.parametrize(
    "header", ["", '</p>; rel="prev"', "<>; rel=next", ";;;", '<unterminated; rel="next"']
)
def test_headers_without_a_usable_next_link_end_the_listing(header: str) -> None:
    assert next_link_target([header]) is None


@pytest.mark.parametrize(
    "link_form",
    [
        '<{url}>; rel="next"',
        "<https://reg.example:8443{url}>; rel=next",
        "{url}; rel=next",
        '<{url}>; rel="next"; type="application/json"',
    ],
    ids=["relative", "absolute-with-port", "no-brackets", "extra-param"],
)
def test_opaque_cursors_are_followed_as_given_to_the_end(
    client_for: ClientFor, link_form: str
) -> None:
    tags = [f"v{i}" for i in range(25)]
    settings_n = make_settings({"host": "reg.example:8443", "page_size": 10})
    client, rec = client_for(PagedRegistry(tags, link_form=link_form), settings_n)

    assert client.list_tags(IMAGE) == tags
    assert [r.url.params.get("last") for r in rec.requests] == [None, "opaque-10", "opaque-20"]
    assert all(r.url.port == 8443 and r.url.params["n"] == "10" for r in rec.requests)


def test_a_413_for_a_large_page_is_retried_with_half_and_remembered(
    client_for: ClientFor,
) -> None:
    fake = PagedRegistry([f"t{i}" for i in range(300)])
    fake.max_n = 250  # Quay-like: large pages refused with 413 Payload Too Large
    client, rec = client_for(fake, SETTINGS)

    with capture_logs() as logs:
        assert client.list_tags(IMAGE) == fake.tags
    first = [r.url.params["n"] for r in rec.requests]
    assert first == ["1000", "500", "250", "250"]
    assert [e["page_size"] for e in logs if e["event"] == "registry_page_size_reduced"] == [
        500,
        250,
    ]

    rec.requests.clear()
    client.list_tags(ImageRef.parse("reg.example:8443/team/other"))
    assert rec.requests[0].url.params["n"] == "250"  # learned for the registry


def test_a_pagination_number_invalid_400_is_retried_smaller_down_to_fifty(
    client_for: ClientFor,
) -> None:
    fake = PagedRegistry(["a", "b"])
    fake.max_n = 10  # refuses even the floor
    fake.refusal = httpx.Response(400, json={"errors": [{"code": "PAGINATION_NUMBER_INVALID"}]})
    client, rec = client_for(fake, make_settings({"host": "reg.example:8443", "page_size": 200}))

    with pytest.raises(RegistryNotFound, match="HTTP 400 PAGINATION_NUMBER_INVALID"):
        client.list_tags(IMAGE)
    assert [r.url.params["n"] for r in rec.requests] == ["200", "100", "50"]


def test_other_400_answers_are_not_mistaken_for_a_page_size_refusal(
    client_for: ClientFor,
) -> None:
    client, rec = client_for(
        lambda req: httpx.Response(400, json={"errors": [{"code": "NAME_INVALID"}]}), SETTINGS
    )

    with pytest.raises(RegistryNotFound, match="NAME_INVALID"):
        client.list_tags(IMAGE)
    assert len(rec.requests) == 1


def test_tags_repeated_on_the_next_page_are_kept_once(client_for: ClientFor) -> None:
    # A tag was pushed between the two requests: the list shifted by one.
    pages = {
        None: tags_response("a", "b", "c", link="</v2/team/app/tags/list?last=c>; rel=next"),
        "c": tags_response("c", "d", "e"),
    }
    client, _ = client_for(lambda req: pages[req.url.params.get("last")], SETTINGS)

    assert client.list_tags(IMAGE) == ["a", "b", "c", "d", "e"]


def test_tags_dropped_between_two_pages_are_simply_absent(client_for: ClientFor) -> None:
    # "c" was deleted after page one was served; page two starts after it anyway.
    pages = {
        None: tags_response("a", "b", link="</v2/team/app/tags/list?last=b>; rel=next"),
        "b": tags_response("d"),
    }
    client, rec = client_for(lambda req: pages[req.url.params.get("last")], SETTINGS)

    assert client.list_tags(IMAGE) == ["a", "b", "d"]
    assert len(rec.requests) == 2


def test_a_two_page_link_cycle_is_reported_not_followed_forever(client_for: ClientFor) -> None:
    pages = {
        None: tags_response("a", link="</v2/team/app/tags/list?last=a>; rel=next"),
        "a": tags_response("b", link="</v2/team/app/tags/list?n=1000>; rel=next"),
    }
    client, rec = client_for(lambda req: pages[req.url.params.get("last")], SETTINGS)

    with pytest.raises(RegistryUnavailable, match="pages in a loop"):
        client.list_tags(IMAGE)
    assert len(rec.requests) == 2


def test_ever_new_cursors_that_bring_no_new_tags_are_a_loop_too(client_for: ClientFor) -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        count = int(req.url.params.get("last", "0"))
        return tags_response("a", "b", link=f"</v2/team/app/tags/list?last={count + 1}>; rel=next")

    client, rec = client_for(handler, SETTINGS)

    with pytest.raises(RegistryUnavailable, match="pages in a loop"):
        client.list_tags(IMAGE)
    assert len(rec.requests) == 4  # the first page, then three without anything new


def test_an_endless_list_stops_at_the_page_limit_and_names_max_tags(
    client_for: ClientFor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_client, "_MAX_PAGES", 40)  # 10,000 in production: same code path

    def handler(req: httpx.Request) -> httpx.Response:
        count = int(req.url.params.get("last", "0"))
        return tags_response(
            f"t{count}", link=f"</v2/team/app/tags/list?last={count + 1}>; rel=next"
        )

    client, rec = client_for(handler, SETTINGS)

    with pytest.raises(
        RegistryUnavailable, match=r"more than 40 pages; set registries\[0\]\.max_tags"
    ):
        client.list_tags(IMAGE)
    assert len(rec.requests) == 40


def test_max_tags_cuts_the_list_stops_paging_and_says_so(client_for: ClientFor) -> None:
    fake = PagedRegistry([f"t{i:03}" for i in range(100)])
    settings = make_settings({"host": "reg.example:8443", "page_size": 30, "max_tags": 45})
    client, rec = client_for(fake, settings)

    with capture_logs() as logs:
        tags = client.list_tags(IMAGE)

    assert tags == fake.tags[:45]
    assert len(rec.requests) == 2  # the third page is never fetched
    (cut,) = [e for e in logs if e["event"] == "registry_tags_truncated"]
    assert cut["log_level"] == "warning"
    assert cut["repository"] == "team/app"
    assert cut["cap"] == 45
    assert cut["seen"] == 60
    assert cut["more_pages"] is True
    assert cut["key"] == "registries[0].max_tags"


def test_max_tags_reached_exactly_on_the_last_page_is_no_cut(client_for: ClientFor) -> None:
    fake = PagedRegistry([f"t{i}" for i in range(10)])
    client, _ = client_for(fake, make_settings({"host": "reg.example:8443", "max_tags": 10}))

    with capture_logs() as logs:
        assert client.list_tags(IMAGE) == fake.tags
    assert not [e for e in logs if e["event"] == "registry_tags_truncated"]


def test_an_unchanged_page_is_revalidated_with_its_etag_and_reused(
    client_for: ClientFor,
) -> None:
    state = {"etag": '"v1"', "tags": ["1.0", "1.1"]}

    def handler(req: httpx.Request) -> httpx.Response:
        if req.headers.get("if-none-match") == state["etag"]:
            return httpx.Response(304, headers={"ETag": str(state["etag"])})
        return httpx.Response(
            200,
            json={"name": "team/app", "tags": state["tags"]},
            headers={"ETag": str(state["etag"])},
        )

    client, rec = client_for(handler, SETTINGS)

    assert client.list_tags(IMAGE) == ["1.0", "1.1"]
    assert client.list_tags(IMAGE) == ["1.0", "1.1"]
    assert "if-none-match" not in rec.requests[0].headers
    assert rec.requests[1].headers["if-none-match"] == '"v1"'

    state.update(etag='"v2"', tags=["1.0", "1.1", "1.2"])
    assert client.list_tags(IMAGE) == ["1.0", "1.1", "1.2"]
    assert client.list_tags(IMAGE) == ["1.0", "1.1", "1.2"]
    assert rec.requests[-1].headers["if-none-match"] == '"v2"'
    assert [r.url.path for r in rec.requests] == ["/v2/team/app/tags/list"] * 4


def test_a_304_reuses_the_cached_next_link_too(client_for: ClientFor) -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        last = req.url.params.get("last")
        if req.headers.get("if-none-match"):
            return httpx.Response(304)
        if last is None:
            return httpx.Response(
                200,
                json={"tags": ["a"]},
                headers={"ETag": "p1", "Link": "</v2/team/app/tags/list?last=a>; rel=next"},
            )
        return httpx.Response(200, json={"tags": ["b"]}, headers={"ETag": "p2"})

    client, rec = client_for(handler, SETTINGS)
    client.list_tags(IMAGE)

    assert client.list_tags(IMAGE) == ["a", "b"]
    assert [r.headers.get("if-none-match") for r in rec.requests] == [None, None, "p1", "p2"]


def test_a_304_nobody_asked_for_is_unavailable_not_an_empty_list(client_for: ClientFor) -> None:
    client, _ = client_for(lambda req: httpx.Response(304), SETTINGS)

    with pytest.raises(RegistryUnavailable, match="304 Not Modified without being asked"):
        client.list_tags(IMAGE)


def test_the_etag_cache_is_bounded_by_the_tags_it_holds() -> None:
    cache = TagPageCache(max_tags=10)
    cache.put("u1", TagPage("e", ("a", "b", "c", "d"), None))
    cache.put("u2", TagPage("e", ("a", "b", "c", "d"), None))
    assert cache.get("u1") is not None  # u1 is now the most recently used
    cache.put("u3", TagPage("e", ("a", "b"), None))
    cache.put("huge", TagPage("e", tuple("abcdefghijklmnop"), None))

    assert cache.get("u2") is None
    assert cache.get("u1") is not None
    assert cache.get("u3") is not None
    assert cache.get("huge") is None
    assert len(cache) == 2
