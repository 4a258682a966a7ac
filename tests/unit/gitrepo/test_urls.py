"""URL handling: redaction of credentials and splitting them off before storage."""

from __future__ import annotations

import pytest

from automator.gitrepo._urls import is_http, is_ssh, parse_remote_url, redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http://user:pw@host/r.git", "http://user:***@host/r.git"),
        ("https://ghp_token123@github.com/o/r", "https://***@github.com/o/r"),
        (
            "fatal: unable to access 'https://a:b@h:8443/x/': 401",
            "fatal: unable to access 'https://a:***@h:8443/x/': 401",
        ),
        ("ssh://git@host:22/r.git", "ssh://git@host:22/r.git"),
        ("ssh://git:pw@host/r.git", "ssh://git:***@host/r.git"),
        ("file:///srv/git/r.git", "file:///srv/git/r.git"),
        ("git://127.0.0.1:9418/r.git", "git://127.0.0.1:9418/r.git"),
        ("two http://a:1@x/ and https://b:2@y/", "two http://a:***@x/ and https://b:***@y/"),
    ],
)
def test_redact_hides_passwords_and_tokens_in_urls_but_keeps_the_address(
    text: str, expected: str
) -> None:
    assert redact(text) == expected


def test_redact_also_hides_known_secret_values_anywhere_in_the_text() -> None:
    assert redact("header dXNlcjpwdw== sent, pw=hunter2", ("hunter2", "dXNlcjpwdw==")) == (
        "header *** sent, pw=***"
    )


def test_redact_ignores_empty_secrets() -> None:
    assert redact("nothing to hide", ("",)) == "nothing to hide"


def test_parse_remote_url_strips_the_whole_userinfo_of_http_urls() -> None:
    remote = parse_remote_url("https://bot:p%40ss@git.example.com:8443/org/config.git")

    assert remote.clean == "https://git.example.com:8443/org/config.git"
    assert remote.username == "bot"
    assert remote.password == "p@ss"
    assert remote.http_origin == "https://git.example.com:8443/"


def test_parse_remote_url_treats_a_lone_http_userinfo_as_username() -> None:
    remote = parse_remote_url("https://token@host/r.git")

    assert (remote.clean, remote.username, remote.password) == ("https://host/r.git", "token", None)


@pytest.mark.parametrize(
    "url",
    ["ssh://git@host/r.git", "git@github.com:org/r.git", "git://h/r.git", "file:///r.git"],
)
def test_parse_remote_url_leaves_non_http_urls_untouched(url: str) -> None:
    remote = parse_remote_url(url)

    assert (remote.clean, remote.username, remote.password, remote.http_origin) == (
        url,
        None,
        None,
        None,
    )


@pytest.mark.parametrize(
    ("url", "ssh", "http"),
    [
        ("ssh://root@127.0.0.1:2222/srv/r.git", True, False),
        ("git@github.com:org/r.git", True, False),
        ("http://127.0.0.1:8081/r.git", False, True),
        ("https://h/r.git", False, True),
        ("git://h/r.git", False, False),
        ("file:///r.git", False, False),
    ],
)
def test_transport_detection_recognises_scp_like_ssh_addresses(
    url: str, ssh: bool, http: bool
) -> None:
    assert (is_ssh(url), is_http(url)) == (ssh, http)
