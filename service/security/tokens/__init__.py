"""The signers of the service's tokens, one module per kind, and the rules they share.

- ``session``: access tokens (``typ`` ``at+jwt``, the RFC 9068 JWT access-token profile) and
  refresh tokens (``refresh+jwt``), JWTs (RFC 7519) naming a user and a login session.
- ``user``: JWTs naming a user and nothing else, the common part of the next two.
- ``device``: device credentials (``device+jwt``), proof of an earlier login on a client.
- ``mfa``: the ``mfa_token`` (``mfa+jwt``) of a login waiting for its second factor.
- ``account``: one-time account tokens (email verification, password reset): opaque random
  values, never JWTs, stored only as their SHA-256 digest.
- ``audiences``: the ``aud`` each kind of JWT carries and which ones its verifier accepts.
- ``verification``: the one path every JWT is verified by (RFC 8725, the JWT best current
  practices: one algorithm, known keys, the expected ``typ``, every claim required).
- ``signing``: deterministic JWS signing (ES256 with the RFC 6979 nonce).

Every JWT kind is signed with the one key set (``service.security.keys``) and has its own
``typ`` (RFC 8725 section 3.11), so none is ever accepted as another.
"""
