"""The ``Idempotency-Key`` request header as the OpenAPI document describes it."""

from service.schemas import IdempotencyHeader

__all__ = ["IdempotencyHeader"]
