"""Starting the web server: every start-up check in the master process, then Hypercorn.

``service serve`` (the quick start) and the Procfile's ``web:`` command (``service serve
--no-migrate ...``) come here. Before Hypercorn starts a single worker, the master checks what
would otherwise fail in every worker, or only on the first request:

1. the settings and the token keys they name (``service.config.keyring``);
2. the Hypercorn configuration file, the port (in production ``PORT`` or ``--port`` must name
   it), and the address, which the master binds itself (``listen``);
3. the database: migrated first by ``serve``, or (``--no-migrate``, the release phase has
   migrated) reachable, existing and at this release's schema head.

Each failure is a ``StartupError`` whose message is ONE line naming the cause and the setting
to change; the command prints it and exits with status 1.

Why not the plain ``hypercorn ... 'service:create_app()'`` command: its workers are the first to
build the app, so a bad setting is printed once per worker, and Hypercorn 0.18's ``run`` then
returns 0 (its last ``_join_exited`` overwrites the failed worker's status), so a supervisor
saw a clean stop. ``run_hypercorn`` therefore also notes whether a stop signal arrived
(``signal.set_wakeup_fd``): workers gone without one is a failure, status 1, whatever
Hypercorn returns.

Why the master binds the address itself: with more than one worker Hypercorn sets
``SO_REUSEPORT`` on the sockets it binds, and Linux then lets a second server of the same
user bind the same port too, so two releases started on one port would both serve and split
the traffic. ``listen`` binds and listens once, without ``SO_REUSEPORT``, and hands the
socket to Hypercorn as ``fd://`` (its documented bind form for an inherited socket), which
uses it as it is; its workers share that one socket as they would share Hypercorn's own.
Nothing can take the address between the check and the serving, and ``SO_REUSEADDR`` (as
Hypercorn sets it) lets a restart bind over the previous server's closing connections.
Everything here is Hypercorn's public API (``Config``, ``run``).
"""

from __future__ import annotations

import errno
import signal
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from hypercorn.config import Config
from hypercorn.run import run

from service.config import Settings, config_dir

HYPERCORN_FILE = "hypercorn.toml"
#: What Hypercorn imports in each worker; ``service.create_app`` builds the app from settings.
APPLICATION = "service:create_app()"
#: The signals on which Hypercorn's master stops its workers on purpose.
_STOP_SIGNALS = {
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGBREAK") if hasattr(signal, name)
}


class StartupError(Exception):
    """The server cannot start; the message is one line, safe to print."""


def hypercorn_config(path: Path | None, *, workers: int) -> Config:
    """Hypercorn's settings from ``path`` (default ``hypercorn.toml`` in ``config_dir()``);
    ``listen`` gives them the address."""
    path = path or config_dir() / HYPERCORN_FILE
    if not path.is_file():
        raise StartupError(
            f"{path} not found: run from the checkout, or pass --config (or set CONFIG_DIR) "
            f"to a directory holding {HYPERCORN_FILE}"
        )
    try:
        config = Config.from_toml(path)
    except (ValueError, OSError) as error:
        raise StartupError(f"cannot read {path}: {' '.join(str(error).split())}") from None
    config.application_path = APPLICATION
    config.workers = workers
    return config


def serving_port(settings: Settings, port: int | None) -> int:
    """``--port``, else ``PORT``; in production one of them must be given.

    A platform names the port of a web process in ``PORT``; one that did not (a Procfile run
    by hand, a missing variable) must not quietly serve on 8000 where nothing routes to it.
    """
    if port is not None:
        return port
    if settings.app_env == "production" and "port" not in settings.model_fields_set:
        raise StartupError(
            "PORT is not set: in production the port must be named, by the platform (PORT) "
            "or with --port"
        )
    return settings.port


def listen(config: Config, host: str, port: int) -> None:
    """Bind and listen on ``host:port`` exclusively, in this process, and make ``config`` serve
    that socket; a port in use fails here, in one line (see the module's doc for why)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.listen(config.backlog)
    except OSError as error:
        sock.close()
        address = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
        cause = _cause(error)
        raise StartupError(f"cannot listen on {address} ({cause}; set PORT or --port)") from None
    config.bind = [f"fd://{sock.detach()}"]


def _cause(error: OSError) -> str:
    if error.errno == errno.EADDRINUSE:
        return "the address is already in use: stop the other server or choose another port"
    if error.errno == errno.EACCES:
        return "permission denied: choose a port above 1023"
    return f"{error.strerror or error}: check the host"


def run_hypercorn(config: Config) -> int:
    """Hypercorn's ``run``; 1 if its workers stopped without being asked to (see the doc)."""
    with _signals_noted() as received:
        status = run(config)
        asked_to_stop = bool(received() & _STOP_SIGNALS)
    if status == 0 and config.workers > 0 and not asked_to_stop:
        return 1
    return status


@contextmanager
def _signals_noted() -> Iterator[Callable[[], set[int]]]:
    """Note the signals the process receives meanwhile (each is a byte on the wakeup fd)."""
    reader, writer = socket.socketpair()
    reader.setblocking(False)
    writer.setblocking(False)
    previous = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)

    def received() -> set[int]:
        numbers: set[int] = set()
        try:
            while chunk := reader.recv(4096):
                numbers.update(chunk)
        except BlockingIOError:
            pass
        return numbers

    try:
        yield received
    finally:
        signal.set_wakeup_fd(previous)
        reader.close()
        writer.close()
