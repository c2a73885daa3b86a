"""The audience (``aud``) each kind of token carries, and which audiences its verifier accepts.

Access tokens, refresh tokens, device credentials and ``mfa_token``s are all signed with one
key set and carry one ``iss``. A verifier that checks only the signature, ``iss`` and ``aud``
(PyJWT's defaults, and many resource servers) cannot see their ``typ``, so the kinds must also
be told apart by ``aud`` (RFC 8725 section 3.12: mutually exclusive validation rules):

- **Access tokens** carry ``JWT_AUDIENCE``, the audience resource servers are configured to
  accept (RFC 9068 section 3).
- **Tokens only this service takes back** (refresh tokens, device credentials and
  ``mfa_token``s, all presented at the token endpoint or its second step) carry the token
  endpoint's URL as the metadata publishes it (RFC 8414 ``token_endpoint``: ``PUBLIC_BASE_URL``,
  else a URL ``JWT_ISSUER``, then ``/login``), the audience RFC 7523 section 3 gives a JWT
  meant for an authorization server. No resource server accepts that, and the service refuses
  to start when ``JWT_AUDIENCE`` is set to it. Among themselves these kinds differ by ``typ``,
  which the service's one verifier (``service.security.tokens.verification``) checks.
- **When the service does not know its URL** (no ``PUBLIC_BASE_URL`` and a ``JWT_ISSUER`` that
  is a name, as in tests and a bare development set-up) the audience is the token path under
  the issuer's name, ``service/login`` by default. It names the same thing, the issuer's token
  endpoint, stays the same across restarts and ports, and never claims a URL the service may
  not own. The audience follows the settings, so changing ``PUBLIC_BASE_URL`` (like
  ``JWT_ISSUER``) ends every session and device credential.

**Transition (decided 2026-12-07).** Until then every kind carried ``JWT_AUDIENCE``. So that
nobody is logged out by the change, a refresh token, device credential or ``mfa_token`` that
carries ``JWT_AUDIENCE`` is still accepted by the service's own verifiers (``LEGACY``), which
check ``typ`` too, so an access token still never passes for one of them. A refresh spends such
a token and issues a successor with the new audience; a login issues a new device credential.
Access tokens accept ``JWT_AUDIENCE`` only, as before. **Set ``LEGACY`` to False** (then delete
it and ``legacy_audiences``) once the longest of ``REFRESH_TOKEN_TTL`` (7 days by default) and
``DEVICE_TOKEN_TTL`` (30 days) has passed since this release reached every production instance:
with the defaults, 30 days after that deploy, so not before 2027-01-06. By then every token
with the old audience has expired (``MFA_TOKEN_TTL`` is at most 15 minutes).
"""

from __future__ import annotations

from typing import Final

from service.security.discovery import TOKEN_PATH, endpoint_base

#: Whether the service still accepts its own tokens issued with the access audience (see the
#: transition above); the single switch to turn off when the date has passed.
LEGACY: Final = True


def token_endpoint_audience(public_base_url: str | None, issuer: str) -> str:
    """The ``aud`` of the tokens only this service takes back: its token endpoint's URL,
    or the token path under the issuer's name when the service knows no URL of its own."""
    base = endpoint_base(public_base_url, issuer) or issuer.rstrip("/")
    return base + TOKEN_PATH


def legacy_audiences(access_audience: str) -> tuple[str, ...]:
    """Audiences still accepted on refresh tokens, device credentials and ``mfa_token``s
    besides their own: the access audience they carried before, during the transition."""
    return (access_audience,) if LEGACY else ()


def check_distinct(own_audience: str, access_audience: str) -> None:
    """``ValueError`` if the service's own tokens would carry the access tokens' audience:
    every resource server would then take a refresh token for an access token."""
    if own_audience == access_audience:
        raise ValueError(
            f"JWT_AUDIENCE is {access_audience!r}, the audience of the service's refresh "
            "tokens (its token endpoint); set JWT_AUDIENCE to the API's own identifier"
        )
