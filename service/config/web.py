"""HTTP settings: the port, the edge (body size, HTTP/2 cleartext, proxies, CORS), the public
address, and the OpenAPI document's title and description."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from service.config.environment import EnvironmentSettings
from service.security.discovery import is_absolute_base_url

#: An origin as browsers send it in the ``Origin`` header (RFC 6454 section 6.1).
_ORIGIN = re.compile(
    r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?|https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?"
)


class WebSettings(EnvironmentSettings):
    """``PORT``, ``MAX_BODY_BYTES``, ``HTTP2_CLEARTEXT``, ``TRUSTED_PROXY_HOPS``, ``CORS_ORIGINS``,
    ``PUBLIC_BASE_URL``, ``API_TITLE``, ``API_DESCRIPTION``."""

    port: int = Field(
        8000, ge=1, le=65_535, description="Port of `service serve`; production needs it set."
    )
    max_body_bytes: int = Field(
        64 * 1024, ge=1024, le=16 * 1024 * 1024, description="Larger request bodies get 413."
    )
    http2_cleartext: bool = Field(
        False,
        description="Serve HTTP/2 without TLS (prior knowledge or Upgrade: h2c); off, prior "
        "knowledge gets 505 and an h2c upgrade is served as HTTP/1.1: behind the router only "
        "HTTP/1.1 is spoken.",
    )
    trusted_proxy_hops: int = Field(
        0,
        ge=0,
        le=10,
        description="Proxies in front of the service that append to X-Forwarded-For; the "
        "client address is the entry that many from the right. 0 ignores the header (no "
        "proxy: a client could forge it); set 1 on Heroku (its router).",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Origins whose pages may call the API from a browser (CORS), "
        "comma-separated, each `scheme://host[:port]`, or `*` for any; none by default.",
    )
    public_base_url: str | None = Field(
        None,
        description="The absolute URL clients reach the service at (`https://api.example.com`, "
        "no query or fragment): the start of links in emails and of the endpoint URLs that "
        "/.well-known/oauth-authorization-server publishes. Unset: emails link to "
        "http://localhost:PORT outside production, and discovery uses JWT_ISSUER when that is "
        "an http(s) URL, else answers 404. https in production (required there when email is "
        "on), except on loopback. Its token endpoint URL is the `aud` of refresh tokens and "
        "device credentials: changing it ends every session.",
    )

    # The OpenAPI document's info (also the docs page's heading): the API as its readers know it.
    api_title: str = Field(
        "Accounts and Items API",
        min_length=1,
        max_length=100,
        pattern=r"^[^\r\n]+$",
        description="The title of the OpenAPI document (`info.title`) and of the /docs page; "
        "plain text on one line.",
    )
    api_description: str = Field(
        "Sign up, log in for a short-lived access token and a rotating refresh token, and keep "
        "your own items; admins also manage accounts under /admin. Click Authorize and enter a "
        "username and password (the OAuth2 password flow calls POST /login), then Try it out "
        "on any operation. Errors are application/problem+json (RFC 9457).",
        min_length=1,
        max_length=4000,
        description="The description of the OpenAPI document (`info.description`), shown under "
        "the title of the /docs page, which renders it as Markdown (CommonMark).",
    )

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("cors_origins")
    @classmethod
    def _exact_origins(cls, origins: list[str]) -> list[str]:
        """A browser sends ``Origin: https://host[:port]``, in lower case; nothing else matches."""
        for origin in origins:
            if origin != "*" and not _ORIGIN.fullmatch(origin):
                raise ValueError(
                    f"{origin!r} is not an origin: write scheme://host[:port], "
                    "without a path or a trailing slash"
                )
        return [origin.lower() for origin in origins]

    @field_validator("public_base_url", mode="before")
    @classmethod
    def _blank_base_url_is_unset(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip().rstrip("/")
            return value or None
        return value

    @field_validator("public_base_url")
    @classmethod
    def _absolute_base_url(cls, value: str | None) -> str | None:
        if value is not None and not is_absolute_base_url(value):
            raise ValueError(
                "write an absolute http(s) URL such as https://api.example.com, without "
                "user name, query or fragment"
            )
        return value

    @property
    def link_base(self) -> str:
        """Where links in emails start: ``PUBLIC_BASE_URL``, else (never in production with
        email on, see ``_email_ready_for_production``) this machine's development address."""
        return self.public_base_url or f"http://localhost:{self.port}"
