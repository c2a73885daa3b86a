"""Run the service as production does: the Procfile's ``release:`` then ``web:`` command.

``start_live_server(database_url, log_dir)`` applies the migrations with the release command,
starts the web command (Hypercorn, ``WEB_CONCURRENCY`` workers) on a free port, waits until
``/readyz`` answers 200 and yields a ``LiveServer``. Leaving the block stops the server with
SIGTERM, as Heroku does, and fails if it did not exit cleanly or wrote a traceback.

End-to-end tests, schemathesis, newman and the browser test all talk to such a server over real
HTTP; ``conftest.py`` has the ``live_server`` fixture that shares one per backend.
"""

from __future__ import annotations

import base64
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from service.config import Settings

ROOT = Path(__file__).resolve().parent.parent
PROCFILE = ROOT / "Procfile"
#: What a server must never print: Python's traceback header.
TRACEBACK = "Traceback (most recent call last)"
READY_TIMEOUT = 60.0
RELEASE_TIMEOUT = 120.0
#: Hypercorn's graceful_timeout (config/hypercorn.toml) plus room for a slow machine.
STOP_TIMEOUT = 20.0


def procfile_commands(path: Path = PROCFILE) -> dict[str, str]:
    """The process types of a Procfile: ``{"web": "hypercorn ...", "release": "..."}``."""
    commands = {}
    for line in path.read_text().splitlines():
        name, separator, command = line.partition(":")
        if separator and name.strip() and not name.lstrip().startswith("#"):
            commands[name.strip()] = command.strip()
    return commands


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def server_environment(database_url: str, port: int, **overrides: str) -> dict[str, str]:
    """A production-like environment: this process's, minus every setting of the service.

    ``PATH`` starts with this interpreter's ``bin`` so the Procfile's ``hypercorn`` and
    ``service`` are the ones of the environment running the tests.
    """
    names = {name.upper() for name in Settings.model_fields} | {"CONFIG_DIR", "INSTANCE_DIR"}
    env = {name: value for name, value in os.environ.items() if name not in names}
    env.update(
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        PORT=str(port),
        WEB_CONCURRENCY="2",
        APP_ENV="production",
        SECRET_KEY=secrets.token_urlsafe(48),
        MFA_ENCRYPTION_KEY=base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        BCRYPT_ROUNDS="4",
        # Other test runs share the machine; at SCHED_IDLE they would starve the hashing threads.
        PASSWORD_HASH_PRIORITY="normal",  # noqa: S106 - a priority, not a password
        LOG_LEVEL="INFO",
        DATABASE_URL=database_url,
    )
    env.update(overrides)
    return env


@dataclass
class LiveServer:
    """A running ``web:`` process and where to reach it."""

    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str] = field(repr=False)

    def output(self) -> str:
        """Everything the server wrote to stdout and stderr so far."""
        return self.log_path.read_text(errors="replace")

    def client(self) -> httpx.Client:
        """An HTTP client for this server (close it, or use it in a ``with`` block)."""
        return httpx.Client(base_url=self.base_url, timeout=10.0)

    def stop(self) -> int:
        """SIGTERM, as Heroku sends at shutdown; the exit status, or an error if it hangs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(
                    f"the server ignored SIGTERM for {STOP_TIMEOUT}s:\n{self.output()}"
                ) from None
        return self.process.returncode

    def run_command(self, *args: str, input: str | None = None) -> str:
        """Run ``service ARGS`` on this server's database and settings, as an operator would in
        a one-off dyno; its output, or an error with that output."""
        result = subprocess.run(
            ["service", *args],
            input=input,
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=RELEASE_TIMEOUT,
            check=False,
        )
        output = result.stdout + result.stderr
        assert result.returncode == 0, f"service {args[0]} failed ({result.returncode}):\n{output}"
        return output

    def kill(self) -> None:
        """Kill a server still running, with its process group (the workers); for clean-up."""
        if self.process.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def run_release(env: dict[str, str], log_dir: Path) -> str:
    """Run the Procfile's ``release:`` command; its output, or an error with that output."""
    result = subprocess.run(
        ["bash", "-c", procfile_commands()["release"]],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=RELEASE_TIMEOUT,
        check=False,
    )
    output = result.stdout + result.stderr
    (log_dir / "release.log").write_text(output)
    assert result.returncode == 0, f"release command failed ({result.returncode}):\n{output}"
    assert TRACEBACK not in output, output
    return output


def _wait_until_ready(server: LiveServer) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    with httpx.Client(base_url=server.base_url, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise AssertionError(
                    f"the server exited with {server.process.returncode} before it was ready:\n"
                    f"{server.output()}"
                )
            with suppress(httpx.TransportError):
                if client.get("/readyz").status_code == 200:
                    return
            time.sleep(0.1)
    raise AssertionError(f"/readyz not 200 within {READY_TIMEOUT}s:\n{server.output()}")


def spawn_logged(
    command: list[str], *, cwd: Path, env: dict[str, str], log_path: Path
) -> subprocess.Popen[bytes]:
    """Start a server process in a session of its own, its output (both streams) in a file."""
    with log_path.open("wb") as log:
        return subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


@contextmanager
def start_live_server(
    database_url: str, log_dir: Path, *, check_output: bool = True, **env_overrides: str
) -> Iterator[LiveServer]:
    """Release, then serve ``database_url`` with the Procfile's web command until the block ends.

    On leaving, the server is stopped with SIGTERM; unless ``check_output`` is false, a server
    that did not exit 0 or that printed a traceback fails the test (or fixture) using it.
    ``env_overrides`` set or replace environment variables (``WEB_CONCURRENCY="1"``...); a
    ``PORT`` among them serves on that port instead of a free one (a restart at one address).
    """
    port = int(env_overrides.get("PORT") or free_port())
    env = server_environment(database_url, port, **env_overrides)
    run_release(env, log_dir)
    log_path = log_dir / "web.log"
    # ``exec`` so that SIGTERM reaches Hypercorn's master process itself.
    web = ["bash", "-c", f"exec {procfile_commands()['web']}"]
    process = spawn_logged(web, cwd=ROOT, env=env, log_path=log_path)
    server = LiveServer(f"http://127.0.0.1:{port}", process, log_path, env)
    try:
        _wait_until_ready(server)
        yield server
        status = server.stop()
    finally:
        server.kill()
    if check_output:
        output = server.output()
        assert status == 0, f"the server exited with {status} after SIGTERM:\n{output}"
        assert TRACEBACK not in output, f"the server wrote a traceback:\n{output}"
