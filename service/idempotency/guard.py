"""``Idempotency-Key`` (draft-ietf-httpapi-idempotency-key-header): creating POSTs, safely retried.

A client that sends a key with ``POST /items`` or ``POST /signup`` may repeat the request
(a timeout, a reset connection, a ``503`` that may or may not have been committed) and the
work is done once:

- The first request with a key does the work; its answer (status, body, ``Location``,
  ``ETag``) is stored **in the same transaction as the write**, so a crash keeps both or
  neither (``once``).
- A retry with the same key and the same request gets the stored answer again, marked
  ``Idempotent-Replayed: true``; nothing is written. The same key with another request is
  ``422`` (draft section 2.7). A retry that arrives while the first is still running waits for
  it at the database (the key's primary key) and then gets the replay; should the first's
  answer then not be readable, ``409`` (draft section 2.7) says to try again.
- Only successes are stored: an error (``422`` schema violation, ``409`` name taken, ``503``)
  rolls the transaction back with the key, so the client can fix the request and reuse its
  key; the draft leaves that choice to the server.
- Keys are per caller: a user's keys are theirs alone (scope ``user:<id>``, deleted with the
  account). ``/signup`` has no user: its keys share one scope, which is safe because the
  fingerprint must match too and a key is meant to be a random UUID; the client's address was
  rejected as scope because it changes exactly when retries happen (a phone between networks)
  and is shared behind NAT. The password is left out of the fingerprint so no fast hash of it
  is ever stored: a signup retried with another password gets the first one's answer.
- A key lives ``IDEMPOTENCY_KEY_TTL`` seconds (default 24 h); after that it is as good as new.

``/login`` and ``/refresh`` ignore the header: their answers are bearer tokens, which must not
be kept (RFC 6749 section 5.1, ``no-store``), and a repeated login only starts one more
session, which the caller can list and end. Other POSTs change state and are not creations.

The header is a Structured Field string (RFC 9651 section 3.3.3): ``"..."`` with ``\\"`` and
``\\\\`` escapes. The bare form most clients send (``Idempotency-Key: 8e0...``) is accepted
as well. Either way the key is 1 to 255 printable ASCII characters, else ``400``.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn, TypeVar, cast

from quart import Response, current_app, request
from werkzeug.exceptions import abort

from service.db import Writer
from service.errors import ApiError, Conflict, ValidationFailed
from service.idempotency.queries import (
    KeyRecord,
    KeyTaken,
    claim_key,
    select_live_key,
    store_answer,
)
from service.services import services

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
#: The response headers kept with an answer and sent again on a replay.
KEPT_HEADERS = ("Content-Type", "Location", "ETag")
#: Scope of the keys of ``/signup``, which has no caller to scope them by.
SIGNUP_SCOPE = "signup"

#: What a handler returns: quart-schema turns its model into the body.
R = TypeVar("R")


class InvalidKey(ApiError):
    """The ``Idempotency-Key`` header is malformed (draft section 2.7: ``400``)."""

    status = 400


def user_scope(user_id: uuid.UUID) -> str:
    return f"user:{user_id}"


def parse_key(values: list[str]) -> str | None:
    """The key of the request's ``Idempotency-Key`` header values; None without one.

    ``InvalidKey`` for two headers, an empty or overlong key, a character outside printable
    ASCII, or a malformed Structured Field string.
    """
    if not values:
        return None
    if len(values) > 1:
        raise InvalidKey(f"Send one {HEADER} header.")
    raw = values[0].strip(" \t")
    key = _sf_string(raw) if raw.startswith('"') else raw
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not all(" " <= char <= "~" for char in key):
        raise InvalidKey(f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable ASCII characters.")
    return key


def _sf_string(raw: str) -> str:
    """The value of a Structured Field string (RFC 9651 section 4.2.5)."""
    if len(raw) < 2 or not raw.endswith('"'):
        raise InvalidKey(f"{HEADER} is not a valid string.")
    chars: list[str] = []
    inner = iter(raw[1:-1])
    for char in inner:
        if char == '"':
            raise InvalidKey(f"{HEADER} is not a valid string.")
        if char != "\\":
            chars.append(char)
            continue
        escaped = next(inner, "")
        if escaped not in ('"', "\\"):
            raise InvalidKey(f"{HEADER} is not a valid string.")
        chars.append(escaped)
    return "".join(chars)


def fingerprint(method: str, path: str, fields: Mapping[str, Any]) -> str:
    """SHA-256 of the request: method, path (trailing slash dropped) and canonical JSON body.

    ``fields`` is the validated body, so key order, spacing and an explicit default do not
    make two requests differ.
    """
    body = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    canonical = f"{method.upper()} {path.rstrip('/') or '/'}\n{body}"
    return hashlib.sha256(canonical.encode()).hexdigest()


async def once(
    scope: str,
    fields: Mapping[str, Any],
    create: Callable[[Writer], Awaitable[R]],
    *,
    owner_id: uuid.UUID | None = None,
) -> R:
    """Run ``create`` in one write transaction, at most once per ``Idempotency-Key``.

    Without the header, ``create`` simply runs in its transaction. With it, a stored answer
    is replayed (raised as werkzeug's ``abort(response)``, since a handler's return value goes
    through response validation), a key used with another request is ``422``, and otherwise
    ``create`` runs in the transaction that claims the key and stores the answer.
    """
    db = services().db
    key = parse_key(request.headers.getlist(HEADER))
    if key is None:
        async with db.write() as writer:
            return await create(writer)
    sought = fingerprint(request.method, request.path, fields)
    now = datetime.now(UTC)
    async with db.read() as reader:
        found = await select_live_key(reader, scope, key, now)
    if found is not None:
        _replay(found, sought)
    ttl = timedelta(seconds=services().settings.idempotency_key_ttl)
    try:
        async with db.write() as writer:
            await claim_key(
                writer,
                scope,
                key,
                owner_id=owner_id,
                fingerprint=sought,
                now=now,
                expires_at=now + ttl,
            )
            result = await create(writer)
            response = await current_app.make_response(cast(Any, result))
            assert isinstance(response, Response)
            await store_answer(
                writer,
                scope,
                key,
                status=response.status_code,
                headers=json.dumps(_kept_headers(response)),
                body=await response.get_data(as_text=True),
            )
        return result
    except KeyTaken:
        pass
    # A concurrent first request with this key committed while this one waited for it.
    async with db.read() as reader:
        found = await select_live_key(reader, scope, key, datetime.now(UTC))
    if found is not None:
        _replay(found, sought)
    raise Conflict(f"A request with this {HEADER} is in progress; retry it shortly.")


def _kept_headers(response: Response) -> dict[str, str]:
    return {name: response.headers[name] for name in KEPT_HEADERS if name in response.headers}


def _replay(found: KeyRecord, sought: str) -> NoReturn:
    """Answer with the stored response (raised), or ``422`` if the request is another one."""
    if found.fingerprint != sought:
        raise ValidationFailed(
            f"This {HEADER} was used with a different request.",
            errors=[{"field": HEADER, "message": "was used with a different request"}],
        )
    if found.status is None:  # not committed: cannot be seen outside its transaction
        raise Conflict(f"A request with this {HEADER} is in progress; retry it shortly.")
    response = Response(found.body or "", status=found.status)
    response.headers.update(json.loads(found.headers or "{}"))
    response.headers[REPLAYED_HEADER] = "true"
    abort(response)
