"""Schemathesis hooks: real bearer tokens for generated requests, even for those that end them.

Loaded by ``tests/schemathesis.toml`` (``hooks = ...``), so ``tests/test_schemathesis.py`` and a
run by hand (docs/testing.md) authenticate alike: no token to paste, nothing to expire.

Three auth providers, chosen by operation:

- ``SharedUser`` serves every operation that leaves the session alone: one user, signed up
  and logged in on first use, so items created by one request are there for the next (the
  stateful phase and the ``use_after_free``/``ensure_resource_availability`` checks need
  that). The token is fetched again after ``REFRESH_INTERVAL`` (less than the default access
  token lifetime) and whenever an authenticated request answers 401 (schemathesis's
  ``retry_on``): a re-login, or a new user if the old one cannot log in any more.
- ``IntrospectionClient`` serves ``POST /introspect``: HTTP Basic as the introspection
  client the server is configured with, and a live access token to ask about.
- ``FreshUser`` serves the operations that end sessions or spend tokens (``OWN_USER``): each
  generated request gets a user of its own, so logging out, deleting the account, changing
  the password, ending a session or refreshing never pulls the shared token from under the
  other requests. For valid (positive) requests it fills in what the schema cannot know,
  the user's real current password, its refresh token, the id of its own session and (for
  cookie mode at ``/refresh``) the CSRF header, so the success paths run too. ``POST
  /me/email`` is here because it needs the real password too.
- ``Admin`` serves the admin API (``ADMIN``): the admin named by ``SCHEMATHESIS_ADMIN_USERNAME``
  and ``SCHEMATHESIS_ADMIN_PASSWORD`` (made with ``service create-user NAME --admin``; without
  them an ordinary user, whom the admin API answers 403). A valid request naming a user gets a
  freshly signed-up user as its target, and so does any request (the stateful phase follows
  ids from ``GET /admin/users``) naming the admin or the shared user: disabling, deleting or
  logging out never pulls the ground from under the other requests.

Each user gets a random name and password, printed nowhere; the base URL is the one
schemathesis tests (its ``--url`` or the schema's location).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import threading
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import schemathesis
from requests.structures import CaseInsensitiveDict

#: Operations that end sessions (or the whole account), spend a refresh token, or change the
#: account's second factor (turning it on or off ends the other sessions, and with it on the
#: shared user's logins would need a code).
OWN_USER = (
    "POST /logout",
    "DELETE /me",
    "POST /me/password",
    "POST /me/email",
    "DELETE /sessions/{session_id}",
    "POST /refresh",
    "POST /revoke",
    "POST /me/mfa/totp",
    "POST /me/mfa/totp/confirm",
    "DELETE /me/mfa/totp",
)
#: The admin API: an admin's token, and a target user of their own for each valid request.
ADMIN = (
    "GET /admin/users",
    "GET /admin/users/{user_id}",
    "PATCH /admin/users/{user_id}",
    "DELETE /admin/users/{user_id}",
    "GET /admin/users/{user_id}/sessions",
    "DELETE /admin/users/{user_id}/sessions",
)
#: Ids of the users other requests rely on (the shared user, the admin): never an admin target.
PROTECTED_USERS: set[str] = set()
#: Operations whose ``current_password`` the hooks fill in with the user's real one.
CURRENT_PASSWORD = (
    "POST /me/password",
    "POST /me/email",
    "POST /me/mfa/totp",
    "DELETE /me/mfa/totp",
)
#: Seconds a shared token is reused: below the default ACCESS_TOKEN_TTL (900).
REFRESH_INTERVAL = 600
#: The introspection client the server under test must know: ``INTROSPECTION_CLIENTS`` set to
#: ``INTROSPECTION_CLIENT`` (``tests/test_schemathesis.py`` does; set it for a run by hand).
INTROSPECTION_CLIENT_ID = "schemathesis"
INTROSPECTION_CLIENT_SECRET = "schemathesis-introspection-secret-0123456789"
INTROSPECTION_CLIENT = f"{INTROSPECTION_CLIENT_ID}:{INTROSPECTION_CLIENT_SECRET}"
#: Operations authenticated as that client instead of a user.
CLIENT_OPERATIONS = ("POST /introspect",)


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


@schemathesis.auth(refresh_interval=REFRESH_INTERVAL).skip_for(
    name=[*OWN_USER, *CLIENT_OPERATIONS, *ADMIN]
)
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
            PROTECTED_USERS.add(user_id(self._login))
            return self._login

    def set(
        self, case: schemathesis.Case[Any], data: Login, context: schemathesis.AuthContext
    ) -> None:
        _bearer(case, data)
        _unique_idempotency_key(case)


def _unique_idempotency_key(case: schemathesis.Case[Any]) -> None:
    """Give a well-formed ``Idempotency-Key`` of ``POST /items`` (1 to 255 printable ASCII
    characters) a value never used before.

    Generated keys repeat (hypothesis draws the same simple values, such as "0", again), and a
    retry of a create whose item was deleted since gets, as it must, the first answer: the
    id of an item that is gone, which the stateful phase's "created resource not found" check
    takes for a bug. Malformed keys (the 400 paths) are left as generated.
    """
    if case.operation.label != "POST /items" or not case.headers:
        return
    for name, value in list(case.headers.items()):  # a plain dict: any letter case
        text = str(value)
        well_formed = 1 <= len(text) <= 255 and all(" " <= c <= "~" for c in text)
        if name.lower() == "idempotency-key" and well_formed and text.strip():
            case.headers[name] = str(uuid.uuid4())


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
        if case.operation.label in CURRENT_PASSWORD and "current_password" in body:
            body["current_password"] = data.password
        if "refresh_token" in body:  # POST /refresh, POST /logout
            body["refresh_token"] = data.refresh_token
        if case.operation.label == "POST /revoke" and "token" in body:
            body["token"] = data.refresh_token
        if case.operation.label == "POST /refresh":
            # Cookie mode (``?cookie=true``) wants the CSRF header a page would send; without
            # it such a request is a 403, which the checks accept but which skips the success.
            case.headers["X-Requested-With"] = "schemathesis"
        if case.operation.label == "DELETE /sessions/{session_id}":
            case.path_parameters["session_id"] = data.session_id


@schemathesis.auth(refresh_interval=REFRESH_INTERVAL).apply_to(name=list(CLIENT_OPERATIONS))
class IntrospectionClient:
    """HTTP Basic as the configured introspection client; valid requests ask about a live
    access token (of a user of its own), so the ``active: true`` answer is reached too."""

    def get(self, case: schemathesis.Case[Any], context: schemathesis.AuthContext) -> Login:
        return sign_up(_base_url(context))

    def set(
        self, case: schemathesis.Case[Any], data: Login, context: schemathesis.AuthContext
    ) -> None:
        if not case.headers:
            case.headers = CaseInsensitiveDict()
        pair = f"{INTROSPECTION_CLIENT_ID}:{INTROSPECTION_CLIENT_SECRET}".encode()
        case.headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        if case.meta is None or not case.meta.generation.mode.is_positive:
            return
        if isinstance(case.body, dict) and "token" in case.body:
            case.body["token"] = data.access_token


def user_id(login: Login) -> str:
    """The ``sub`` claim of the access token (read, not verified)."""
    payload = login.access_token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * 4))
    return str(claims["sub"])


@schemathesis.auth(refresh_interval=REFRESH_INTERVAL).apply_to(name=list(ADMIN))
class Admin:
    """The admin of ``SCHEMATHESIS_ADMIN_USERNAME`` for the admin API (else a plain user)."""

    def get(self, case: schemathesis.Case[Any], context: schemathesis.AuthContext) -> Login:
        base_url = _base_url(context)
        username = os.environ.get("SCHEMATHESIS_ADMIN_USERNAME")
        password = os.environ.get("SCHEMATHESIS_ADMIN_PASSWORD", "")
        login = (username and log_in(base_url, username, password)) or sign_up(base_url)
        PROTECTED_USERS.add(user_id(login))
        return login

    def set(
        self, case: schemathesis.Case[Any], data: Login, context: schemathesis.AuthContext
    ) -> None:
        _bearer(case, data)
        if "user_id" not in (case.path_parameters or {}):
            return
        positive = case.meta is not None and case.meta.generation.mode.is_positive
        if positive or str(case.path_parameters["user_id"]) in PROTECTED_USERS:
            case.path_parameters["user_id"] = user_id(sign_up(_base_url(context)))
