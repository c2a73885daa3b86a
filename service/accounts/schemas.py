"""Request and response models of the account routes: signup, ``/me``, the password, and email
(address change, verification, reset)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
)
from pydantic_core import PydanticCustomError

from service.schemas import STORABLE, EmailAddress, SafeStr
from service.security.passwords import (
    MAX_PASSWORD_LENGTH,
    MIN_PASSWORD_LENGTH,
    RULE_SENTENCES,
    password_problem,
)
from service.security.tokens.account import MAX_ACCOUNT_TOKEN_LENGTH

USERNAME_CHARACTERS = "may contain only the characters _ . @ + - besides ASCII letters and digits"


def _username_rule_in_words(value: object, handler: ValidatorFunctionWrapHandler) -> str:
    """The pattern's failure as the rule in words: people read it (the API, the command line),
    a regular expression they would have to decode. The schema still documents the pattern."""
    try:
        username: str = handler(value)
    except ValidationError as error:
        if any(item["type"] == "string_pattern_mismatch" for item in error.errors()):
            raise PydanticCustomError("username_characters", USERNAME_CHARACTERS) from None
        raise
    return username


Username = Annotated[
    str,
    StringConstraints(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9_.@+-]+$"),
    WrapValidator(_username_rule_in_words),
    STORABLE,
]


Password = Annotated[
    str,
    StringConstraints(min_length=MIN_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH),
    STORABLE,
]


PASSWORD_RULES = (
    f"{MIN_PASSWORD_LENGTH}-{MAX_PASSWORD_LENGTH} characters, all of them significant; "
    "not the username and not one of the 20,000 most common passwords."
)


def acceptable_password(password: str, username: str | None = None) -> str:
    problem = password_problem(password, username)
    if problem is not None:
        # ``detail`` is the rule's own sentence: the answer's ``detail`` when it is all that
        # failed (``service/errors.py``, ``validation_failed``).
        raise PydanticCustomError("password_policy", problem, {"detail": RULE_SENTENCES[problem]})
    return password


class SignupRequest(BaseModel):
    """A new account."""

    model_config = ConfigDict(extra="forbid")

    username: Username = Field(
        description="3-64 characters: ASCII letters, digits and `_ . @ + -`; unique ignoring case.",
        examples=["john"],
    )
    password: Password = Field(
        description=PASSWORD_RULES, examples=["correct horse battery staple"]
    )
    email: EmailAddress | None = Field(
        None,
        description="Optional. A verification link is mailed to it; only the account's owner "
        "sees it. Refused (422) when the service sends no email.",
    )

    @field_validator("password")
    @classmethod
    def _password_policy(cls, password: str, info: ValidationInfo) -> str:
        # ``username`` is declared first, so it is in ``info.data`` whenever it was valid.
        return acceptable_password(password, info.data.get("username"))


class UserOut(BaseModel):
    """An account, as its owner sees it."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    username: str
    created_at: datetime
    email: str | None = Field(None, description="The account's email address, if it has one.")
    email_verified: bool = Field(
        False, description="Whether the owner confirmed `email` with the link mailed to it."
    )


class PasswordChange(BaseModel):
    """The caller's current password and the one to replace it."""

    model_config = ConfigDict(extra="forbid")

    current_password: SafeStr = Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)
    new_password: Password = Field(
        description=PASSWORD_RULES, examples=["correct horse battery staple"]
    )

    @field_validator("new_password")
    @classmethod
    def _password_policy(cls, password: str) -> str:
        # The username rule needs the account; ``flows.change_password`` applies it.
        return acceptable_password(password)


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
