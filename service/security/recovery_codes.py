"""Recovery codes: one-time codes that stand in for the authenticator app when it is lost.

Ten codes are made when the second factor is turned on and shown once; each works once. A
code is 120 random bits, written as 24 base32 characters in groups of four
(``abcd-efgh-ijkl-mnop-qrst-uvwx``); letter case, spaces and hyphens do not matter when one is
typed.

Only their SHA-256 is stored. bcrypt exists to slow down guessing of low-entropy secrets that
people choose; a random 120-bit code cannot be found from its hash by any amount of hashing
(2^120 tries), so a slow or salted hash would only cost CPU at every use. OWASP ASVS 5.0 V6.5
asks for a salted password hash only for lookup secrets under 112 bits of entropy and allows
a plain approved hash above. The plain digest also lets the database find the code with one
indexed lookup.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Final

COUNT: Final = 10
#: Random bytes per code: 120 bits (ASVS 5.0 V6.5: at least 112 for a plain hash), 24 base32
#: characters.
CODE_BYTES: Final = 15
GROUP: Final = 4


def new_codes(count: int = COUNT) -> list[str]:
    """``count`` new codes, as shown to the user."""
    return [
        _grouped(base64.b32encode(secrets.token_bytes(CODE_BYTES)).decode().lower())
        for _ in range(count)
    ]


def normalized(code: str) -> str:
    """The code as hashed: lower case, without spaces and hyphens."""
    return "".join(code.split()).replace("-", "").lower()


def digest(code: str) -> str:
    """The stored form of a code: SHA-256 of its normalized form, in hex."""
    return hashlib.sha256(normalized(code).encode("utf-8", "surrogatepass")).hexdigest()


def _grouped(characters: str) -> str:
    return "-".join(characters[i : i + GROUP] for i in range(0, len(characters), GROUP))
