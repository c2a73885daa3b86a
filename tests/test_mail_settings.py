"""Email settings: SMTP_URL forms, EMAIL_ENABLED's resolution, what production refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.config import ConfigurationError, Settings, load_settings
from service.config.smtp_url import SmtpServer, parse_smtp_url
from tests.helpers import TEST_MFA_KEY

STRONG_SECRET = "Zq8v3N1xK7pW2mR9tY4bL6cH0dF5gJ-aQeUiOs_"
PRODUCTION_MAIL = {
    "SMTP_URL": "smtps://mailer:p%40ss@smtp.example:465",
    "PUBLIC_BASE_URL": "https://api.example",
    "MAIL_FROM": "Service <noreply@api.example>",
}


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No service variables from the outer environment and no config file."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("CONFIG_DIR", str(tmp_path))
    return monkeypatch


def loaded(environment: pytest.MonkeyPatch, **values: str) -> Settings:
    for name, value in values.items():
        environment.setenv(name, value)
    return load_settings()


def production(environment: pytest.MonkeyPatch, **values: str) -> Settings:
    return loaded(
        environment,
        APP_ENV="production",
        SECRET_KEY=STRONG_SECRET,
        MFA_ENCRYPTION_KEY=TEST_MFA_KEY,
        DATABASE_URL="postgresql://db.invalid/service",
        **values,
    )


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://smtp.example", SmtpServer("smtp.example", 587, "starttls")),
        (
            "smtp://u%40x:p%3Aa%2Fss@smtp.example:2525",
            SmtpServer("smtp.example", 2525, "starttls", "u@x", "p:a/ss"),
        ),
        ("smtps://u:p@smtp.example", SmtpServer("smtp.example", 465, "tls", "u", "p")),
        ("SMTPS://smtp.example:1465/", SmtpServer("smtp.example", 1465, "tls")),
        ("smtp+plain://127.0.0.1:8025", SmtpServer("127.0.0.1", 8025, "none")),
        ("smtp+plain://[::1]", SmtpServer("::1", 25, "none")),
        ("smtp://user@smtp.example", SmtpServer("smtp.example", 587, "starttls", "user")),
    ],
)
def test_smtp_url_forms(url: str, expected: SmtpServer) -> None:
    assert parse_smtp_url(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://smtp.example", "use smtp://"),
        ("smtp://", "no host"),
        ("smtp://u:secret@smtp.example:99999", "port"),
        ("smtp://u:secret@smtp.example:x", "port"),
        ("smtp://u:secret@smtp.example/path", "path"),
        ("smtp://u:secret@smtp.example?tls=no", "query"),
        ("smtp://:secret@smtp.example", "no user"),
    ],
)
def test_a_bad_smtp_url_is_named_without_its_password(
    environment: pytest.MonkeyPatch, url: str, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        loaded(environment, SMTP_URL=url)
    assert "SMTP_URL" in str(caught.value)
    assert "secret" not in str(caught.value)


def test_the_smtp_password_never_shows_in_a_repr(environment: pytest.MonkeyPatch) -> None:
    settings = loaded(environment, SMTP_URL="smtp://u:hunter2@smtp.example")
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in repr(parse_smtp_url("smtp://u:hunter2@smtp.example"))


@pytest.mark.parametrize(
    ("values", "enabled"),
    [
        ({}, True),  # development: emails go to the log
        ({"APP_ENV": "testing"}, True),
        ({"EMAIL_ENABLED": "false"}, False),
        ({"EMAIL_ENABLED": "AUTO", "SMTP_URL": "smtp://smtp.example"}, True),
    ],
)
def test_email_enabled_resolves_outside_production(
    environment: pytest.MonkeyPatch, values: dict[str, str], enabled: bool
) -> None:
    assert loaded(environment, **values).email_enabled is enabled


def test_email_is_off_in_production_without_an_smtp_server(
    environment: pytest.MonkeyPatch,
) -> None:
    assert production(environment).email_enabled is False
    assert production(environment, **PRODUCTION_MAIL).email_enabled is True
    assert production(environment, **PRODUCTION_MAIL, EMAIL_ENABLED="false").email_enabled is False


def test_email_on_in_production_without_smtp_url_is_a_start_up_error(
    environment: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ConfigurationError, match="EMAIL_ENABLED is on in production but SMTP_URL"):
        production(environment, EMAIL_ENABLED="true")


def test_production_email_links_must_be_https(environment: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError, match="PUBLIC_BASE_URL must be the service's https"):
        production(environment, **{**PRODUCTION_MAIL, "PUBLIC_BASE_URL": "http://api.example"})


def test_production_mail_needs_a_real_sender_domain(environment: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError, match="MAIL_FROM must be an address at your domain"):
        production(environment, **{**PRODUCTION_MAIL, "MAIL_FROM": "noreply@localhost"})


def test_production_refuses_an_smtp_password_in_clear_text(
    environment: pytest.MonkeyPatch,
) -> None:
    url = "smtp+plain://u:secret@relay.example:25"
    with pytest.raises(ConfigurationError, match="clear text") as caught:
        production(environment, **{**PRODUCTION_MAIL, "SMTP_URL": url})
    assert "secret" not in str(caught.value)
    # A relay on the same host without a login is fine.
    assert production(environment, **{**PRODUCTION_MAIL, "SMTP_URL": "smtp+plain://localhost"})


@pytest.mark.parametrize(
    "value", ["a@example.com, b@example.com", "x <a@example.com>\nBcc: b@example.com", "nobody"]
)
def test_mail_from_is_one_mailbox(environment: pytest.MonkeyPatch, value: str) -> None:
    with pytest.raises(ConfigurationError, match=r"MAIL_FROM: (write one address|an address may)"):
        loaded(environment, MAIL_FROM=value)


@pytest.mark.parametrize("value", ["api.example", "ftp://api.example", "https://a.example/?x=1"])
def test_public_base_url_is_an_absolute_http_url(
    environment: pytest.MonkeyPatch, value: str
) -> None:
    with pytest.raises(ConfigurationError, match="PUBLIC_BASE_URL"):
        loaded(environment, PUBLIC_BASE_URL=value)


def test_public_base_url_loses_its_trailing_slash(environment: pytest.MonkeyPatch) -> None:
    assert loaded(environment, PUBLIC_BASE_URL="https://a.example/v1/").public_base_url == (
        "https://a.example/v1"
    )
