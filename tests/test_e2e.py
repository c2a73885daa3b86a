"""End to end: the Procfile's release and web commands, then the seed README's flow over HTTP.

The server is a real Hypercorn process with two workers and production settings, on a fresh
database of each backend that only the release command has migrated. The test walks what a
Postman user of the seed does (signup, form login, item CRUD, refresh), checks that a spent
refresh token is refused, and stops the server as Heroku does (SIGTERM).
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from harness.live_server import TRACEBACK, procfile_commands, start_live_server

pytestmark = pytest.mark.e2e

PROBLEM_JSON = "application/problem+json"


def test_procfile_declares_release_and_web() -> None:
    commands = procfile_commands()
    assert commands["release"] == "service migrate"
    assert "--host 0.0.0.0 " in commands["web"]  # on PORT, which ``service serve`` reads
    assert "WEB_CONCURRENCY" in commands["web"]


def test_seed_readme_flow_against_the_procfile_server(
    empty_database_url: str, tmp_path: Path
) -> None:
    with start_live_server(empty_database_url, tmp_path, check_output=False) as server:
        with server.client() as http:
            walk_the_seed_flow(http)
            response = http.get("/healthz", headers={"X-Request-ID": "e2e-trace-42"})
            assert response.headers["X-Request-ID"] == "e2e-trace-42"
        status = server.stop()
    output = server.output()
    assert status == 0, f"the server did not exit cleanly on SIGTERM:\n{output}"
    assert TRACEBACK not in output, output
    assert "e2e-trace-42" in output, "the request id is on the access log line"
    assert "s3cret-passw0rd" not in output, "passwords are never logged"


def walk_the_seed_flow(http: httpx.Client) -> None:
    # Step 1: signup (JSON)
    response = http.post("/signup", json={"username": "john", "password": "s3cret-passw0rd"})
    assert response.status_code == 201, response.text
    assert response.json()["username"] == "john"
    assert response.headers["Location"]
    taken = http.post("/signup", json={"username": "JOHN", "password": "s3cret-passw0rd"})
    assert taken.status_code == 409
    assert taken.headers["Content-Type"] == PROBLEM_JSON

    # Step 2: login with form fields, as Postman sends them
    response = http.post("/login", data={"username": "john", "password": "s3cret-passw0rd"})
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"].startswith("no-store")
    tokens = response.json()
    assert tokens["token_type"] == "bearer"
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}

    wrong = http.post("/login", data={"username": "john", "password": "wrong-password"})
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_grant"

    # Step 3: CRUD with the bearer token (the seed's trailing-slash path for create)
    assert http.get("/items").status_code == 401
    response = http.post(
        "/items/", json={"name": "Book", "description": "A nice book"}, headers=auth
    )
    assert response.status_code == 201, response.text
    item = response.json()
    assert response.headers["Location"] == f"/items/{item['id']}"

    response = http.get(f"/items/{item['id']}", headers=auth)
    assert response.status_code == 200
    assert response.json() == item
    etag = response.headers["ETag"]

    response = http.put(
        f"/items/{item['id']}",
        json={"name": "Updated Book", "description": "Updated description"},
        headers={**auth, "If-Match": etag},
    )
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "Updated Book"
    stale = http.put(
        f"/items/{item['id']}", json={"name": "Lost"}, headers={**auth, "If-Match": etag}
    )
    assert stale.status_code == 412

    page = http.get("/items", headers=auth).json()
    assert [listed["id"] for listed in page["items"]] == [item["id"]]
    assert page["next_cursor"] is None

    assert http.delete(f"/items/{item['id']}", headers=auth).status_code == 204
    gone = http.get(f"/items/{item['id']}", headers=auth)
    assert gone.status_code == 404
    assert gone.headers["Content-Type"] == PROBLEM_JSON

    # Refresh: a new pair; the presented refresh token is spent
    response = http.post("/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert response.status_code == 200, response.text
    renewed = response.json()
    renewed_auth = {"Authorization": f"Bearer {renewed['access_token']}"}
    assert http.get("/items", headers=renewed_auth).status_code == 200

    # Presented again within REFRESH_REUSE_INTERVAL, it gets the same successor again
    repeated = http.post("/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert repeated.status_code == 200, repeated.text
    assert repeated.json()["refresh_token"] == renewed["refresh_token"]

    # Once the successor is spent too, the first token is two rotations back: presenting it
    # is refused and ends the session (RFC 9700 4.14)
    newest = http.post("/refresh", json={"refresh_token": renewed["refresh_token"]})
    assert newest.status_code == 200, newest.text
    renewed_auth = {"Authorization": f"Bearer {newest.json()['access_token']}"}
    reused = http.post("/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert reused.status_code == 400
    assert reused.headers["Content-Type"] == PROBLEM_JSON
    assert reused.json()["error"] == "invalid_grant"
    revoked = http.get("/items", headers=renewed_auth)
    assert revoked.status_code == 401
    assert 'error="invalid_token"' in revoked.headers["WWW-Authenticate"]
