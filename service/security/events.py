"""Security events: one structured log line per event on the ``service.security`` logger.

Call ``security_event(name, **fields)`` wherever something happens that an operator may have to
investigate: a failed login, a replayed refresh token, a revoked session, a rate limit hit.
Events in use: ``login_failed``, ``refresh_reuse_detected``, ``password_changed``,
``password_change_failed``, ``session_revoked`` (with ``how``), ``account_deleted``,
``refresh_refused``, ``rate_limited``, ``mail_given_up`` (an email that will never be sent),
``introspection_client_refused``, ``admin_action``, ``admin_access_denied``,
and the second factor's (docs/mfa.md):
``mfa_enrolment_started``, ``mfa_enabled``, ``mfa_disabled``, ``mfa_required``,
``mfa_code_refused``, ``mfa_recovery_code_used``, ``mfa_token_refused``,
``mfa_secret_unreadable``, ``password_confirmation_failed``.

Each record carries its fields twice: as attributes of the ``LogRecord`` (passed with
``extra=``, so a JSON formatter writes them as keys) and as ``key=value`` pairs in the message
(so the plain text format shows them too; values with spaces, quotes or control characters
are JSON-quoted there, so a value cannot forge a line).

The web layer hands in where a request came from with ``bind_request`` as each request starts
(a context variable, so each request's task sees its own); events of that request then carry
its ``request_id`` and ``client_address`` unless given. Events outside a request (the command
line) carry neither. Nothing here knows the web framework.

Never pass a password or a token: field names that look like one are refused with
``ValueError``, so such a mistake fails in tests instead of leaking into logs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from contextvars import ContextVar
from types import MappingProxyType

security_log = logging.getLogger("service.security")

#: Parts of field names that would put a secret into the logs.
_SECRET_NAMES = ("password", "token", "secret", "authorization", "cookie")
#: ``LogRecord`` attributes that ``extra`` may not overwrite (``logging`` raises on them).
_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

_NO_REQUEST: Mapping[str, str] = MappingProxyType({})
_request: ContextVar[Mapping[str, str]] = ContextVar("security_event_request", default=_NO_REQUEST)


def bind_request(*, request_id: str, client_address: str | None) -> None:
    """Name the request that the current task serves, for the events it logs."""
    context = {"request_id": request_id}
    if client_address is not None:
        context["client_address"] = client_address
    _request.set(context)


def security_event(event: str, /, *, level: int = logging.INFO, **fields: object) -> None:
    """Log the security event ``event`` (snake_case) with ``fields``.

    Usual fields: ``user_id``, ``session_id`` (UUIDs are fine), ``reason``, ``how``. ``None``
    values are left out. ``level`` is ``logging.WARNING`` for events that suggest an attack
    (``login_failed``, ``refresh_reuse_detected``, ``rate_limited``).
    """
    for key in fields:
        if any(part in key.lower() for part in _SECRET_NAMES) or key in _RESERVED:
            raise ValueError(f"field {key!r} may not go into a security event")
    if not security_log.isEnabledFor(level):
        return
    for key, value in _request.get().items():
        fields.setdefault(key, value)
    values = {key: str(value) for key, value in fields.items() if value is not None}
    pairs = " ".join(f"{key}={_quoted(value)}" for key, value in values.items())
    message = f"{event} {pairs}" if pairs else event
    security_log.log(level, "%s", message, extra={"event": event, **values})


def _quoted(value: str) -> str:
    """``value`` as one logfmt token: quoted and escaped if it could break or forge a line."""
    if value and value.isprintable() and not any(c in value for c in ' "=\\'):
        return value
    return json.dumps(value)
