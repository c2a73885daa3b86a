"""The second factor's rules on their own: TOTP steps, the secret box, recovery codes, the
``mfa_token`` kind and the key it is stored under, and the settings of the encryption key."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import pyotp
import pytest
from pydantic import ValidationError

from service.config import ConfigurationError, Settings, load_settings
from service.config.keyring import mfa_encryption_key
from service.security import keys, recovery_codes
from service.security.secret_box import SecretBox, SecretBoxError, decode_key, new_key
from service.security.tokens.account import password_binding
from service.security.tokens.device import DeviceCredentials
from service.security.tokens.mfa import MFA_TYP, MfaTokens, challenge_key
from service.security.tokens.session import ACCESS_TYP, REFRESH_TYP, TokenService
from service.security.tokens.verification import TokenError
from service.security.totp import Totp
from tests.helpers import TEST_SECRET, make_settings
from tests.signing import header_of

T0 = 1_800_000_015  # mid-step
ISSUER = "https://issuer.test"
AUDIENCE = "https://api.test"
USER = uuid.uuid4()


# --- TOTP -----------------------------------------------------------------------------------


@pytest.fixture
def secret() -> str:
    return pyotp.random_base32(32)


def totp_at(instant: float) -> Totp:
    return Totp(issuer="service", clock=lambda: instant)


def test_the_current_code_matches_its_step(secret: str) -> None:
    step = totp_at(T0).matching_step(secret, pyotp.TOTP(secret).at(T0), after=None)

    assert step == T0 // 30


@pytest.mark.parametrize(
    ("offset", "accepted"), [(-60, False), (-30, True), (30, True), (60, False)]
)
def test_one_step_either_side_is_accepted(secret: str, offset: int, accepted: bool) -> None:
    step = totp_at(T0).matching_step(secret, pyotp.TOTP(secret).at(T0 + offset), after=None)

    assert (step is not None) is accepted


def test_a_step_at_or_before_the_last_used_one_is_refused(secret: str) -> None:
    code = pyotp.TOTP(secret).at(T0)
    used = T0 // 30

    assert totp_at(T0).matching_step(secret, code, after=used) is None
    assert totp_at(T0).matching_step(secret, code, after=used - 1) == used
    previous = pyotp.TOTP(secret).at(T0 - 30)
    assert totp_at(T0).matching_step(secret, previous, after=used) is None


def test_another_secrets_code_is_refused(secret: str) -> None:
    other = pyotp.random_base32(32)

    assert totp_at(T0).matching_step(secret, pyotp.TOTP(other).at(T0), after=None) is None


def test_an_enrolment_is_a_uri_for_authenticator_apps_and_a_qr_code() -> None:
    enrolment = Totp(issuer="Acme Co").enrolment("alice@example.com")

    parsed = pyotp.parse_uri(enrolment.uri)
    assert parsed.secret == enrolment.secret
    assert isinstance(parsed, pyotp.TOTP)
    assert parsed.issuer == "Acme Co"
    assert parsed.name == "alice@example.com"
    assert len(enrolment.secret) == 32  # 160 bits
    assert enrolment.qr_svg.startswith("data:image/svg+xml")
    assert enrolment.secret != Totp(issuer="Acme Co").enrolment("alice").secret


# --- the secret box -------------------------------------------------------------------------


def test_a_sealed_secret_opens_with_its_key_and_owner_only() -> None:
    box = SecretBox(decode_key(new_key()))
    sealed = box.seal("JBSWY3DPEHPK3PXP", "user-1")

    assert "JBSWY3DPEHPK3PXP" not in sealed
    assert box.open(sealed, "user-1") == "JBSWY3DPEHPK3PXP"
    with pytest.raises(SecretBoxError):
        box.open(sealed, "user-2")  # moved to another account's row
    with pytest.raises(SecretBoxError):
        SecretBox(decode_key(new_key())).open(sealed, "user-1")  # another key
    tampered = sealed[:-4] + ("AAAA" if not sealed.endswith("AAAA") else "BBBB")
    with pytest.raises(SecretBoxError):
        box.open(tampered, "user-1")


def test_sealing_twice_gives_two_ciphertexts() -> None:
    box = SecretBox(decode_key(new_key()))

    assert box.seal("same", "u") != box.seal("same", "u")


@pytest.mark.parametrize("text", ["", "short", "!!!!", "a" * 80])
def test_a_key_that_is_not_32_bytes_of_base64url_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="base64url"):
        decode_key(text)


# --- recovery codes -------------------------------------------------------------------------


def test_recovery_codes_are_ten_different_120_bit_codes() -> None:
    codes = recovery_codes.new_codes()

    assert len(set(codes)) == 10
    for code in codes:
        assert len(recovery_codes.normalized(code)) == 24  # 24 base32 characters: 120 bits
        assert code.count("-") == 5


def test_a_recovery_code_digest_ignores_case_spaces_and_hyphens() -> None:
    code = recovery_codes.new_codes(1)[0]

    assert recovery_codes.digest(code) == recovery_codes.digest(code.upper().replace("-", " "))
    assert recovery_codes.digest(code) != recovery_codes.digest(recovery_codes.new_codes(1)[0])
    assert code not in recovery_codes.digest(code)


# --- the mfa_token kind ---------------------------------------------------------------------


@pytest.fixture
def key_set() -> keys.KeySet:
    return keys.hmac_key_set(TEST_SECRET, [])


@pytest.fixture
def mfa_tokens(key_set: keys.KeySet) -> MfaTokens:
    return MfaTokens(keys=key_set, issuer=ISSUER, audience=AUDIENCE, ttl=300)


@pytest.fixture
def tokens(key_set: keys.KeySet) -> TokenService:
    return TokenService(keys=key_set, issuer=ISSUER, audience=AUDIENCE)


def test_an_mfa_token_has_its_own_type_and_no_session(mfa_tokens: MfaTokens) -> None:
    issued = mfa_tokens.issue(USER)

    assert header_of(issued.value)["typ"] == MFA_TYP
    verified = mfa_tokens.verify(issued.value)
    assert verified.user_id == USER
    assert verified.token_id == issued.token_id


@pytest.mark.parametrize("typ", [ACCESS_TYP, REFRESH_TYP])
def test_an_mfa_token_is_never_a_session_token(
    mfa_tokens: MfaTokens, tokens: TokenService, typ: str
) -> None:
    with pytest.raises(TokenError, match="wrong token type"):
        tokens.verify(mfa_tokens.issue(USER).value, typ)


@pytest.mark.parametrize("typ", [ACCESS_TYP, REFRESH_TYP])
def test_a_session_token_is_never_an_mfa_token(
    mfa_tokens: MfaTokens, tokens: TokenService, typ: str
) -> None:
    value = tokens.issue(typ, user_id=USER, session_id=uuid.uuid4(), ttl=60, not_after=2**40)

    with pytest.raises(TokenError, match="wrong token type"):
        mfa_tokens.verify(value.value)


def test_a_device_credential_is_never_an_mfa_token(
    mfa_tokens: MfaTokens, key_set: keys.KeySet
) -> None:
    device = DeviceCredentials(keys=key_set, issuer=ISSUER, audience=AUDIENCE, ttl=3600)

    with pytest.raises(TokenError):
        mfa_tokens.verify(device.issue(USER).value)


def test_an_expired_mfa_token_is_refused(key_set: keys.KeySet) -> None:
    now = [float(T0)]
    issuer = MfaTokens(
        keys=key_set, issuer=ISSUER, audience=AUDIENCE, ttl=300, clock=lambda: now[0]
    )
    value = issuer.issue(USER).value
    now[0] += 306  # past the leeway

    with pytest.raises(TokenError):
        issuer.verify(value)


def test_an_mfa_token_of_another_audience_is_refused(
    mfa_tokens: MfaTokens, key_set: keys.KeySet
) -> None:
    other = MfaTokens(keys=key_set, issuer=ISSUER, audience="https://elsewhere.test", ttl=300)

    with pytest.raises(TokenError):
        mfa_tokens.verify(other.issue(USER).value)


def test_a_stored_mfa_token_key_changes_with_the_password_or_the_factor() -> None:
    """What the database keeps of an ``mfa_token`` names its ``jti`` and the credentials it was
    issued under: another password hash or another factor secret gives another key."""
    issued_under = password_binding("$bcrypt-sha256$hash-1", "sealed-1")
    key = challenge_key("jti", issued_under)

    assert challenge_key("jti", issued_under) == key
    assert challenge_key("jti", password_binding("$bcrypt-sha256$hash-2", "sealed-1")) != key
    assert challenge_key("jti", password_binding("$bcrypt-sha256$hash-1", "sealed-2")) != key
    assert challenge_key("jti", password_binding("$bcrypt-sha256$hash-1")) != key
    assert challenge_key("other-jti", issued_under) != key


def test_a_reset_links_binding_is_unchanged_by_the_factor_argument() -> None:
    """Reset links stored before the factor argument existed must still match."""
    digest = hashlib.sha256(b"$bcrypt-sha256$hash-1").hexdigest()

    assert password_binding("$bcrypt-sha256$hash-1") == digest


# --- settings -------------------------------------------------------------------------------


def test_production_refuses_to_start_without_an_mfa_key() -> None:
    with pytest.raises(ValidationError, match="MFA_ENCRYPTION_KEY must be set in production"):
        Settings(
            _env_file=None,
            app_env="production",
            secret_key="Zq8v3N1xK7pW2mR9tY4bL6cH0dF5gJ-aQeUiOs_",
        )


def test_a_malformed_mfa_key_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("CONFIG_DIR", str(tmp_path))
    monkeypatch.setenv("MFA_ENCRYPTION_KEY", "not-a-key")

    with pytest.raises(ConfigurationError, match="MFA_ENCRYPTION_KEY:") as raised:
        load_settings()
    assert "not-a-key" not in str(raised.value)


def test_development_generates_its_mfa_key_once_under_instance(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("INSTANCE_DIR", str(tmp_path))
    development = make_settings(
        "sqlite:///unused.db", app_env="development", mfa_encryption_key=None
    )

    first = mfa_encryption_key(development)

    assert len(first) == 32
    assert (tmp_path / "mfa_key").stat().st_mode & 0o077 == 0
    assert mfa_encryption_key(development) == first


def test_a_broken_development_mfa_key_file_is_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("INSTANCE_DIR", str(tmp_path))
    (tmp_path / "mfa_key").write_text("garbage")
    development = make_settings(
        "sqlite:///unused.db", app_env="development", mfa_encryption_key=None
    )

    with pytest.raises(ConfigurationError, match="mfa_key"):
        mfa_encryption_key(development)
