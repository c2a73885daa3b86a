"""Rules more than one group of settings applies: what makes a secret weak, and which URLs are
safe to send secrets to."""

from __future__ import annotations

from urllib.parse import urlsplit

#: A secret shorter than this is refused in production (HS256 wants >= 256 bits, RFC 7518 3.2).
MIN_SECRET_LENGTH = 32
#: Values people paste from examples; never accepted as a production secret.
PLACEHOLDER_SECRETS = {"changeme", "change-me", "secret", "your-secret-key", "replace-me"}
#: Hosts that never leave the machine: plain http to them is no exposure.
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
#: Words of example values ("change-me-to-something-random..."); a secret containing one is refused.
PLACEHOLDER_WORDS = (
    "changeme",
    "change-me",
    "change_me",
    "replace-me",
    "replace_me",
    "your-secret",
)


def secure_url(value: str) -> bool:
    """An https URL, or one to this machine (a local test of the production set-up)."""
    parts = urlsplit(value)
    return parts.scheme == "https" or parts.hostname in LOOPBACK_HOSTS


def refuse_weak_secret(name: str, secret: str) -> None:
    """``ValueError`` naming ``name`` if ``secret`` is a placeholder or too short or plain."""
    lowered = secret.lower()
    if lowered in PLACEHOLDER_SECRETS or any(word in lowered for word in PLACEHOLDER_WORDS):
        raise ValueError(f"{name} is a placeholder value; generate a random one")
    if len(secret) < MIN_SECRET_LENGTH or len(set(secret)) < 10:
        raise ValueError(
            f"{name} is too weak: use at least {MIN_SECRET_LENGTH} random characters "
            '(python -c "import secrets; print(secrets.token_urlsafe(48))")'
        )
