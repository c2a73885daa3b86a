"""Password hashing (libpass ``bcrypt_sha256``), run off the event loop, and the password policy.

``bcrypt_sha256`` pre-hashes the password with HMAC-SHA256 before bcrypt, so passwords longer
than bcrypt's 72-byte limit are never silently truncated: every character counts. Hashing is
slow on purpose (a good part of a second at the default 12 rounds), so it runs in a worker
thread (the ``bcrypt`` package releases the GIL) and never blocks other requests.

The policy (NIST SP 800-63B section 3.1.1.2): 8 to 1024 characters, not the username, and not
one of the 20,000 most common passwords. That list ships with the package
(``common-passwords.txt.gz``, from Django, BSD licence: see ``common-passwords.LICENSE``) and
is read once, on first use.
"""

from __future__ import annotations

import asyncio
import gzip
import secrets
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

from passlib.context import CryptContext

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024
COMMON_PASSWORDS_FILE = "common-passwords.txt.gz"

SAME_AS_USERNAME = "must not be the same as the username"
TOO_COMMON = "is one of the most commonly used passwords; choose another"
#: Each rule in a sentence of its own, for the top of an answer (a 422's ``detail``): the field
#: messages above finish "password ...", these say what is wrong to someone who reads only them.
RULE_SENTENCES = {
    SAME_AS_USERNAME: "The password must not be the same as the username.",
    TOO_COMMON: "The password is too common: choose another one (it is on the list of the "
    "20,000 most common passwords).",
}


@cache
def common_passwords() -> frozenset[str]:
    """The shipped list of common passwords, lower-cased (~20,000 entries, read once)."""
    data = resources.files("service.security").joinpath(COMMON_PASSWORDS_FILE).read_bytes()
    lines = gzip.decompress(data).decode("utf-8").splitlines()
    return frozenset(line.strip().lower() for line in lines if line.strip())


def is_common(password: str) -> bool:
    """Whether ``password`` is on the common list, ignoring case and surrounding spaces."""
    return password.strip().lower() in common_passwords()


def is_username(password: str, username: str) -> bool:
    """Whether ``password`` is the username in any letter case."""
    return password.casefold() == username.casefold()


def password_problem(password: str, username: str | None = None) -> str | None:
    """Why ``password`` is refused (a message for the ``password`` field), or None if it is fine.

    Length is checked by the schemas; this adds the rules that need the username or the list.
    """
    if username is not None and is_username(password, username):
        return SAME_AS_USERNAME
    if is_common(password):
        return TOO_COMMON
    return None


@dataclass(frozen=True, slots=True)
class Verification:
    """The outcome of checking a password; ``new_hash`` is set when the stored hash is outdated."""

    ok: bool
    new_hash: str | None = None


@dataclass
class PasswordHasher:
    """Hash and verify passwords at the configured bcrypt cost."""

    rounds: int
    _context: CryptContext = field(init=False, repr=False)
    _dummy_hash: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # New hashes use ``rounds``; only hashes below it are re-hashed at login. A stronger
        # hash is kept: during a rolling deploy that lowers the cost, instances would otherwise
        # rewrite each other's hashes back and forth.
        self._context = CryptContext(
            schemes=["bcrypt_sha256"],
            bcrypt_sha256__default_rounds=self.rounds,
            bcrypt_sha256__min_rounds=self.rounds,
        )
        # Made at start-up, at the configured cost, so every dummy check costs what a real one does.
        self._dummy_hash = self._context.hash(secrets.token_urlsafe(16))

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._context.hash, password)

    async def verify(self, password: str, stored_hash: str) -> Verification:
        """Check ``password``; when the hash used fewer rounds than configured, re-hash it."""
        ok, new_hash = await asyncio.to_thread(
            self._context.verify_and_update, password, stored_hash
        )
        return Verification(ok=bool(ok), new_hash=new_hash if ok else None)

    async def verify_nothing(self, password: str) -> None:
        """Spend one verification's time for a username that does not exist.

        Without it, a login for an unknown user would answer a bcrypt check faster than a wrong
        password, telling an attacker which usernames exist.
        """
        await asyncio.to_thread(self._context.verify, password, self._dummy_hash)
