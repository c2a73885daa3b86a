"""The ``error_description`` of an OAuth 2.0 error answer (RFC 6749 section 5.2).

Every answer that carries an OAuth ``error`` code carries a description too, for the developer
reading it: OAuth clients show it beside the code (Authlib's ``OAuthError`` prints
``invalid_grant: <description>``), while many never read the problem+json ``detail``.

RFC 6749 section 5.2 limits the description to printable ASCII without ``"`` and ``\\``
(``%x20-21 / %x23-5B / %x5D-7E``), so that it fits a quoted parameter of a challenge such as
``WWW-Authenticate`` (RFC 6750 section 3). The service's ``detail`` sentences are written in
that alphabet already; ``error_description`` makes any text fit: letters lose their accents,
typographic quotes and dashes become their ASCII kin, a double quote an apostrophe, a
backslash a slash, other whitespace a space, and anything else ``?``.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

#: The characters RFC 6749 section 5.2 allows in ``error_description``.
ALLOWED: Final = re.compile(r"[\x20\x21\x23-\x5B\x5D-\x7E]+")

_ASCII_KIN: Final = str.maketrans(
    {
        '"': "'",
        "\\": "/",
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": "'",
        "\u201d": "'",
        "\u2013": "-",
        "\u2014": "-",
        "\u2212": "-",
    }
)


def error_description(text: str, *, fallback: str) -> str:
    """``text`` in the characters RFC 6749 allows; ``fallback`` (the error code) if nothing of
    it is left, since the description must not be empty."""
    described = []
    for character in unicodedata.normalize("NFKD", text.translate(_ASCII_KIN)):
        if ALLOWED.fullmatch(character):
            described.append(character)
        elif unicodedata.combining(character):
            continue  # the accent of a letter that NFKD took apart
        elif character.isspace():
            described.append(" ")
        else:
            described.append("?")
    return " ".join("".join(described).split()) or fallback
