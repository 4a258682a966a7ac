"""Who the registry client is to each registry: credentials, bearer tokens and challenges.

Why a module of its own: authentication is learned per registry (the first 401 says
Basic or Bearer, and where the token server is) and then sent up front; that learning,
the credential sources (configured password, ``credential_command``, Docker config), the
token cache and the SSRF check of token realms are one job with its own shared state.
Parsing challenges and reading credential files stays in :mod:`automator.registry._auth`
(pure, no HTTP); the requests themselves go through
:class:`~automator.registry._transport.Transport`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import httpx
import structlog

from automator.config import RegistrySettings, read_secret
from automator.errors import RegistryAuthError, RegistryUnavailable
from automator.registry._auth import (
    Challenge,
    Credentials,
    docker_config_path,
    forbidden_realm,
    load_docker_credentials,
    parse_challenges,
    run_credential_command,
)
from automator.registry._transport import Registry, Transport, json_body

__all__ = ["Authenticator"]

_log = structlog.get_logger(__name__)

_COMMAND_TIMEOUT = 60.0
"""How long a ``credential_command`` may run (cloud CLIs can be slow to start)."""
_COMMAND_MIN_MARGIN = 60.0
_COMMAND_MIN_REUSE = 5.0
_REALM_CHECK_TTL = 300.0
"""How long a token realm host found safe is not resolved again."""
_DEFAULT_TOKEN_TTL = 60.0
_CREDENTIALS_TTL = 300.0
"""Docker credential helpers are subprocesses; their answer is reused this long."""


class _CredentialsRefused(RegistryAuthError):
    """Credentials were sent and refused: worth one refresh of a ``credential_command``."""


@dataclass
class _Token:
    value: str = field(repr=False)
    expires_at: float


class Authenticator:
    """Sends requests authenticated as the settings say, learning each registry's scheme.

    Shared mutable state (tokens, learned challenges, cached Docker credentials, realms
    found safe) sits behind one lock, never held during I/O.
    """

    def __init__(self, http: Transport, clock: Callable[[], float]) -> None:
        self._http = http
        self._clock = clock
        self._lock = threading.Lock()
        # Separate, because reading Docker credentials may run a helper subprocess and
        # must not stall token lookups of the other threads meanwhile.
        self._credentials_lock = threading.Lock()
        self._realms_checked: dict[str, float] = {}
        self._tokens: dict[tuple[str, str], _Token] = {}
        self._challenges: dict[str, Challenge] = {}
        self._credentials_cache: dict[str, tuple[Credentials | None, float]] = {}

    def credentials(self, reg: Registry) -> Credentials | None:
        """Configured username/password first, else the Docker config file, else none.

        Passwords are read at the moment of use (a rotated, file-mounted secret is picked
        up); Docker helper answers are cached briefly because each is a subprocess.
        """
        conf = reg.settings
        if conf is not None and conf.credential_command is not None:
            return self._command_credentials(reg, conf, conf.credential_command)
        if conf is not None and conf.username:
            password = read_secret(conf.password, key=f"registries[{reg.index}].password")
            return Credentials(username=conf.username, password=password or "")
        now = self._clock()
        with self._credentials_lock:
            cached = self._credentials_cache.get(reg.key)
            if cached is not None and cached[1] > now:
                return cached[0]
            path = docker_config_path(conf.docker_config if conf is not None else None)
            creds = None
            if path is not None:
                key = f"registries[{reg.index}].docker_config"
                creds = load_docker_credentials(path, reg.key, key=key)
            self._credentials_cache[reg.key] = (creds, now + _CREDENTIALS_TTL)
        return creds

    def _command_credentials(
        self, reg: Registry, conf: RegistrySettings, argv: tuple[str, ...]
    ) -> Credentials:
        """The ``credential_command``'s answer, run again shortly before it expires.

        Refreshed when within 10% of its lifetime (at least 60 s, at most half of it) of
        ``expires_at``, after ``credential_ttl`` when it gave no expiry, and once when
        the registry refuses it (:meth:`_refresh_command`). Only this registry's callers
        wait for the command.
        """
        state = self._http.state(reg)
        with state.command_lock:
            now = self._clock()
            if state.command_credentials is not None and now < state.command_refresh_at:
                return state.command_credentials
            answer = run_credential_command(
                argv,
                key=reg.conf_key("credential_command"),
                registry=reg.key,
                username=conf.username,
                timeout=_COMMAND_TIMEOUT,
            )
            lifetime = answer.expires_in
            if lifetime is None:
                refresh_in = conf.credential_ttl
            else:
                margin = min(max(0.1 * lifetime, _COMMAND_MIN_MARGIN), 0.5 * lifetime)
                # An answer already (nearly) expired, e.g. from a skewed clock, is still
                # reused briefly: running the command for every request helps nobody.
                refresh_in = max(_COMMAND_MIN_REUSE, lifetime - margin)
            state.command_credentials = answer.credentials
            state.command_refresh_at = now + refresh_in
        _log.info(
            "registry_credentials_refreshed",
            registry=reg.key,
            key=reg.conf_key("credential_command"),
            expires_in=round(lifetime, 1) if lifetime is not None else None,
            refresh_in=round(refresh_in, 1),
        )
        return answer.credentials

    def _refresh_command(self, reg: Registry) -> bool:
        """Forget the command's answer and the tokens it bought; False if there is none."""
        if reg.settings is None or reg.settings.credential_command is None:
            return False
        state = self._http.state(reg)
        with state.command_lock:
            state.command_credentials = None
        with self._lock:
            for key in [k for k in self._tokens if k[0] == reg.key]:
                del self._tokens[key]
        _log.info(
            "registry_credentials_refused",
            registry=reg.key,
            key=reg.conf_key("credential_command"),
            action="running the command again",
        )
        return True

    def _auth_header(self, reg: Registry, repo: str, scope: str) -> str | None:
        """What to send up front, from what earlier challenges taught us about ``reg``."""
        now = self._clock()
        with self._lock:
            token = self._tokens.get((reg.key, scope))
            if token is not None and token.expires_at > now:
                return f"Bearer {token.value}"
            challenge = self._challenges.get(reg.key)
        if challenge is None:
            return None
        if challenge.scheme == "bearer":
            return f"Bearer {self._fetch_token(reg, repo, scope, challenge)}"
        creds = self.credentials(reg)
        return creds.basic_header() if creds is not None and not creds.identity_token else None

    def _answer_challenge(self, reg: Registry, repo: str, scope: str, resp: httpx.Response) -> None:
        """Learn from a 401 how ``reg`` wants to be authenticated; raise if we cannot comply."""
        challenges = parse_challenges(resp.headers.get_list("www-authenticate"))
        by_scheme = {c.scheme: c for c in challenges}
        challenge = by_scheme.get("bearer") or by_scheme.get("basic")
        if challenge is None:
            raise RegistryAuthError(
                f"registry {reg.key}: access to {repo} was refused and no supported "
                f"authentication challenge was offered; {reg.config_hint}"
            )
        if challenge.scheme == "basic":
            creds = self.credentials(reg)
            if creds is None or creds.identity_token:
                raise RegistryAuthError(
                    f"registry {reg.key}: {repo} requires credentials and none are "
                    f"configured; {reg.config_hint}"
                )
        with self._lock:
            self._challenges[reg.key] = challenge
            self._tokens.pop((reg.key, scope), None)
        _log.debug(
            "registry_auth_challenge", registry=reg.key, repository=repo, scheme=challenge.scheme
        )

    def _fetch_token(self, reg: Registry, repo: str, scope: str, challenge: Challenge) -> str:
        """Get (and cache until it expires) a bearer token for ``scope`` from the realm."""
        realm = challenge.params.get("realm", "")
        try:
            realm_url = httpx.URL(realm)
        except httpx.InvalidURL:
            realm_url = httpx.URL("")
        if realm_url.scheme not in ("http", "https") or not realm_url.host:
            raise RegistryAuthError(
                f"registry {reg.key}: its token challenge has no usable realm URL "
                f"({realm[:100]!r}); the registry's auth configuration is broken"
            )
        if realm_url.scheme != "https" and not reg.plain_http:
            raise RegistryAuthError(
                f"registry {reg.key}: refusing to fetch a token from a plain-http realm "
                f"({realm_url.host}) for an https registry; fix the registry's token realm"
            )
        self._check_realm(reg, realm_url)
        scopes = [scope]
        if challenge.params.get("scope") and challenge.params["scope"] != scope:
            scopes.append(challenge.params["scope"])
        params: list[tuple[str, str | int | float | bool | None]] = [("scope", s) for s in scopes]
        if "service" in challenge.params:
            params.insert(0, ("service", challenge.params["service"]))
        creds = self.credentials(reg)
        headers: dict[str, str] = {}
        if creds is not None and creds.identity_token:
            # Docker's OAuth2 flow: the identity token is a refresh token, exchanged by POST.
            form = {
                "grant_type": "refresh_token",
                "refresh_token": creds.identity_token,
                "client_id": "automator",
                "scope": " ".join(scopes),
            }
            if "service" in challenge.params:
                form["service"] = challenge.params["service"]
            resp = self._http.send(reg, repo, "POST", realm_url, headers, data=form)
        else:
            if creds is not None:
                headers["Authorization"] = creds.basic_header()
            resp = self._http.send(reg, repo, "GET", realm_url.copy_merge_params(params), headers)
        if resp.status_code in (401, 403):
            raise _CredentialsRefused(
                f"registry {reg.key}: credentials for {repo} were refused by the token "
                f"service at {realm_url.host}; {reg.config_hint}"
            )
        if not resp.is_success:
            raise RegistryAuthError(
                f"registry {reg.key}: the token service at {realm_url.host} answered "
                f"HTTP {resp.status_code} for {repo}; {reg.config_hint}"
            )
        data = json_body(reg, resp, what=f"token response for {repo}")
        if not isinstance(data, dict):
            data = {}
        token = data.get("token") or data.get("access_token")
        if not isinstance(token, str) or not token:
            raise RegistryUnavailable(
                f"registry {reg.key}: the token service at {realm_url.host} sent no token "
                f"for {repo}"
            )
        ttl = data.get("expires_in")
        expires_in = float(ttl) if isinstance(ttl, int | float) and ttl > 0 else _DEFAULT_TOKEN_TTL
        # Renew a little early so a token never expires between our check and its use.
        expires_at = self._clock() + expires_in - min(5.0, expires_in / 10)
        with self._lock:
            self._tokens[(reg.key, scope)] = _Token(value=token, expires_at=expires_at)
        _log.debug(
            "registry_token_fetched", registry=reg.key, repository=repo, expires_in=expires_in
        )
        return token

    def _check_realm(self, reg: Registry, realm: httpx.URL) -> None:
        """Refuse token realms on link-local or cloud metadata addresses (SSRF)."""
        host = realm.host
        now = self._clock()
        with self._lock:
            if self._realms_checked.get(host, -1.0) > now:
                return
        port = realm.port or (443 if realm.scheme == "https" else 80)
        reason = forbidden_realm(host, port)
        if reason is not None:
            raise RegistryAuthError(
                f"registry {reg.key}: refusing its token realm {realm.scheme}://{host}: "
                f"{reason}; a registry must not send credentials there (check registries url "
                "and the registry's auth configuration)"
            )
        with self._lock:
            self._realms_checked[host] = now + _REALM_CHECK_TTL

    # -- HTTP ---------------------------------------------------------------------------

    def authenticated(
        self,
        reg: Registry,
        repo: str,
        method: str,
        url: httpx.URL,
        *,
        accept: str | None,
        extra: Mapping[str, str] | None,
    ) -> httpx.Response:
        """Send with what we know of the registry's auth; learn from one 401; and run a
        ``credential_command`` again once when its credentials are refused."""
        scope = f"repository:{repo}:pull"
        challenged = refreshed = False
        while True:
            headers = {"Accept": accept} if accept else {}
            headers.update(extra or {})
            try:
                auth = self._auth_header(reg, repo, scope)
            except _CredentialsRefused:
                if refreshed or not self._refresh_command(reg):
                    raise
                refreshed = True
                continue
            if auth is not None:
                headers["Authorization"] = auth
            resp = self._http.follow(reg, repo, method, url, headers)
            if resp.status_code != 401:
                return resp
            if not challenged:
                challenged = True
                self._answer_challenge(reg, repo, scope, resp)
                continue
            if auth is not None and not refreshed and self._refresh_command(reg):
                refreshed = True
                continue
            return resp
