"""The token service on its own: what it issues, what it accepts, and its small pure rules."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from service.security import keys
from service.security.tokens.session import ACCESS_TYP, REFRESH_TYP, TokenService
from service.security.tokens.verification import (
    LEEWAY_SECONDS,
    MAX_TOKEN_LENGTH,
    TokenError,
    check_header,
    check_shape,
)
from tests.signing import SigningKey, claims_of, header_of, thumbprint

ISSUER = "https://issuer.test"
AUDIENCE = "https://api.test"
T0 = 1_800_000_000


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def key_set(algorithm: str, signing: SigningKey, *verify_only: SigningKey) -> keys.KeySet:
    if isinstance(signing, str):
        return keys.hmac_key_set(signing, [key for key in verify_only if isinstance(key, str)])
    asymmetric = keys.canonical_algorithm(algorithm)
    assert asymmetric != "HS256"
    publics = [key.public_key() for key in verify_only if not isinstance(key, str)]
    return keys.asymmetric_key_set(asymmetric, signing, publics)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(key_pool: dict[str, list[SigningKey]], algorithm: str, clock: Clock) -> TokenService:
    return TokenService(
        keys=key_set(algorithm, key_pool[algorithm][0]),
        issuer=ISSUER,
        audience=AUDIENCE,
        clock=clock,
    )


def issue(service: TokenService, typ: str = ACCESS_TYP, **overrides: Any) -> tuple[str, Any]:
    user_id, session_id = uuid.uuid4(), uuid.uuid4()
    values: dict[str, Any] = {
        "user_id": user_id,
        "session_id": session_id,
        "ttl": 900,
        "not_after": T0 + 86_400,
    }
    values.update(overrides)
    issued = service.issue(typ, **values)
    return issued.value, (values["user_id"], values["session_id"], issued)


@pytest.mark.parametrize("typ", [ACCESS_TYP, REFRESH_TYP])
def test_an_issued_token_verifies_as_its_own_kind(service: TokenService, typ: str) -> None:
    value, (user_id, session_id, issued) = issue(service, typ)
    verified = service.verify(value, typ)
    assert (verified.user_id, verified.session_id) == (user_id, session_id)
    assert verified.token_id == issued.token_id
    assert verified.expires_at == issued.expires_at == T0 + 900


def test_the_header_names_algorithm_key_and_kind(
    service: TokenService, algorithm: str, key_pool: dict[str, list[SigningKey]]
) -> None:
    access, _ = issue(service, ACCESS_TYP)
    refresh, _ = issue(service, REFRESH_TYP)
    kid = thumbprint(key_pool[algorithm][0])
    assert header_of(access) == {"alg": algorithm, "kid": kid, "typ": "at+jwt"}
    assert header_of(refresh) == {"alg": algorithm, "kid": kid, "typ": "refresh+jwt"}


def test_the_claims_are_all_there(service: TokenService) -> None:
    value, (user_id, session_id, issued) = issue(service)
    claims = claims_of(value)
    assert claims == {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(user_id),
        "sid": str(session_id),
        "jti": issued.token_id,
        "iat": T0,
        "nbf": T0,
        "exp": T0 + 900,
    }


def test_every_token_has_its_own_id(service: TokenService) -> None:
    ids = {claims_of(issue(service)[0])["jti"] for _ in range(20)}
    assert len(ids) == 20


def test_not_after_caps_the_expiry(service: TokenService) -> None:
    """A token never outlives its session (its absolute lifetime, RFC 9700 section 4.14.2)."""
    value, (_, _, issued) = issue(service, ttl=900, not_after=T0 + 60)
    assert issued.expires_at == claims_of(value)["exp"] == T0 + 60


def test_the_eddsa_name_issues_ed25519_tokens(key_pool: dict[str, list[SigningKey]]) -> None:
    """RFC 9864: EdDSA in the configuration, the fully specified Ed25519 in the header."""
    algorithm = keys.canonical_algorithm("EdDSA")
    service = TokenService(
        keys=key_set(algorithm, key_pool["Ed25519"][0]), issuer=ISSUER, audience=AUDIENCE
    )
    value, _ = issue(service, not_after=2**40)
    assert header_of(value)["alg"] == "Ed25519"
    assert service.verify(value, ACCESS_TYP)


def test_expiry_is_honoured_for_a_remembered_token(service: TokenService, clock: Clock) -> None:
    value, _ = issue(service)
    service.verify(value, ACCESS_TYP)  # now remembered
    clock.now = T0 + 900 + LEEWAY_SECONDS  # the last moment the leeway allows
    assert service.verify(value, ACCESS_TYP)
    clock.now = T0 + 900 + LEEWAY_SECONDS + 1
    with pytest.raises(TokenError):
        service.verify(value, ACCESS_TYP)


def test_expiry_is_honoured_for_a_token_seen_for_the_first_time(
    service: TokenService, clock: Clock
) -> None:
    value, _ = issue(service)
    clock.now = T0 + 900 + LEEWAY_SECONDS + 1
    with pytest.raises(TokenError):
        service.verify(value, ACCESS_TYP)


def test_a_token_is_not_valid_before_it_was_issued(service: TokenService, clock: Clock) -> None:
    """A clock that runs behind another instance's by more than the leeway refuses."""
    value, _ = issue(service)
    clock.now = T0 - LEEWAY_SECONDS - 1
    with pytest.raises(TokenError):
        service.verify(value, ACCESS_TYP)


def test_a_remembered_token_is_still_refused_as_the_other_kind(service: TokenService) -> None:
    refresh, _ = issue(service, REFRESH_TYP)
    service.verify(refresh, REFRESH_TYP)
    with pytest.raises(TokenError, match="wrong token type"):
        service.verify(refresh, ACCESS_TYP)
    access, _ = issue(service, ACCESS_TYP)
    service.verify(access, ACCESS_TYP)
    with pytest.raises(TokenError, match="wrong token type"):
        service.verify(access, REFRESH_TYP)


def test_a_verify_only_key_verifies_but_never_signs(
    key_pool: dict[str, list[SigningKey]], algorithm: str, clock: Clock
) -> None:
    old, new = key_pool[algorithm][:2]
    before = TokenService(
        keys=key_set(algorithm, old), issuer=ISSUER, audience=AUDIENCE, clock=clock
    )
    after = TokenService(
        keys=key_set(algorithm, new, old), issuer=ISSUER, audience=AUDIENCE, clock=clock
    )
    old_token, _ = issue(before)
    new_token, _ = issue(after)
    assert header_of(new_token)["kid"] == thumbprint(new)
    assert after.verify(old_token, ACCESS_TYP)
    with pytest.raises(TokenError, match="unknown key id"):
        before.verify(new_token, ACCESS_TYP)


@pytest.mark.parametrize(
    "case", [(ISSUER, "https://other.test", "aud"), ("https://other.test", AUDIENCE, "iss")]
)
def test_another_issuer_or_audience_is_refused(
    key_pool: dict[str, list[SigningKey]],
    algorithm: str,
    service: TokenService,
    clock: Clock,
    case: tuple[str, str, str],
) -> None:
    """The verifier has the same key and the same clock: only the named claim can refuse it."""
    issuer, audience, claim = case
    value, _ = issue(service)
    other = TokenService(
        keys=key_set(algorithm, key_pool[algorithm][0]),
        issuer=issuer,
        audience=audience,
        clock=clock,
    )
    with pytest.raises(TokenError, match=f"Invalid claim: '{claim}'"):
        other.verify(value, ACCESS_TYP)
    assert TokenService(
        keys=key_set(algorithm, key_pool[algorithm][0]),
        issuer=ISSUER,
        audience=AUDIENCE,
        clock=clock,
    ).verify(value, ACCESS_TYP)  # the same verifier with the token's own iss and aud accepts


# --- the pure header and shape rules -------------------------------------------------------

GOOD_HEADER = {"alg": "ES256", "kid": "k1", "typ": ACCESS_TYP}


def test_check_header_returns_the_kid_of_a_good_header() -> None:
    assert check_header(GOOD_HEADER, algorithm="ES256", typ=ACCESS_TYP) == "k1"


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ({**GOOD_HEADER, "jku": "https://x"}, "not allowed"),
        ({**GOOD_HEADER, "x5u": "https://x"}, "not allowed"),
        ({**GOOD_HEADER, "jwk": {}}, "not allowed"),
        ({**GOOD_HEADER, "x5c": []}, "not allowed"),
        ({**GOOD_HEADER, "crit": ["exp"]}, "not allowed"),
        ({**GOOD_HEADER, "alg": "RS256"}, "algorithm"),
        ({**GOOD_HEADER, "alg": "none"}, "algorithm"),
        ({**GOOD_HEADER, "alg": "HS256"}, "algorithm"),
        ({"kid": "k1", "typ": ACCESS_TYP}, "algorithm"),
        ({**GOOD_HEADER, "typ": REFRESH_TYP}, "type"),
        ({**GOOD_HEADER, "typ": "JWT"}, "type"),
        ({"alg": "ES256", "kid": "k1"}, "type"),
        ({"alg": "ES256", "typ": ACCESS_TYP}, "key id"),
        ({**GOOD_HEADER, "kid": ""}, "key id"),
        ({**GOOD_HEADER, "kid": ["k1"]}, "key id"),
    ],
)
def test_check_header_refuses(header: dict[str, object], reason: str) -> None:
    with pytest.raises(TokenError, match=reason):
        check_header(header, algorithm="ES256", typ=ACCESS_TYP)


@pytest.mark.parametrize("value", ["a.b", "a.b.c.d.e", "abc", "x" * (MAX_TOKEN_LENGTH + 1)])
def test_check_shape_refuses_what_is_not_a_compact_jws(value: str) -> None:
    with pytest.raises(TokenError):
        check_shape(value)


def test_check_shape_accepts_three_parts() -> None:
    check_shape("a.b.c")
