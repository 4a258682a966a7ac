"""Parsing WWW-Authenticate: the bit of RFC 7235 registries actually use."""

from __future__ import annotations

from automator.registry._auth import Challenge, Credentials, parse_challenges


def test_a_bearer_challenge_with_a_comma_inside_the_scope_is_parsed_whole() -> None:
    header = (
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/nginx:pull,push"'
    )

    assert parse_challenges([header]) == [
        Challenge(
            "bearer",
            {
                "realm": "https://auth.docker.io/token",
                "service": "registry.docker.io",
                "scope": "repository:library/nginx:pull,push",
            },
        )
    ]


def test_several_challenges_in_one_header_are_told_apart() -> None:
    parsed = parse_challenges(['Basic realm="a b", Bearer realm="https://x/t",service=reg'])

    assert [(c.scheme, c.params) for c in parsed] == [
        ("basic", {"realm": "a b"}),
        ("bearer", {"realm": "https://x/t", "service": "reg"}),
    ]


def test_garbage_yields_no_challenge_rather_than_an_error() -> None:
    assert parse_challenges(["", "=,=", '"']) == []


def test_credentials_never_show_their_secrets_in_repr() -> None:
    creds = Credentials("alice", "pw-secret", identity_token="tok-secret")

    assert "secret" not in repr(creds)
    assert "alice" in repr(creds)
