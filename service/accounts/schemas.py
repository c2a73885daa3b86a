"""Request and response models of the email routes: address change, verification, reset."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from service.auth.schemas import PASSWORD_RULES, Password, acceptable_password
from service.schemas import EmailAddress, SafeStr
from service.security.passwords import MAX_PASSWORD_LENGTH
from service.security.tokens.account import MAX_ACCOUNT_TOKEN_LENGTH

FROM_THE_LINK = "The token from the link in the message (after `#token=`)."


class EmailChange(BaseModel):
    """The caller's new email address, and their current password to prove it is them."""

    model_config = ConfigDict(extra="forbid")

    email: EmailAddress
    current_password: SafeStr = Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)


class EmailVerification(BaseModel):
    """A verification token from the message sent to the address."""

    model_config = ConfigDict(extra="forbid")

    token: SafeStr = Field(
        min_length=1, max_length=MAX_ACCOUNT_TOKEN_LENGTH, description=FROM_THE_LINK
    )


class PasswordForgotten(BaseModel):
    """The address of the account whose password is forgotten."""

    model_config = ConfigDict(extra="forbid")

    email: EmailAddress


class PasswordReset(BaseModel):
    """A reset token from the message, and the new password."""

    model_config = ConfigDict(extra="forbid")

    token: SafeStr = Field(
        min_length=1, max_length=MAX_ACCOUNT_TOKEN_LENGTH, description=FROM_THE_LINK
    )
    new_password: Password = Field(
        description=PASSWORD_RULES, examples=["correct horse battery staple"]
    )

    @field_validator("new_password")
    @classmethod
    def _password_policy(cls, password: str) -> str:
        # The username rule needs the account; ``recovery.reset`` applies it.
        return acceptable_password(password)


class Accepted(BaseModel):
    """The request is taken; a message is on its way if there is somebody to send it to."""

    detail: str = Field(description="What happens next, the same words for every address.")
