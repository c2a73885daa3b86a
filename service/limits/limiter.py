"""Brute-force protection: failed-password limits per username, per known device and per client
address, and a request limit on the endpoints that take credentials.

Both kinds of limit keep their counts in the app's one ``LimitStore``: in process memory by
default, in Redis when ``REDIS_URL`` is set, so that several instances count together. Nothing
here reads a request: callers hand in the account and the client address.

- **Failure limits.** A password check runs inside ``password_attempt``, which first reserves
  one attempt on the counter of the username (in its case-folded key form) and on that of the
  client address. While a counter is full (``LOGIN_FAILURES_PER_USERNAME`` or
  ``LOGIN_FAILURES_PER_ADDRESS`` failures within ``LOGIN_FAILURE_WINDOW`` seconds of the first)
  the attempt is refused with 429 and ``Retry-After`` before any password is checked, so even
  the right password is refused. A wrong password keeps the reservation; a success gives it
  back. Reserving before checking means a burst of parallel guesses cannot slip past the count.
  A username is counted whether or not such an account exists: a 429 tells nothing about which
  usernames are real.
- **Known devices.** A caller that has proved this account's password before (a verified
  device credential, or the session of an access token) names itself with ``device``; its
  attempts count on that device's own counter (``LOGIN_FAILURES_PER_DEVICE``) instead of the
  username's, so failures of strangers never lock it out, and its own failures never lock out
  anybody else (OWASP's device-cookie design). The address counter applies to every attempt.
- **Second-factor codes.** A TOTP or recovery code check runs inside ``password_attempt`` with
  ``factor="otp"``: the same sizes and window, but counters of its own, per account (the user
  id) or per known device, so wrong codes and wrong passwords never use up each other's
  allowance; the address counter is shared (guesses from one address count together).
- **Request limits.** ``admit_request`` lets one client address send bursts of
  ``AUTH_REQUESTS_PER_MINUTE`` requests to each credential endpoint, then that many a minute.
- **Mail limits.** ``admit_mail`` lets each subject cause ``EMAIL_REQUESTS_PER_HOUR``
  messages of one kind an hour (bursts of that many), so nobody can flood a mailbox or make
  the service a spam cannon; ``mail_allowed`` counts the same way but answers whether instead
  of raising, for messages that are not the request's answer. Subjects punish the sender of
  requests, not the owner of an address: an anonymous request counts on its email address
  *together with* its client network (and a reset request on the network too), an account's
  own requests on the account. The callers decide (``service.accounts``); an email address
  is counted whether or not an account has it, so a 429 tells nothing about which addresses
  are known.

When ``REDIS_URL`` is set but Redis does not answer, these checks answer 503 with
``Retry-After`` (fail closed): whoever can make Redis unreachable must not gain unlimited
password guesses.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Literal

from service.errors import InvalidGrant, TooManyRequests
from service.limits.stores import LimitStore, MemoryLimitStore, Quota, RedisLimitStore
from service.security.events import security_event
from service.settings import Settings

#: IPv6 clients are counted by network: one host usually holds a whole /64.
IPV6_PREFIX = 64
#: The request limit's period, seconds.
REQUEST_PERIOD = 60.0
#: The mail limit's period, seconds.
MAIL_PERIOD = 3600.0

#: What a limited check is of: a password, or a second-factor code (TOTP or recovery code).
Factor = Literal["password", "otp"]

FAILED_PASSWORDS = "Too many failed password attempts; try again after the Retry-After delay."
FAILED_CODES = "Too many wrong codes; try again after the Retry-After delay."
TOO_MANY_REQUESTS = "Too many requests; try again after the Retry-After delay."
TOO_MANY_MESSAGES = "Too many messages asked for; try again after the Retry-After delay."


@dataclass(frozen=True)
class Limits:
    """The brute-force limits of one app: its settings and its store."""

    settings: Settings
    store: LimitStore

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        store: LimitStore = (
            RedisLimitStore(settings.redis_url, settings.rate_limit_key_prefix)
            if settings.redis_url
            else MemoryLimitStore()
        )
        return cls(settings, store)

    def quotas(
        self,
        account: str,
        address: str | None,
        device: str | None = None,
        factor: Factor = "password",
    ) -> list[Quota]:
        """The counters a check of ``account``'s ``factor`` is counted on: the account's, or
        the ``device``'s if one is named; and the ``address``'s if given."""
        settings = self.settings
        window = settings.login_failure_window
        prefix = "fail:" if factor == "password" else "fail:otp:"
        if device is None:
            first = Quota(
                "username" if factor == "password" else "otp_account",
                f"{prefix}user:{account_digest(account)}",
                settings.login_failures_per_username,
                window,
            )
        else:
            first = Quota(
                "device" if factor == "password" else "otp_device",
                f"{prefix}device:{account_digest(device)}",
                settings.login_failures_per_device,
                window,
            )
        quotas = [first]
        if address is not None:
            quotas.append(
                Quota(
                    "address",
                    f"fail:addr:{address_key(address)}",
                    settings.login_failures_per_address,
                    window,
                )
            )
        return quotas

    @asynccontextmanager
    async def password_attempt(
        self,
        account: str,
        *,
        address: str | None,
        device: str | None = None,
        failure: type[Exception] = InvalidGrant,
        factor: Factor = "password",
    ) -> AsyncIterator[None]:
        """Run a password check under the failure limits.

        ``account`` is the username in its key form (``users.username_key``), whether or not
        such an account exists; ``address`` is the client's (None: not counted by address).
        ``device`` is the id of a client already known to hold this account's password (a
        verified device credential of this very account, or a session), or None for an
        unknown client; a known one is counted on its own counter instead of the username's.
        Raises ``TooManyRequests`` before the check while a limit holds. ``failure`` raised
        inside means a wrong password, which stays counted; success or any other error gives
        the attempt back. ``factor`` ``otp`` counts a second-factor code on its own counters
        (``account`` is then the user id).
        """
        quotas = self.quotas(account, address, device, factor)
        blocked = await self.store.reserve(quotas)
        if blocked is not None:
            quota, retry_after = blocked
            _report(
                quota.name,
                retry_after,
                account=account_digest(account),
                device=account_digest(device) if device is not None else None,
            )
            detail = FAILED_PASSWORDS if factor == "password" else FAILED_CODES
            raise TooManyRequests(detail, retry_after=retry_after)
        try:
            yield
        except failure:
            raise
        except Exception:
            await self.store.release(quotas)
            raise
        await self.store.release(quotas)

    async def admit_request(self, endpoint: str, address: str | None) -> None:
        """Count a request to a credential endpoint; ``TooManyRequests`` past the request limit."""
        count = self.settings.auth_requests_per_minute
        if not count:
            return
        key = f"req:{endpoint}:{address_key(address)}"
        retry_after = await self.store.admit(key, count, REQUEST_PERIOD)
        if retry_after is not None:
            _report("requests", retry_after, endpoint=endpoint)
            raise TooManyRequests(TOO_MANY_REQUESTS, retry_after=retry_after)

    async def admit_mail(self, kind: str, *subjects: str) -> None:
        """Count one message of ``kind`` for each subject (``account:<id>``, ``email:<key>``,
        ``address:<ip>``); ``TooManyRequests`` once one of them is over the hourly limit."""
        count = self.settings.email_requests_per_hour
        for subject in subjects:
            key = f"mail:{kind}:{account_digest(subject)}"
            retry_after = await self.store.admit(key, count, MAIL_PERIOD)
            if retry_after is not None:
                _report("mail", retry_after, endpoint=kind)
                raise TooManyRequests(TOO_MANY_MESSAGES, retry_after=retry_after)

    async def mail_allowed(self, kind: str, *subjects: str) -> bool:
        """Count one message of ``kind`` as ``admit_mail`` does; whether it may go, instead of
        a 429: for messages that follow a request without being its answer."""
        try:
            await self.admit_mail(kind, *subjects)
        except TooManyRequests:
            return False
        return True

    async def close(self) -> None:
        await self.store.close()


def address_key(address: str | None) -> str:
    """The client address as counted: IPv4 as is, IPv6 by its /64 network."""
    if not address:
        return "unknown"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, IPV6_PREFIX), strict=False))
    return str(ip)


def account_digest(account: str) -> str:
    """A short digest of a username key or a device id: keeps them out of Redis and the logs."""
    return hashlib.sha256(account.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _report(
    limit: str,
    retry_after: int,
    *,
    account: str | None = None,
    device: str | None = None,
    endpoint: str | None = None,
) -> None:
    security_event(
        "rate_limited",
        level=logging.WARNING,
        limit=limit,
        retry_after=retry_after,
        account=account,
        device=device,
        endpoint=endpoint,
    )
