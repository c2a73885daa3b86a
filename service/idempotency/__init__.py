"""``Idempotency-Key`` (draft-ietf-httpapi-idempotency-key-header): creating POSTs, safely retried.

- ``guard``: the header's parsing, the request fingerprint and ``once``, which a creating
  handler runs its write in, so a retry gets the stored answer instead of a second creation.
- ``queries``: the ``idempotency_keys`` table: find a live key, claim one in the guarded write,
  store its answer, purge the expired.
- ``schemas``: the header as the OpenAPI document describes it.

A feature package: other features' routes (``/signup``, ``POST /items``) call ``once``.
"""
