"""The token keys that the settings name, loaded into a ``KeySet`` before anything serves.

``Settings`` holds the values as given (PEM text, file paths, secrets); this module reads the
files, parses the PEM blocks through ``service.security.keys`` and checks that each key fits
``JWT_ALGORITHM``. A key that cannot be used is a ``ConfigurationError`` naming the variable,
never showing key material.

Without ``SECRET_KEY``, development signs with a secret generated once and kept in
``instance/secret_key`` (so tokens survive a restart of the development server); testing signs
with a secret that lives as long as the process.

The key that encrypts TOTP secrets at rest (``MFA_ENCRYPTION_KEY``) is loaded here too, with
the same fallbacks: ``instance/mfa_key`` in development, a per-process key in testing;
production refuses to start without one (``Settings``).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path

from pydantic import SecretStr

from service.config.loading import ConfigurationError
from service.config.paths import instance_dir
from service.config.settings import Settings
from service.security import keys
from service.security.secret_box import decode_key, new_key

#: Testing without SECRET_KEY: a secret that lives as long as the process.
_PROCESS_SECRET = secrets.token_urlsafe(48)
#: Testing without MFA_ENCRYPTION_KEY: a key that lives as long as the process.
_PROCESS_MFA_KEY = new_key()


def load_key_set(settings: Settings) -> keys.KeySet:
    """The token keys: the one that signs first, then those that only verify."""
    if settings.jwt_algorithm == "HS256":
        fallbacks = [secret.get_secret_value() for secret in settings.secret_key_fallbacks]
        return keys.hmac_key_set(signing_secret(settings), fallbacks)
    return _asymmetric_key_set(settings, settings.jwt_algorithm)


def signing_secret(settings: Settings) -> str:
    """The HMAC secret; development and testing fall back to a generated one."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value()
    if settings.app_env == "development":
        return _development_secret()
    return _PROCESS_SECRET


def mfa_encryption_key(settings: Settings) -> bytes:
    """The AES key of the TOTP secrets; development and testing fall back to a generated one."""
    if settings.mfa_encryption_key is not None:
        return decode_key(settings.mfa_encryption_key.get_secret_value())
    if settings.app_env == "development":
        try:
            return decode_key(_instance_secret("mfa_key", new_key))
        except ValueError as error:
            raise ConfigurationError(f"{instance_dir() / 'mfa_key'}: {error}") from None
    return decode_key(_PROCESS_MFA_KEY)


def _asymmetric_key_set(settings: Settings, algorithm: keys.AsymmetricAlgorithm) -> keys.KeySet:
    source, text = _pem_setting(
        "JWT_PRIVATE_KEY", settings.jwt_private_key, settings.jwt_private_key_file
    )
    if text is None:  # Settings refuse this already; kept so the rule holds under ``python -O``
        raise ConfigurationError(f"JWT_ALGORITHM={algorithm} needs a private key")
    try:
        blocks = keys.pem_blocks(text)
        if len(blocks) != 1:
            raise keys.KeyConfigError(
                f"holds {len(blocks)} PEM blocks, give exactly one: the signing key "
                "(keys that only verify go in JWT_VERIFY_KEYS)"
            )
        signing = keys.load_private_key(blocks[0], algorithm)
    except keys.KeyConfigError as error:
        raise ConfigurationError(f"{source}: {error}") from None
    source, text = _pem_setting(
        "JWT_VERIFY_KEYS", settings.jwt_verify_keys, settings.jwt_verify_keys_file
    )
    try:
        verify_only = [
            keys.load_public_key(block, algorithm) for block in keys.pem_blocks(text or "")
        ]
    except keys.KeyConfigError as error:
        raise ConfigurationError(f"{source}: {error}") from None
    return keys.asymmetric_key_set(algorithm, signing, verify_only)


def _pem_setting(name: str, value: SecretStr | None, path: Path | None) -> tuple[str, str | None]:
    """Where the PEM text of setting ``name`` came from, and the text (None if unset)."""
    if value is not None:
        return name, value.get_secret_value()
    if path is None:
        return name, None
    try:
        return f"{name}_FILE ({path})", path.read_text(encoding="ascii")
    except OSError as error:
        raise ConfigurationError(f"{name}_FILE: cannot read {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigurationError(f"{name}_FILE: {path} is not a PEM text file") from None


def _development_secret() -> str:
    """Generate the development secret once and keep it in ``instance/secret_key``."""
    return _instance_secret("secret_key", lambda: secrets.token_urlsafe(48))


def _instance_secret(name: str, generate: Callable[[], str]) -> str:
    """The secret in ``instance/<name>``, generated by ``generate`` the first time.

    The file is written aside and hard-linked into place, which fails if it exists: several
    Hypercorn workers starting at once all end up reading the one complete secret.
    """
    path = instance_dir() / name
    if path.is_file():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{name}.{os.getpid()}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(generate())
    try:
        os.link(draft, path)
    except FileExistsError:
        pass
    finally:
        draft.unlink()
    return path.read_text().strip()
