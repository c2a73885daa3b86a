"""Deployments that cannot lose data or split traffic, run as the platform runs them.

- Production without ``DATABASE_URL`` would keep every account in a SQLite file on the dyno's
  disk, wiped at the next restart: the release and the web process refuse to start.
- A port somebody else serves is refused for any worker count: with two workers Hypercorn
  alone would share it (``SO_REUSEPORT``) and two releases would split the traffic.
- Production without ``PORT`` is one line, not click's usage error.
- None of this breaks a start, a restart on the same port or Hypercorn's reload (SIGHUP).

Each command runs as a real process, the Procfile's lines through bash; each failure must be
exactly one line on stderr and status 1 (``tests/test_startup_errors.py`` has the others).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from contextlib import suppress
from pathlib import Path

import httpx
import pytest

from harness.live_server import free_port, procfile_commands, start_live_server
from service.cli.serving import StartupError, serving_port
from service.config import ConfigurationError, default_settings, load_settings
from tests.helpers import TEST_MFA_KEY
from tests.test_startup_errors import (
    COMMANDS,
    ROOT,
    STRONG_SECRET,
    clean_environment,
    one_line,
)

PROCFILE = procfile_commands()
#: The release and the web process, as a platform starts them, and the quick start's command.
LINES = {
    "release": ["bash", "-c", PROCFILE["release"]],
    "web": ["bash", "-c", f"exec {PROCFILE['web']}"],
    "serve": [*COMMANDS["serve"], "--port", "0"],
}
NO_DATABASE_URL = "DATABASE_URL must be set in production"


def run_without(tmp_path: Path, argv: list[str], *names: str, **values: str) -> tuple[int, str]:
    """Run ``argv`` in production from ``tmp_path`` (with the checkout's ``config/``), the
    variables ``names`` unset; its exit status and stderr."""
    (tmp_path / "config").symlink_to(ROOT / "config")
    env = clean_environment(
        tmp_path, APP_ENV="production", SECRET_KEY=STRONG_SECRET, PORT=str(free_port()), **values
    )
    for name in names:
        env.pop(name, None)
    result = subprocess.run(
        argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=90, check=False
    )
    return result.returncode, result.stderr


# A database that outlives the dyno


@pytest.mark.parametrize("line", LINES)
def test_production_without_database_url_starts_nothing(line: str, tmp_path: Path) -> None:
    status, stderr = run_without(tmp_path, LINES[line], "DATABASE_URL")

    assert status == 1
    assert NO_DATABASE_URL in one_line(stderr)
    assert not (tmp_path / "instance").exists(), "no SQLite file was made on the local disk"


def test_production_takes_a_sqlite_file_only_by_its_explicit_url(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("CONFIG_DIR", str(tmp_path))
    for name, value in {
        "APP_ENV": "production",
        "SECRET_KEY": STRONG_SECRET,
        "MFA_ENCRYPTION_KEY": TEST_MFA_KEY,
    }.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError, match=NO_DATABASE_URL):
        load_settings()

    monkeypatch.setenv("DATABASE_URL", "sqlite:///instance/service.db")  # the default, named
    assert load_settings().database_url == "sqlite:///instance/service.db"


def test_outside_production_the_default_sqlite_file_still_serves() -> None:
    assert default_settings(app_env="development").database_url.startswith("sqlite:///")


# The port


def test_the_web_line_reads_port_itself() -> None:
    """``--port $PORT`` with PORT unset shifted the arguments into click's usage error."""
    assert "$PORT" not in PROCFILE["web"]
    assert "--port" not in PROCFILE["web"]


@pytest.mark.parametrize("line", ["web", "serve"])
def test_production_without_port_is_one_line_and_status_1(line: str, tmp_path: Path) -> None:
    argv = COMMANDS[line]  # ``serve`` without --port
    status, stderr = run_without(tmp_path, argv, "PORT", DATABASE_URL=f"sqlite:///{tmp_path}/db")

    assert status == 1
    assert "PORT is not set" in one_line(stderr)


def test_the_port_is_the_option_else_port_else_8000_outside_production() -> None:
    production = {
        "app_env": "production",
        "database_url": "sqlite:///x.db",
        "secret_key": STRONG_SECRET,
        "mfa_encryption_key": TEST_MFA_KEY,
    }
    assert serving_port(default_settings(), None) == 8000
    assert serving_port(default_settings(port=9000), None) == 9000
    assert serving_port(default_settings(**production, port=9000), None) == 9000
    assert serving_port(default_settings(**production, port=9000), 9100) == 9100
    assert serving_port(default_settings(**production), 9100) == 9100
    with pytest.raises(StartupError, match="PORT is not set"):
        serving_port(default_settings(**production), None)


def shared_port_holder() -> socket.socket:
    """A socket listening on 0.0.0.0 as Hypercorn's own with several workers does
    (``SO_REUSEADDR`` and ``SO_REUSEPORT``), so that it would share the port."""
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    holder.bind(("0.0.0.0", 0))  # noqa: S104 (the web: line binds 0.0.0.0)
    holder.listen()
    return holder


def start_on(command: str, port: int, workers: str, tmp_path: Path) -> tuple[int, str]:
    """Start ``command`` in production on ``port`` with ``workers``; status and stderr."""
    env = clean_environment(
        tmp_path,
        APP_ENV="production",
        SECRET_KEY=STRONG_SECRET,
        PORT=str(port),
        WEB_CONCURRENCY=workers,
    )
    argv = COMMANDS[command]
    if command == "serve":
        argv = [*argv, "--port", str(port), "--workers", workers]
    result = subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=90, check=False
    )
    return result.returncode, result.stderr


@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.parametrize("command", COMMANDS)
def test_a_port_another_server_would_share_is_refused(
    command: str, workers: str, tmp_path: Path
) -> None:
    with shared_port_holder() as holder:
        port = holder.getsockname()[1]
        status, stderr = start_on(command, port, workers, tmp_path)

    assert status == 1
    assert f":{port} (the address is already in use" in one_line(stderr)


@pytest.mark.e2e
def test_a_second_web_process_on_a_served_port_is_refused_and_the_first_serves_on(
    tmp_path: Path,
) -> None:
    """The attack: the web: line twice on one PORT with two workers each; both served."""
    port = free_port()
    url = f"sqlite:///{tmp_path}/service.db"
    with start_live_server(url, tmp_path, PORT=str(port), WEB_CONCURRENCY="2") as first:
        for workers in ("2", "1"):
            status, stderr = start_on("web", port, workers, tmp_path / workers)
            assert status == 1, workers
            assert "the address is already in use" in one_line(stderr)
        with first.client() as http:
            assert http.get("/readyz").status_code == 200


@pytest.mark.e2e
def test_a_restart_on_the_same_port_binds_over_the_closing_connections(tmp_path: Path) -> None:
    """SIGTERM ends kept-alive connections from the server's side, which leaves them in
    TIME_WAIT on the port; the next start binds all the same (``SO_REUSEADDR``)."""
    port = str(free_port())
    url = f"sqlite:///{tmp_path}/service.db"
    for run in ("before", "after"):
        directory = tmp_path / run
        directory.mkdir()
        with start_live_server(url, directory, PORT=port) as server:
            kept_alive = server.client()
            assert kept_alive.get("/healthz").status_code == 200
            assert server.stop() == 0  # closes the idle connection from the server's side
            kept_alive.close()


@pytest.mark.e2e
def test_hypercorns_reload_serves_on_from_the_same_socket(tmp_path: Path) -> None:
    """SIGHUP makes Hypercorn replace its workers; the new ones serve the master's socket."""
    url = f"sqlite:///{tmp_path}/service.db"
    with start_live_server(url, tmp_path, WEB_CONCURRENCY="2") as server:
        before = workers_of(server.process.pid)
        os.kill(server.process.pid, signal.SIGHUP)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            after = workers_of(server.process.pid)
            if len(after) == 2 and not after & before:
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"no new workers after SIGHUP:\n{server.output()}")
        with server.client() as http:
            assert ready_soon(http)
    assert "already in use" not in server.output()


def workers_of(master: int) -> set[int]:
    """The Hypercorn worker processes of ``master`` (spawned by multiprocessing)."""
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    found = set()
    for pid in children:
        with suppress(OSError):
            if "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text():
                found.add(int(pid))
    return found


def ready_soon(http: httpx.Client) -> bool:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with suppress(httpx.TransportError):
            if http.get("/readyz").status_code == 200:
                return True
        time.sleep(0.1)
    return False
