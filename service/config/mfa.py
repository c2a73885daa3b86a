"""Second factor settings: the key that encrypts TOTP secrets, the issuer authenticator apps
show, and how long a login's ``mfa_token`` lasts."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from service.config.environment import EnvironmentSettings
from service.security.secret_box import decode_key


class MfaSettings(EnvironmentSettings):
    """``MFA_ENCRYPTION_KEY``, ``MFA_ISSUER``, ``MFA_TOKEN_TTL``."""

    mfa_encryption_key: SecretStr | None = Field(
        None,
        description="Key that encrypts the TOTP secrets in the database (AES-256-GCM): 32 "
        "random bytes in base64url (docs/mfa.md says how to make one). Required in production; "
        "development generates one into `instance/mfa_key`. Changing it disables every "
        "enrolled authenticator.",
    )
    mfa_issuer: str = Field(
        "service",
        min_length=1,
        max_length=64,
        description="The name authenticator apps show beside the account (the issuer of the "
        "`otpauth://` URI).",
    )
    mfa_token_ttl: int = Field(
        300,
        ge=30,
        le=900,
        description="Seconds the `mfa_token` of a password login stays valid for /login/mfa.",
    )

    @field_validator("mfa_encryption_key", mode="before")
    @classmethod
    def _empty_key_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("mfa_encryption_key")
    @classmethod
    def _mfa_key_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            decode_key(value.get_secret_value())
        return value
