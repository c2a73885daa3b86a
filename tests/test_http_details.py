"""Small HTTP correctness over a real Hypercorn process: bodiless answers (204, 304) carry no
media type (RFC 9110 section 8.3).

Over a socket, not Quart's test client: that client rebuilds each response with werkzeug's
``Response``, which adds its default ``Content-Type`` back, so it cannot see the difference.
"""

from __future__ import annotations

import pytest

from harness.live_server import LiveServer
from tests.session_helpers import bearer

pytestmark = pytest.mark.e2e


def test_no_204_or_304_carries_a_content_type(live_server: LiveServer) -> None:
    with live_server.client() as http:
        signup = {"username": "no_content_user", "password": "quiet-harbour-lantern-4"}
        assert http.post("/signup", json=signup).status_code == 201
        auth = bearer(http.post("/login", data=signup).json()["access_token"])
        created = http.post("/items", json={"name": "Book"}, headers=auth)
        item = f"/items/{created.json()['id']}"
        answers = {
            "GET item (304)": http.get(
                item, headers={**auth, "If-None-Match": created.headers["ETag"]}
            ),
            "DELETE item": http.delete(item, headers=auth),
            "POST /logout": http.post("/logout", headers=auth),
        }
    for name, response in answers.items():
        assert response.status_code in (204, 304), name
        assert "content-type" not in response.headers, name
        assert response.content == b"", name
