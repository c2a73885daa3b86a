"""Schemathesis hooks: real bearer tokens for generated requests, even for those that end them.

Loaded by ``tests/schemathesis.toml`` (``hooks = ...``), so ``tests/test_schemathesis.py`` and a
run by hand (README, "Schemathesis") authenticate alike: no token to paste, nothing to expire.

Two auth providers, chosen by operation:

- ``SharedUser`` serves every operation that leaves the session alone: one user, signed up
  and logged in on first use, so items created by one request are there for the next (the
  stateful phase and the ``use_after_free``/``ensure_resource_availability`` checks need
  that). The token is fetched again after ``REFRESH_INTERVAL`` (less than the default access
  token lifetime) and whenever an authenticated request answers 401 (schemathesis's
  ``retry_on``): a re-login, or a new user if the old one cannot log in any more.
- ``FreshUser`` serves the operations that end sessions or spend tokens (``OWN_USER``): each
  generated request gets a user of its own, so logging out, deleting the account, changing
  the password, ending a session or refreshing never pulls the shared token from under the
  other requests. For valid (positive) requests it fills in what the schema cannot know,
  the user's real current password, its refresh token, the id of its own session and (for
  cookie mode at ``/refresh``) the CSRF header, so the success paths run too.

Each user gets a random name and password, printed nowhere; the base URL is the one
schemathesis tests (its ``--url`` or the schema's location).
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
from dataclasses import dataclass
from typing import Any

import httpx
import schemathesis
from requests.structures import CaseInsensitiveDict

#: Operations that end sessions (or the whole account) or spend a refresh token.
OWN_USER = (
    "POST /logout",
    "DELETE /me",
    "POST /me/password",
    "DELETE /sessions/{session_id}",
    "POST /refresh",
)
#: Seconds a shared token is reused: below the default ACCESS_TOKEN_TTL (900).
REFRESH_INTERVAL = 600


@dataclass(frozen=True)
class Login:
    """A user the hooks created, and the tokens of one of its sessions."""

    username: str
    password: str
    access_token: str
    refresh_token: str

    @property
    def session_id(self) -> str:
        """The ``sid`` claim of the access token (read, not verified: the server does that)."""
        payload = self.access_token.split(".")[1]
        claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * 4))
        return str(claims["sid"])


def _base_url(context: schemathesis.AuthContext) -> str:
    return context.operation.base_url or context.operation.schema.get_base_url()


def log_in(base_url: str, username: str, password: str) -> Login | None:
    """A new session of ``username``, or None if the credentials are refused."""
    response = httpx.post(
        f"{base_url}/login", data={"username": username, "password": password}, timeout=30
    )
    if response.status_code == 400:
        return None
    response.raise_for_status()
    tokens = response.json()
    return Login(username, password, tokens["access_token"], tokens["refresh_token"])


def sign_up(base_url: str) -> Login:
    """A new user with a random name and password, logged in."""
    username = f"st-{secrets.token_hex(6)}"
    password = secrets.token_urlsafe(18)
    response = httpx.post(
        f"{base_url}/signup", json={"username": username, "password": password}, timeout=30
    )
    response.raise_for_status()
    login = log_in(base_url, username, password)
    if login is None:
        raise RuntimeError(f"{username} was signed up but cannot log in")
    return login


def _bearer(case: schemathesis.Case[Any], login: Login) -> None:
    if not case.headers:
        case.headers = CaseInsensitiveDict()
    case.headers["Authorization"] = f"Bearer {login.access_token}"


@schemathesis.auth(refresh_interval=REFRESH_INTERVAL).skip_for(name=list(OWN_USER))
class SharedUser:
    """One user for every operation that does not end its session."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._login: Login | None = None

    def get(self, case: schemathesis.Case[Any], context: schemathesis.AuthContext) -> Login:
        with self._lock:
            base_url = _base_url(context)
            previous = self._login
            login = previous and log_in(base_url, previous.username, previous.password)
            self._login = login or sign_up(base_url)
            return self._login

    def set(
        self, case: schemathesis.Case[Any], data: Login, context: schemathesis.AuthContext
    ) -> None:
        _bearer(case, data)


@schemathesis.auth(refresh_interval=None).apply_to(name=list(OWN_USER))
class FreshUser:
    """A user of its own for each request that ends sessions or spends a refresh token."""

    def get(self, case: schemathesis.Case[Any], context: schemathesis.AuthContext) -> Login:
        return sign_up(_base_url(context))

    def set(
        self, case: schemathesis.Case[Any], data: Login, context: schemathesis.AuthContext
    ) -> None:
        _bearer(case, data)
        if case.meta is None or not case.meta.generation.mode.is_positive:
            return
        body = case.body if isinstance(case.body, dict) else {}
        if case.operation.label == "POST /me/password" and "current_password" in body:
            body["current_password"] = data.password
        if "refresh_token" in body:  # POST /refresh, POST /logout
            body["refresh_token"] = data.refresh_token
        if case.operation.label == "POST /refresh":
            # Cookie mode (``?cookie=true``) wants the CSRF header a page would send; without
            # it such a request is a 403, which the checks accept but which skips the success.
            case.headers["X-Requested-With"] = "schemathesis"
        if case.operation.label == "DELETE /sessions/{session_id}":
            case.path_parameters["session_id"] = data.session_id
