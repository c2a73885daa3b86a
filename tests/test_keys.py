"""Key configuration: what start-up accepts and refuses, and ``service keygen``.

A key that does not fit the algorithm, a missing key, or a key in the wrong variable stops
start-up with a message naming the variable; no message ever shows key material.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from pydantic import ValidationError
from quart.typing import TestClientProtocol as Client

from service import create_app
from service.cli import main
from service.config import ConfigurationError, Settings, load_settings
from service.config.keyring import load_key_set
from service.security import keys
from tests.helpers import delete_all_rows, make_settings, sign_up
from tests.signing import ASYMMETRIC, header_of, new_key, private_pem, public_pem, thumbprint

DATABASE = "sqlite:///unused.db"
STRONG_SECRET = "k3Jd8-Qz1pLw0Xv7Rt5Ym2Nb6Hc9Gf4Ae"


def settings(**values: Any) -> Settings:
    return make_settings(DATABASE, **values)


def refusal(**values: Any) -> str:
    """The start-up error message for these settings: of the settings themselves, or of the keys
    they name (loaded right after, before anything serves)."""
    try:
        configured = settings(**values)
    except ValidationError as error:
        return str(error)
    with pytest.raises(ConfigurationError) as raised:
        load_key_set(configured)
    return str(raised.value)


def rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


# --- what start-up accepts -----------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ASYMMETRIC)
def test_each_asymmetric_algorithm_starts_with_a_fitting_key(algorithm: str) -> None:
    key = new_key(algorithm)
    assert not isinstance(key, str)
    configured = settings(jwt_algorithm=algorithm, jwt_private_key=private_pem(key))
    key_set = load_key_set(configured)
    assert key_set.algorithm == algorithm
    assert key_set.signing_kid == thumbprint(key)


def test_eddsa_is_read_as_ed25519() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    configured = settings(jwt_algorithm="EdDSA", jwt_private_key=private_pem(key))
    assert configured.jwt_algorithm == "Ed25519"
    assert load_key_set(configured).public_jwks()["keys"][0]["alg"] == "Ed25519"


def test_the_key_can_come_from_a_file(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "signing.pem"
    path.write_text(private_pem(key))
    configured = settings(jwt_algorithm="ES256", jwt_private_key_file=str(path))
    assert load_key_set(configured).signing_kid == thumbprint(key)


def test_a_key_with_escaped_newlines_is_read(tmp_path: Path) -> None:
    """Some platforms keep a multi-line variable as one line with literal backslash-n."""
    key = ed25519.Ed25519PrivateKey.generate()
    one_line = private_pem(key).replace("\n", "\\n")
    configured = settings(jwt_algorithm="Ed25519", jwt_private_key=one_line)
    assert load_key_set(configured).signing_kid == thumbprint(key)


def test_a_traditional_rsa_pem_is_read() -> None:
    key = rsa_key()
    traditional = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    assert "BEGIN RSA PRIVATE KEY" in traditional
    assert load_key_set(settings(jwt_algorithm="RS256", jwt_private_key=traditional))


def test_verify_keys_are_read_from_a_file_and_only_verify(tmp_path: Path) -> None:
    signing, older, oldest = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    path = tmp_path / "verify.pem"
    path.write_text(public_pem(older) + "\n" + private_pem(oldest))
    configured = settings(
        jwt_algorithm="ES256",
        jwt_private_key=private_pem(signing),
        jwt_verify_keys_file=str(path),
    )
    key_set = load_key_set(configured)
    assert key_set.signing_kid == thumbprint(signing)
    assert list(key_set.verifying_keys) == [thumbprint(k) for k in (signing, older, oldest)]
    assert not key_set.verifying_keys[thumbprint(oldest)].is_private


def test_an_asymmetric_algorithm_needs_no_secret_key_in_production() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    configured = settings(
        app_env="production",
        secret_key=None,
        jwt_algorithm="Ed25519",
        jwt_private_key=private_pem(key),
    )
    assert load_key_set(configured).algorithm == "Ed25519"


def test_hs256_fallback_secrets_verify() -> None:
    configured = settings(
        secret_key=STRONG_SECRET,
        secret_key_fallbacks="the-previous-secret,  the-one-before-that ,",
    )
    assert len(load_key_set(configured).verifying_keys) == 3
    assert load_key_set(configured).public_jwks() == {"keys": []}


# --- what start-up refuses -----------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ASYMMETRIC)
def test_a_missing_key_stops_start_up(algorithm: str) -> None:
    message = refusal(jwt_algorithm=algorithm)
    assert f"JWT_ALGORITHM={algorithm} needs a private key" in message
    assert "JWT_PRIVATE_KEY" in message
    assert f"service keygen --algorithm {algorithm}" in message


def test_a_missing_key_is_reported_by_variable_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("CONFIG_DIR", str(tmp_path))
    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.setenv("JWT_ALGORITHM", "RS256")
    monkeypatch.setenv("JWT_PRIVATE_KEY", "")
    with pytest.raises(ConfigurationError, match="JWT_ALGORITHM=RS256 needs a private key"):
        load_settings()


@pytest.mark.parametrize(
    ("algorithm", "make_key", "reason"),
    [
        ("RS256", lambda: rsa_key(1024), "at least 2048 bits, not 1024"),
        ("RS256", lambda: ec.generate_private_key(ec.SECP256R1()), "needs an RSA key"),
        ("RS256", ed25519.Ed25519PrivateKey.generate, "needs an RSA key"),
        ("ES256", lambda: ec.generate_private_key(ec.SECP384R1()), "P-256, not an EC key"),
        ("ES256", rsa_key, "P-256, not a 2048-bit RSA key"),
        ("Ed25519", ed448.Ed448PrivateKey.generate, "Ed25519 key, not an Ed448 key"),
        ("Ed25519", lambda: ec.generate_private_key(ec.SECP256R1()), "needs an Ed25519 key"),
    ],
)
def test_a_key_that_does_not_fit_the_algorithm_stops_start_up(
    algorithm: str, make_key: Any, reason: str
) -> None:
    key = make_key()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    message = refusal(jwt_algorithm=algorithm, jwt_private_key=pem)
    assert "JWT_PRIVATE_KEY:" in message
    assert reason in message
    assert pem.splitlines()[1] not in message, "key material must never be shown"


def test_a_verify_key_that_does_not_fit_stops_start_up() -> None:
    signing = ec.generate_private_key(ec.SECP256R1())
    message = refusal(
        jwt_algorithm="ES256",
        jwt_private_key=private_pem(signing),
        jwt_verify_keys=public_pem(rsa_key()),
    )
    assert "JWT_VERIFY_KEYS: ES256 needs an EC key on P-256" in message


@pytest.mark.parametrize(
    ("pem", "reason"),
    [
        ("not a key at all", "text outside the PEM blocks"),
        ("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "not a readable"),
    ],
)
def test_unreadable_key_text_stops_start_up(pem: str, reason: str) -> None:
    assert reason in refusal(jwt_algorithm="ES256", jwt_private_key=pem)


def test_a_public_key_cannot_sign() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    message = refusal(jwt_algorithm="ES256", jwt_private_key=public_pem(key))
    assert "this is a public key; the signing key must be private" in message


def test_an_encrypted_key_is_refused_with_advice() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    ).decode()
    assert "the private key is encrypted" in refusal(
        jwt_algorithm="ES256", jwt_private_key=encrypted
    )


def test_two_signing_keys_are_refused() -> None:
    first, second = (ed25519.Ed25519PrivateKey.generate() for _ in range(2))
    message = refusal(
        jwt_algorithm="Ed25519", jwt_private_key=private_pem(first) + private_pem(second)
    )
    assert "holds 2 PEM blocks, give exactly one" in message
    assert "JWT_VERIFY_KEYS" in message


def test_the_key_and_its_file_together_are_refused(tmp_path: Path) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    path = tmp_path / "key.pem"
    path.write_text(private_pem(key))
    message = refusal(
        jwt_algorithm="Ed25519", jwt_private_key=private_pem(key), jwt_private_key_file=str(path)
    )
    assert "set JWT_PRIVATE_KEY or JWT_PRIVATE_KEY_FILE, not both" in message


def test_a_missing_key_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.pem"
    message = refusal(jwt_algorithm="RS256", jwt_private_key_file=str(missing))
    assert f"JWT_PRIVATE_KEY_FILE: cannot read {missing}: No such file or directory" in message


def test_a_private_key_with_hs256_is_refused() -> None:
    """Forgetting JWT_ALGORITHM must not silently sign with the HMAC secret instead."""
    key = ed25519.Ed25519PrivateKey.generate()
    message = refusal(jwt_private_key=private_pem(key))
    assert "JWT_PRIVATE_KEY is set but JWT_ALGORITHM is HS256" in message


def test_secret_fallbacks_with_an_asymmetric_algorithm_are_refused() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    message = refusal(
        jwt_algorithm="Ed25519", jwt_private_key=private_pem(key), secret_key_fallbacks="old"
    )
    assert "SECRET_KEY_FALLBACKS only applies to HS256" in message


def test_a_weak_fallback_secret_is_refused_in_production() -> None:
    message = refusal(app_env="production", secret_key=STRONG_SECRET, secret_key_fallbacks="short")
    assert "SECRET_KEY_FALLBACKS is too weak" in message


def test_hs256_in_production_still_needs_a_strong_secret() -> None:
    assert "SECRET_KEY must be set in production" in refusal(app_env="production", secret_key=None)


def test_an_unknown_algorithm_is_refused() -> None:
    message = refusal(jwt_algorithm="HS512")
    assert "jwt_algorithm" in message.lower()


# --- pure key rules ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("HS256", "HS256"),
        ("RS256", "RS256"),
        ("ES256", "ES256"),
        ("Ed25519", "Ed25519"),
        ("EdDSA", "Ed25519"),
    ],
)
def test_canonical_algorithm(name: str, expected: str) -> None:
    assert keys.canonical_algorithm(name) == expected


@pytest.mark.parametrize("name", ["none", "hs256", "eddsa", "ES384", ""])
def test_canonical_algorithm_refuses_other_names(name: str) -> None:
    with pytest.raises(keys.KeyConfigError, match="unknown algorithm"):
        keys.canonical_algorithm(name)


def test_an_hmac_key_is_never_published() -> None:
    key_set = keys.hmac_key_set(STRONG_SECRET)
    assert key_set.public_jwks() == {"keys": []}
    with pytest.raises(keys.KeyConfigError):
        keys.public_jwk(key_set.signing_key, key_set.signing_kid, "HS256")


def test_a_key_listed_twice_counts_once() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    key_set = keys.asymmetric_key_set("ES256", key, [key.public_key(), key.public_key()])
    assert list(key_set.verifying_keys) == [thumbprint(key)]


# --- service keygen ------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", [*ASYMMETRIC, "EdDSA"])
def test_keygen_prints_a_key_that_starts_the_service(algorithm: str) -> None:
    result = CliRunner().invoke(main, ["keygen", "--algorithm", algorithm])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("-----BEGIN PRIVATE KEY-----")
    assert "kid" not in result.stdout, "stdout is exactly the PEM, ready for a file"
    kid = result.stderr.strip().removeprefix("kid: ")
    configured = settings(jwt_algorithm=algorithm, jwt_private_key=result.stdout)
    assert load_key_set(configured).signing_kid == kid


def test_keygen_makes_rsa_keys_of_3072_bits() -> None:
    result = CliRunner().invoke(main, ["keygen", "--algorithm", "RS256"])
    key = serialization.load_pem_private_key(result.stdout.encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.key_size == 3072


def test_keygen_writes_a_file_only_its_owner_can_read(tmp_path: Path) -> None:
    out = tmp_path / "signing.pem"
    result = CliRunner().invoke(main, ["keygen", "--algorithm", "ES256", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    configured = settings(jwt_algorithm="ES256", jwt_private_key_file=str(out))
    assert load_key_set(configured).signing_kid == result.stderr.strip().removeprefix("kid: ")


def test_keygen_never_overwrites_a_file(tmp_path: Path) -> None:
    out = tmp_path / "live.pem"
    out.write_text("the key in use")
    result = CliRunner().invoke(main, ["keygen", "--algorithm", "Ed25519", "--out", str(out)])
    assert result.exit_code != 0
    assert "exists" in result.stderr
    assert out.read_text() == "the key in use"


def test_keygen_refuses_hs256() -> None:
    result = CliRunner().invoke(main, ["keygen", "--algorithm", "HS256"])
    assert result.exit_code == 2
    assert "Invalid value for '--algorithm'" in result.stderr


@pytest.mark.parametrize("algorithm", ASYMMETRIC)
async def test_a_generated_key_signs_the_tokens_of_a_running_service(
    database_url: str, algorithm: str
) -> None:
    """The whole loop: keygen, JWT_PRIVATE_KEY, log in, the token names the key's kid."""
    result = CliRunner().invoke(main, ["keygen", "--algorithm", algorithm])
    kid = result.stderr.strip().removeprefix("kid: ")
    configured = make_settings(database_url, jwt_algorithm=algorithm, jwt_private_key=result.stdout)
    app = create_app(configured)
    async with app.test_app() as test_app:
        await delete_all_rows(app.extensions["service"])
        client: Client = test_app.test_client()
        account = await sign_up(client, "alice")
        assert header_of(account.access_token) == {"alg": algorithm, "kid": kid, "typ": "at+jwt"}
        me = await client.get("/me", headers=account.headers)
        assert me.status_code == 200
        jwks = await (await client.get("/.well-known/jwks.json")).get_json()
        assert [key["kid"] for key in jwks["keys"]] == [kid]


def test_of_several_broken_rules_the_first_in_the_fixed_order_is_reported() -> None:
    """Rules that read several fields are reported one at a time, always in the same order,
    whichever group of settings holds them: production's missing secret before a private key
    that does not fit HS256, and the https rule before refused fallbacks."""
    key = ed25519.Ed25519PrivateKey.generate()
    both = refusal(app_env="production", secret_key=None, jwt_private_key=private_pem(key))
    assert "SECRET_KEY must be set in production" in both
    assert "JWT_PRIVATE_KEY is set but JWT_ALGORITHM is HS256" not in both
    message = refusal(
        app_env="production",
        public_base_url="http://auth.example.com",
        jwt_algorithm="Ed25519",
        jwt_private_key=private_pem(key),
        secret_key_fallbacks="old",
    )
    assert "PUBLIC_BASE_URL must be an https URL in production" in message
    assert "SECRET_KEY_FALLBACKS" not in message
