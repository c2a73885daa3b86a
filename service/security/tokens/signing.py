"""Deterministic JWS signing: the same header and claims signed with the same key give the same
token, byte for byte, for every supported algorithm.

HS256 (HMAC), RS256 (RSASSA-PKCS1-v1_5) and Ed25519 (RFC 8032 section 5.1.6) are
deterministic by construction; ES256 is signed with the deterministic ECDSA nonce of RFC 6979
(``DeterministicES256``), which any ES256 verifier accepts. That lets a refresh rotation
reproduce the successor it handed out moments ago (``service.sessions``) from its stored
``jti`` and issue time, without a usable token ever being stored.
"""

from __future__ import annotations

from typing import Final

from cryptography.hazmat.primitives.asymmetric.ec import ECDSA
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from joserfc.jwa import ESAlgorithm, JWSAlgModel
from joserfc.jwk import ECKey
from joserfc.jws import JWSRegistry


class DeterministicES256(ESAlgorithm):
    """ES256 (ECDSA on P-256 with SHA-256, RFC 7518 section 3.4) with the RFC 6979 nonce.

    The nonce is derived from the key and the message instead of drawn at random, so one
    message always gets one signature, and a weak random number generator can never leak the
    key. Verifying is unchanged: a verifier cannot tell, and need not.
    """

    def __init__(self) -> None:
        super().__init__("ES256", "P-256", 256, recommended=True)

    def sign(self, msg: bytes, key: ECKey) -> bytes:
        der = key.get_op_key("sign").sign(msg, ECDSA(self.hash_alg(), deterministic_signing=True))
        r, s = decode_dss_signature(der)
        size = (key.curve_key_size + 7) // 8
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")


class DeterministicRegistry(JWSRegistry):
    """joserfc's algorithms, with ES256 signed deterministically (``DeterministicES256``)."""

    def get_alg(self, name: str) -> JWSAlgModel:
        """The algorithm ``name`` as joserfc has it (and allows it), but ES256 deterministic."""
        algorithm = super().get_alg(name)
        return _DETERMINISTIC_ES256 if name == "ES256" else algorithm


_DETERMINISTIC_ES256: Final = DeterministicES256()
