"""Brute-force limits: failed-password quotas and credential request rates, and their stores."""

from service.limits.limiter import Limits, account_digest, address_key

__all__ = ["Limits", "account_digest", "address_key"]
