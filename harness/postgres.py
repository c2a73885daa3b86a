"""A PostgreSQL server of a test's own, to freeze and to kill: never the shared one.

``private_postgres(directory)`` runs ``initdb`` into a new data directory, starts ``postgres``
on a free port of 127.0.0.1 and yields a ``PrivatePostgres`` whose ``url`` reaches its
``postgres`` database (trust authentication, local only). ``freeze``/``thaw`` send SIGSTOP and
SIGCONT to every process of that server (the postmaster and its children: a hung machine or
disk), ``crash`` sends SIGKILL to the postmaster (an OOM kill) and waits for its children to
go, ``start`` starts it again on the same port. Leaving the block stops it and removes the data.

PostgreSQL refuses to run as root, so under root every command runs as the ``postgres`` OS
user (``runuser``), which then owns the data directory. ``postgres_binaries()`` finds the
programs in ``/usr/lib/postgresql/*/bin`` (or on ``PATH``); None when they are absent.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from harness.live_server import free_port

START_TIMEOUT = 30.0
#: Settings for a small throw-away server; durability settings stay PostgreSQL's defaults
#: (fsync, synchronous_commit, full_page_writes) so that a crash test means what it says.
SERVER_OPTIONS = ("-c", "max_connections=60", "-c", "shared_buffers=16MB", "-c", "fsync=on")


def postgres_binaries() -> Path | None:
    """The directory holding ``initdb`` and ``postgres``, newest version first; None if absent."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
        reverse=True,
    )
    for directory in candidates:
        if (directory / "initdb").is_file() and (directory / "postgres").is_file():
            return directory
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _as_server_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


@dataclass
class PrivatePostgres:
    """One PostgreSQL server in its own data directory; see the module docstring."""

    binaries: Path
    data: Path
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        """Start the server (after a crash it recovers from its WAL) and wait until it accepts."""
        command = [
            str(self.binaries / "postgres"),
            "-D",
            str(self.data),
            "-p",
            str(self.port),
            "-h",
            "127.0.0.1",
            "-k",
            str(self.data),
            *SERVER_OPTIONS,
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                _as_server_user(command),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_until_accepting()

    def _wait_until_accepting(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        ready = [str(self.binaries / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)]
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"postgres exited at start:\n{self.log()}")
            if subprocess.run(ready, capture_output=True, check=False).returncode == 0:
                return
            time.sleep(0.05)
        raise AssertionError(f"postgres not accepting within {START_TIMEOUT}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def postmaster_pid(self) -> int:
        """The postmaster's process id (the first process ``runuser`` started)."""
        pid_file = self.data / "postmaster.pid"
        return int(pid_file.read_text().split("\n", 1)[0])

    def pids(self) -> list[int]:
        """The postmaster and every process it started (backends and auxiliary processes)."""
        postmaster = self.postmaster_pid()
        return [postmaster, *_children(postmaster)]

    def freeze(self) -> None:
        """SIGSTOP every process of the server: it keeps its sockets but answers nothing."""
        for pid in self.pids():
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        for pid in self.pids():
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    def crash(self) -> None:
        """SIGKILL the postmaster, then wait (bounded) for its children to notice and exit.

        A restart refuses to run while an old backend still holds the shared memory, so any
        child still there after a few seconds is killed too.
        """
        postmaster = self.postmaster_pid()
        children = _children(postmaster)
        os.kill(postmaster, signal.SIGKILL)
        assert self.process is not None
        self.process.wait(timeout=10)
        deadline = time.monotonic() + 5
        while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.02)
        for pid in children:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        """Fast shutdown (SIGINT to the postmaster), waiting for it to exit."""
        if self.process is None or self.process.poll() is not None:
            return
        with suppress(ProcessLookupError):
            self.thaw()
            os.kill(self.postmaster_pid(), signal.SIGINT)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def _children(parent: int) -> list[int]:
    """Processes whose parent is ``parent`` (read from ``/proc``)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError):
            # The command name, in parentheses, may hold spaces: the fields follow its end.
            fields = stat.read_text().rpartition(")")[2].split()
            if int(fields[1]) == parent:
                found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    with suppress(OSError):
        return stat.read_text().rpartition(")")[2].split()[0] != "Z"
    return False


@contextmanager
def private_postgres(binaries: Path) -> Iterator[PrivatePostgres]:
    """A new, started PostgreSQL server; stopped and removed when the block ends."""
    root = Path(tempfile.mkdtemp(prefix="private-postgres-"))
    data = root / "data"
    data.mkdir()
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(root, owner.pw_uid, owner.pw_gid)
        os.chown(data, owner.pw_uid, owner.pw_gid)
    server = PrivatePostgres(binaries, data, free_port(), root / "postgres.log")
    try:
        subprocess.run(
            _as_server_user(
                [str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-N"]
            ),
            capture_output=True,
            check=True,
            timeout=120,
        )
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
