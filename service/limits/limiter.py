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
- **Second-factor codes.** A TOTP or recovery code check runs inside ``code_attempt``, on
  counters of the account alone, whatever device credential or session comes with it: one
  with the size and window of the username's, and a ceiling of ``CODE_FAILURE_CEILING`` wrong
  codes (NIST SP 800-63B section 5.2.2) that lasts ``CODE_CEILING_WINDOW``. Both are keyed by
  the account's credential state (its password and factor): only a new password or factor,
  which a guesser holding the password cannot make, starts them again. Wrong codes and wrong
  passwords never use up each other's allowance; the address counter is shared (guesses from
  one address count together).
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
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

from service.config import Settings
from service.errors import InvalidGrant, TooManyRequests
from service.limits.stores import LimitStore, MemoryLimitStore, Quota, RedisLimitStore
from service.security.events import security_event

#: IPv6 clients are counted by network: one host usually holds a whole /64.
IPV6_PREFIX = 64
#: The request limit's period, seconds.
REQUEST_PERIOD = 60.0
#: The mail limit's period, seconds.
MAIL_PERIOD = 3600.0

#: Wrong second-factor codes one account takes in one credential state, at most: the ceiling of
#: NIST SP 800-63B section 5.2.2 on failed attempts per account, which no number of devices,
#: addresses or windows multiplies.
CODE_FAILURE_CEILING = 100
#: Seconds the ceiling's count lasts from its first failure (a stored counter needs an end).
CODE_CEILING_WINDOW = 365 * 24 * 3600

FAILED_PASSWORDS = "Too many failed password attempts; try again after the Retry-After delay."
FAILED_CODES = "Too many wrong codes; try again after the Retry-After delay."
FAILED_CODES_CEILING = (
    "Too many wrong codes for this account: a new password (or the operator) lifts this block."
)
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

    def quotas(self, account: str, address: str | None, device: str | None = None) -> list[Quota]:
        """The counters a password check of ``account`` is counted on: the account's, or the
        ``device``'s if one is named; and the ``address``'s if given."""
        settings = self.settings
        window = settings.login_failure_window
        if device is None:
            first = Quota(
                "username",
                f"fail:user:{account_digest(account)}",
                settings.login_failures_per_username,
                window,
            )
        else:
            first = Quota(
                "device",
                f"fail:device:{account_digest(device)}",
                settings.login_failures_per_device,
                window,
            )
        return [first, *self._address_quota(address)]

    def code_quotas(self, account: str, state: str, address: str | None) -> list[Quota]:
        """The counters a second-factor code check of ``account`` (the user id) is counted on:
        the ceiling and the window of the account in its credential ``state`` (a digest of its
        password and factor), and the ``address``'s if given. No device is asked for: a
        credential or a session must not buy a guesser more codes."""
        settings = self.settings
        counted = account_digest(f"{account}:{state}")
        return [
            Quota(
                "otp_ceiling",
                f"fail:otp:ceiling:{counted}",
                CODE_FAILURE_CEILING,
                CODE_CEILING_WINDOW,
            ),
            Quota(
                "otp_account",
                f"fail:otp:user:{counted}",
                settings.login_failures_per_username,
                settings.login_failure_window,
            ),
            *self._address_quota(address),
        ]

    def _address_quota(self, address: str | None) -> list[Quota]:
        if address is None:
            return []
        settings = self.settings
        return [
            Quota(
                "address",
                f"fail:addr:{address_key(address)}",
                settings.login_failures_per_address,
                settings.login_failure_window,
            )
        ]

    def password_attempt(
        self,
        account: str,
        *,
        address: str | None,
        device: str | None = None,
        failure: type[Exception] = InvalidGrant,
    ) -> AbstractAsyncContextManager[None]:
        """Run a password check under the failure limits.

        ``account`` is the username in its key form (``accounts.queries.username_key``), whether
        or not such an account exists; ``address`` is the client's (None: not counted by address).
        ``device`` is the id of a client already known to hold this account's password (a
        verified device credential of this very account, or a session), or None for an
        unknown client; a known one is counted on its own counter instead of the username's.
        Raises ``TooManyRequests`` before the check while a limit holds. ``failure`` raised
        inside means a wrong password, which stays counted; success or any other error gives
        the attempt back.
        """
        quotas = self.quotas(account, address, device)
        return self._attempt(quotas, failure, FAILED_PASSWORDS, account=account, device=device)

    def code_attempt(
        self,
        account: str,
        state: str,
        *,
        address: str | None,
        failure: type[Exception] = InvalidGrant,
    ) -> AbstractAsyncContextManager[None]:
        """Run a second-factor code check (TOTP or recovery code) under the code limits, as
        ``password_attempt`` runs a password check. ``account`` is the user id and ``state``
        the ``password_binding`` of the account's password and factor."""
        quotas = self.code_quotas(account, state, address)
        return self._attempt(quotas, failure, FAILED_CODES, account=account)

    @asynccontextmanager
    async def _attempt(
        self,
        quotas: list[Quota],
        failure: type[Exception],
        detail: str,
        *,
        account: str,
        device: str | None = None,
    ) -> AsyncIterator[None]:
        """Reserve one attempt on every quota (``TooManyRequests`` with ``detail`` while one is
        full); keep it when ``failure`` is raised inside, give it back on success or any other
        error."""
        blocked = await self.store.reserve(quotas)
        if blocked is not None:
            quota, retry_after = blocked
            _report(
                quota.name,
                retry_after,
                account=account_digest(account),
                device=account_digest(device) if device is not None else None,
            )
            if quota.name == "otp_ceiling":
                detail = FAILED_CODES_CEILING
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
