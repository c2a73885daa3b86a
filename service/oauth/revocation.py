"""Token revocation (RFC 7009): a refresh or an access token ends its login session.

Revoking either kind ends the whole session (RFC 7009 section 2.1: revoking a refresh token
SHOULD also invalidate the access tokens of the same grant; revoking an access token MAY end
the refresh token too). The session's access tokens stop working from the next request on, as
after a logout. The token is tried as the kind its ``token_type_hint`` names first, then as the
other kind (section 2.1: a wrong hint must not stop the search).

Whatever was sent, the answer is the same: a token that is malformed, foreign, expired or whose
session ended already revokes nothing and still succeeds (section 2.2), so the endpoint tells
nobody whether a string is a live token.
"""

from __future__ import annotations

from datetime import UTC, datetime

from service.security.tokens.session import ACCESS_TYP, REFRESH_TYP, VerifiedToken
from service.security.tokens.verification import TokenError
from service.services import Services
from service.sessions.logout import log_revoked
from service.sessions.queries import revoke_sessions

#: ``token_type_hint`` values (RFC 7009 section 2.1) and the JWT ``typ`` each names.
HINTS = {"access_token": ACCESS_TYP, "refresh_token": REFRESH_TYP}


def presented_token(services: Services, token: str, hint: str | None) -> VerifiedToken | None:
    """``token`` verified as the hinted kind first, then the other; None if it is neither.

    An unknown hint is ignored (section 2.1: the server may ignore it).
    """
    first = HINTS.get(hint or "", REFRESH_TYP)
    for typ in (first, *(typ for typ in (REFRESH_TYP, ACCESS_TYP) if typ != first)):
        try:
            return services.tokens.verify(token, typ)
        except TokenError:
            continue
    return None


async def revoke(services: Services, token: str, hint: str | None) -> None:
    """End the session of ``token`` if it is a token of ours within its lifetime."""
    verified = presented_token(services, token, hint)
    if verified is None:
        return
    async with services.db.write() as db:
        revoked = await revoke_sessions(
            db, verified.user_id, datetime.now(UTC), only=verified.session_id
        )
    log_revoked(verified.user_id, revoked, how="revoke")
