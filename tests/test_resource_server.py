"""The example resource server beside the real service: offline JWKS verification, a key
rotation taken without a restart, and introspection refusing a revoked token at once.

Both run as real processes: the service via ``harness.live_server`` (the Procfile's commands,
ES256 keys), and two instances of ``examples/resource_server`` under Hypercorn: one verifies
offline only, the other also introspects every token. Then the service is restarted on the
same port with a new signing key and the old one verify-only (docs/keys.md, step 2), as a
deploy would, and the resource servers keep running.
"""

from __future__ import annotations

import base64
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.live_server import ROOT, LiveServer, free_port, spawn_logged, start_live_server
from tests.signing import claims_of, header_of, new_key, private_pem, public_pem, sign, thumbprint

pytestmark = pytest.mark.e2e

ALGORITHM = "ES256"
CLIENT_ID = "example-rs"
CLIENT_SECRET = "example-rs-secret-0123456789-abcdefghij"
PASSWORD = "rs-walkthrough-4815162342"
#: The resource servers may fetch the key set again this often when a kid is unknown.
REFETCH_INTERVAL = 2.0
HYPERCORN = Path(sys.executable).parent / "hypercorn"
READY_TIMEOUT = 30.0


@dataclass
class ResourceServer:
    base_url: str

    def whoami(self, token: str) -> httpx.Response:
        return httpx.get(
            f"{self.base_url}/whoami", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )

    def jwks_fetches(self) -> int:
        fetches: int = httpx.get(f"{self.base_url}/stats", timeout=10).json()["jwks_fetches"]
        return fetches


@contextmanager
def resource_server(
    log_dir: Path, service_url: str, *, introspect: bool
) -> Iterator[ResourceServer]:
    port = free_port()
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "RS_METADATA_URL": f"{service_url}/.well-known/oauth-authorization-server",
        "RS_ISSUER": service_url,
        "RS_AUDIENCE": "service-api",
        "RS_ALGORITHM": ALGORITHM,
        "RS_JWKS_REFETCH_INTERVAL": str(REFETCH_INTERVAL),
        "RS_INTROSPECT": "true" if introspect else "false",
        "RS_CLIENT_ID": CLIENT_ID,
        "RS_CLIENT_SECRET": CLIENT_SECRET,
    }
    command = [
        str(HYPERCORN),
        "examples.resource_server.app:create_app()",
        "--bind",
        f"127.0.0.1:{port}",
    ]
    name = "introspecting" if introspect else "offline"
    process = spawn_logged(command, cwd=ROOT, env=env, log_path=log_dir / f"rs-{name}.log")
    server = ResourceServer(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            assert process.poll() is None, (log_dir / f"rs-{name}.log").read_text()
            with suppress(httpx.TransportError):
                if httpx.get(f"{server.base_url}/healthz", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, "the resource server did not start"
            time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        process.wait(timeout=20)


@contextmanager
def service(database_url: str, log_dir: Path, port: int, **keys: str) -> Iterator[LiveServer]:
    log_dir.mkdir()
    with start_live_server(
        database_url,
        log_dir,
        PORT=str(port),
        JWT_ISSUER=f"http://127.0.0.1:{port}",
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        JWT_ALGORITHM=ALGORITHM,
        INTROSPECTION_CLIENTS=f"{CLIENT_ID}:{CLIENT_SECRET}",
        WEB_CONCURRENCY="1",
        **keys,  # type: ignore[arg-type]  # environment variables, never check_output
    ) as server:
        yield server


def log_in(server: LiveServer, username: str) -> dict[str, Any]:
    with server.client() as client:
        response = client.post("/login", data={"username": username, "password": PASSWORD})
        assert response.status_code == 200, response.text
        tokens: dict[str, Any] = response.json()
        return tokens


def test_the_resource_server_follows_a_key_rotation_and_a_revocation(
    empty_database_url: str, tmp_path: Path
) -> None:
    old_key, new_key_ = new_key(ALGORITHM), new_key(ALGORITHM)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    before = {"JWT_PRIVATE_KEY": private_pem(old_key)}  # type: ignore[arg-type]
    after = {
        "JWT_PRIVATE_KEY": private_pem(new_key_),  # type: ignore[arg-type]
        "JWT_VERIFY_KEYS": public_pem(old_key),  # type: ignore[arg-type]
    }
    with (
        resource_server(tmp_path, url, introspect=False) as offline,
        resource_server(tmp_path, url, introspect=True) as introspecting,
    ):
        with service(empty_database_url, tmp_path / "before", port, **before) as server:
            with server.client() as client:
                signup = client.post("/signup", json={"username": "rs-user", "password": PASSWORD})
                assert signup.status_code == 201, signup.text
            old_tokens = log_in(server, "rs-user")
            assert header_of(old_tokens["access_token"])["kid"] == thumbprint(old_key)
            for resource in (offline, introspecting):
                answer = resource.whoami(old_tokens["access_token"])
                assert answer.status_code == 200, answer.text
                assert answer.json()["sub"] == signup.json()["id"]
            fetched = offline.jwks_fetches()
            assert fetched == 1

        time.sleep(REFETCH_INTERVAL)  # the rotation is a deploy: never within the interval
        # Restarted with the new signing key; the resource servers keep running.
        with service(empty_database_url, tmp_path / "after", port, **after) as server:
            new_tokens = log_in(server, "rs-user")
            assert header_of(new_tokens["access_token"])["kid"] == thumbprint(new_key_)
            for resource in (offline, introspecting):
                assert resource.whoami(new_tokens["access_token"]).status_code == 200
                # The old key is still published, so its tokens keep working too.
                assert resource.whoami(old_tokens["access_token"]).status_code == 200
            assert offline.jwks_fetches() == fetched + 1, "one refetch for the new kid"

            # Forged tokens with unknown kids cannot make the resource server hammer the JWKS.
            claims = claims_of(new_tokens["access_token"])
            for number in range(5):
                header = {"alg": ALGORITHM, "kid": f"unknown-{number}", "typ": "at+jwt"}
                forged = sign(header, claims, new_key_, ALGORITHM)
                assert offline.whoami(forged).status_code == 401
            assert offline.jwks_fetches() <= fetched + 2

            # Revocation: the introspecting one refuses at once, the offline one until exp.
            with server.client() as client:
                revoked = client.post("/revoke", data={"token": new_tokens["refresh_token"]})
                assert revoked.status_code == 200
            assert introspecting.whoami(new_tokens["access_token"]).status_code == 401
            assert offline.whoami(new_tokens["access_token"]).status_code == 200


def forged_variants(token: str, key: Any) -> dict[str, str]:
    """Tokens signed with the real signing key that still must be refused."""
    header, claims = header_of(token), claims_of(token)
    now = int(time.time())
    variants = {
        "wrong issuer": (header, {**claims, "iss": "https://elsewhere.example"}),
        "wrong audience": (header, {**claims, "aud": "another-api"}),
        "expired": (header, {**claims, "exp": now - 600, "iat": now - 1200, "nbf": now - 1200}),
        "not yet valid": (header, {**claims, "nbf": now + 600}),
        "a refresh token": ({**header, "typ": "refresh+jwt"}, claims),
        "no typ": ({"alg": header["alg"], "kid": header["kid"]}, claims),
        "a jku header": ({**header, "jku": "https://evil.example/jwks"}, claims),
        "no exp": (header, {k: v for k, v in claims.items() if k != "exp"}),
    }
    signed = {name: sign(h, c, key, ALGORITHM) for name, (h, c) in variants.items()}
    none_header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"at+jwt"}').rstrip(b"=")
    signed["alg none"] = f"{none_header.decode()}.{token.split('.')[1]}."
    signed["HS256 with a public key"] = sign(
        {**header, "alg": "HS256"}, claims, public_pem(key).encode(), "HS256"
    )
    signed["broken signature"] = token[:-6] + (
        "AAAAAA" if not token.endswith("AAAAAA") else "BBBBBB"
    )
    return signed


def test_the_resource_server_checks_every_part_of_a_token(
    empty_database_url: str, tmp_path: Path
) -> None:
    key = new_key(ALGORITHM)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    keys = {"JWT_PRIVATE_KEY": private_pem(key)}  # type: ignore[arg-type]
    with (
        service(empty_database_url, tmp_path / "service", port, **keys) as server,
        resource_server(tmp_path, url, introspect=False) as offline,
    ):
        with server.client() as client:
            signup = client.post("/signup", json={"username": "rs-check", "password": PASSWORD})
            assert signup.status_code == 201
        tokens = log_in(server, "rs-check")
        assert offline.whoami(tokens["access_token"]).status_code == 200
        assert offline.whoami(tokens["refresh_token"]).status_code == 401
        assert offline.whoami(tokens["device_token"]).status_code == 401
        # Both are refused on their audience too, not only on typ: relabelled as access
        # tokens (which takes the signing key) they still fail (RFC 8725 section 3.12).
        access_header = header_of(tokens["access_token"])
        for name in ("refresh_token", "device_token"):
            assert claims_of(tokens[name])["aud"] == f"{url}/login", name
            relabelled = sign(access_header, claims_of(tokens[name]), key, ALGORITHM)
            assert offline.whoami(relabelled).status_code == 401, name
        for name, token in forged_variants(tokens["access_token"], key).items():
            answer = offline.whoami(token)
            assert answer.status_code == 401, name
            assert answer.headers["WWW-Authenticate"].startswith("Bearer "), name
        assert httpx.get(f"{offline.base_url}/whoami", timeout=10).status_code == 401
