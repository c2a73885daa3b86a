"""Fuzzing every route's headers, query and body: whatever a client sends, never a 5xx.

Hypothesis draws requests for every rule of the app's URL map (each method, ids real, random
or garbage) with hostile header values (``Authorization``, ``Content-Type``, ``If-Match``,
``If-None-Match``, ``Origin``...), query strings and bodies (bytes, JSON of any shape and depth,
the fields our schemas know with values of any type, form fields). It drives the Quart test
client on both databases; a 5xx, or an error logged as unexpected, fails the run with the
request that caused it, shrunk. Schemathesis (``tests/test_schemathesis.py``) covers the
documented contract against a live server; this covers what no schema describes.

The run is bounded by ``EXAMPLES`` per backend (a few seconds each) and derandomized, so a
failure is reproducible; the limits are lifted so that the service's real work runs instead
of a 429. The user of half the examples is an admin, so the admin routes are fuzzed
behind their guard too.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from quart import Quart

from service import create_app
from service.admin import actions
from service.security.roles import Role
from service.services import services
from tests.helpers import delete_all_rows, make_settings, sign_up

EXAMPLES = 200
PASSWORD = "s3cret-passw0rd"
#: Values a careless or hostile client puts anywhere.
NASTY = [
    "",
    " ",
    "*",
    '"²"',
    '"' + "9" * 5000 + '"',
    f'"{2**31}"',
    'W/"1"',
    "null",
    "[" * 2000,
    "Bearer",
    "Bearer ",
    "Bearer a.b.c",
    "Bearer " + "A" * 5000,
    "Basic dXNlcjpwYXNz",
    "application/json; charset=latin-1",
    "multipart/form-data; boundary=",
    "multipart/form-data",
    "application/x-www-form-urlencoded",
    "text/plain",
    "\xff\xfe",
    "%00",
    "../../etc/passwd",
]
FIELDS = [
    "username",
    "password",
    "grant_type",
    "scope",
    "refresh_token",
    "current_password",
    "new_password",
    "name",
    "description",
    "is_active",
    "role",
    "mfa_token",
    "code",
    "recovery_code",
]
HEADERS = [
    "Authorization",
    "Content-Type",
    "If-Match",
    "If-None-Match",
    "Origin",
    "Access-Control-Request-Method",
    "Access-Control-Request-Headers",
    "X-Request-ID",
    "X-Forwarded-For",
    "Accept",
    "Accept-Encoding",
    "Cookie",
    "Range",
    "User-Agent",
]
#: Header values as Hypercorn hands them over: latin-1, no CR, LF or NUL.
header_text = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=60,
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=12,
)
known_fields = st.dictionaries(st.sampled_from(FIELDS), json_values | st.text(max_size=80))


def _json(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


#: JSON past the parser's own limits: nesting deeper than the recursion limit, long integers.
parser_limits = st.builds(
    lambda opener, depth: opener * depth,
    st.sampled_from([b"[", b'{"a":', b'{"name":[']),
    st.integers(900, 3000),
) | st.builds(lambda digits: b'{"name": ' + b"9" * digits + b"}", st.integers(4000, 6000))

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
#: (Content-Type, body): mostly a body of the type it claims, so the parsers behind run.
bodies = st.one_of(
    st.tuples(st.just(JSON), parser_limits),
    st.tuples(st.just(JSON), known_fields.map(_json)),
    st.tuples(st.just(JSON), json_values.map(_json) | st.sampled_from(NASTY).map(str.encode)),
    st.tuples(
        st.just(FORM),
        known_fields.map(
            lambda fields: "&".join(f"{key}={value}" for key, value in fields.items()).encode()
        ),
    ),
    st.tuples(
        st.none() | st.sampled_from(NASTY) | header_text,
        st.just(b"") | st.binary(max_size=200) | parser_limits | known_fields.map(_json),
    ),
)
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
PARAMETER = re.compile(r"<(?:\w+:)?(\w+)>")


def routes(app: Quart) -> list[tuple[str, str]]:
    """(method, rule) for every method of every rule of the app, HEAD and OPTIONS included."""
    return sorted(
        (method, rule.rule) for rule in app.url_map.iter_rules() for method in rule.methods or ()
    )


@pytest.fixture
async def fuzz_app(database_url: str) -> AsyncIterator[Quart]:
    application = create_app(
        make_settings(
            database_url,
            auth_requests_per_minute=0,
            login_failures_per_username=100_000,
            login_failures_per_address=100_000,
        )
    )
    async with application.test_app():
        await delete_all_rows(services(application))
        yield application


@pytest.fixture
def unexpected_errors(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.WARNING, logger="service")
    return caplog


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_no_request_gets_a_5xx(
    fuzz_app: Quart, unexpected_errors: pytest.LogCaptureFixture, data: st.DataObject
) -> None:
    client = fuzz_app.test_client()
    unexpected_errors.clear()  # one example's records only
    # A live user and item per example: earlier examples may have logged out or deleted theirs.
    account = await sign_up(client, f"fuzz{next(_users)}", PASSWORD)
    created = await client.post("/items", json={"name": "n"}, headers=account.headers)
    real_id = (await created.get_json())["id"]
    if data.draw(st.booleans(), label="admin"):  # so the admin routes get past their guard
        await actions.change_user(
            services(fuzz_app), actions.Actor("fuzz"), uuid.UUID(account.id), role=Role.ADMIN
        )

    every_route = routes(fuzz_app)
    with_body = [(method, rule) for method, rule in every_route if method in BODY_METHODS]
    # Two draws in three go to the routes that read a body: most of the code is behind them.
    method, rule = data.draw(
        st.sampled_from(with_body) | st.sampled_from(with_body) | st.sampled_from(every_route),
        label="route",
    )
    ids = (
        st.just(real_id)
        | st.sampled_from([real_id, account.id, str(uuid.uuid4())])
        | header_text.map(lambda text: quote(text, safe="") or "x")
    )
    path = PARAMETER.sub(lambda _: data.draw(ids, label="id"), rule)
    headers: dict[str, str] = data.draw(
        st.dictionaries(st.sampled_from(HEADERS), st.sampled_from(NASTY) | header_text),
        label="headers",
    )
    content_type, body = data.draw(bodies, label="body")
    if content_type is not None:
        headers["Content-Type"] = content_type
    if data.draw(st.booleans(), label="authenticated"):
        headers["Authorization"] = f"Bearer {account.access_token}"
    query = data.draw(
        st.dictionaries(st.sampled_from(["limit", "cursor", "q", "x"]), header_text),
        label="query",
    )

    send = getattr(client, method.lower())  # get, head, options, post, put, patch, delete
    response = await send(path, headers=headers, query_string=query, data=body)
    event(f"{method} {rule} {response.status_code}")
    assert response.status_code < 500, (method, path, response.status_code)
    logged = [record.getMessage() for record in unexpected_errors.records if record.exc_info]
    assert not logged, logged


_users = itertools.count()
