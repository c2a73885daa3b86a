"""Benchmark: authenticated ``GET /items/{id}`` on our service beside the seed, in one run.

    uv run python bench/run.py                       # SQLite, 3 rounds of 10 s
    uv run python bench/run.py --database postgresql # a fresh PostgreSQL database
    uv run python bench/run.py --peer fastapi-users  # also the fastapi-users peer
    uv run python bench/run.py --floor               # also Quart + Hypercorn alone
    uv run python bench/run.py -d 2 --rounds 1       # a quick check that everything runs
    uv run python bench/run.py --workers 1 2 4 -t 2  # ours with 1, 2 and 4 workers
    uv run python bench/run.py --ours-env DATABASE_FAST_PATH=false  # ours a second time
    uv run python bench/run.py --baseline /work/main # also ours from another checkout

What runs, all on this machine:

- **seed**: ``/work/shared/peers/seed_fastapi/main.py`` (FastAPI, python-jose, passlib,
  in-memory dicts) under uvicorn with its default access log, from its own virtualenv in
  ``bench/work/`` (made on first use with pip; git-ignored).
- **ours**: the Procfile's ``release:`` then ``web:`` command (Hypercorn, ``WEB_CONCURRENCY=1``,
  ``APP_ENV=production``, ``LOG_LEVEL=INFO``: one access log line per request, like the seed).
- optionally **bare-quart** (``--floor``): ``bench/bare_quart.py``, a Quart app that answers
  with a constant (no token, database or logging) under the same Hypercorn command: the
  ceiling of any service on this stack, measured on the same machine in the same run.
- optionally **fastapi-users**: ``/work/shared/peers/fastapi_users/main.py`` (fastapi-users +
  SQLAlchemy async, per-user items) under uvicorn, on the same kind of database as ours.

For each server the script signs up, logs in and creates one item, then alternates the servers
for ``--rounds`` rounds: a ``--warmup`` second wrk run, then ``wrk -t1 -c32 -d<N>s --latency``
with the bearer token. It prints requests/s and p50/p90/p99 latency (median over the rounds)
and each server's ratio to the seed, and writes everything to ``bench/results/`` (git-ignored).
The machine is shared and noisy: compare ratios from one run, not absolute figures across runs.
``--ours-env KEY=VALUE`` (repeatable) also runs ours with that one setting changed, named
``ours+KEY=VALUE``; ``--baseline DIR`` also runs the service of another checkout (its own
``.venv`` and Procfile), named ``baseline``: two builds, or two settings, compared in one run,
each on a database of its own.
With ``--workers 1 2 4`` ours runs once per worker count (``WEB_CONCURRENCY``, one database,
all servers up at once and measured in turn) and a table of req/s per worker count follows.

Needs Debian's wrk (``apt-get install -y wrk``); the script installs nothing system-wide.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import venv
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.live_server import (  # noqa: E402
    free_port,
    procfile_commands,
    server_environment,
    spawn_logged,
    start_live_server,
)

WORK_DIR = ROOT / "bench" / "work"
RESULTS_DIR = ROOT / "bench" / "results"
PEERS_DIR = Path(os.environ.get("PEERS_DIR", "/work/shared/peers"))
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"

#: Each peer's app file (under PEERS_DIR, the peers' own checkout) and what its virtualenv needs.
PEER_APPS = {
    "seed": (
        "seed_fastapi/main.py",
        [
            "fastapi",
            "uvicorn",
            "python-jose",
            "passlib[bcrypt]",
            "python-multipart",
            "bcrypt==4.0.1",
        ],
    ),
    "fastapi-users": (
        "fastapi_users/main.py",
        ["fastapi-users[sqlalchemy]", "uvicorn", "aiosqlite", "asyncpg"],
    ),
}

#: The name of ``bench/bare_quart.py`` in the results (``--floor``).
FLOOR = "bare-quart"

USERNAME = "bench"
PASSWORD = "bench-passw0rd-bench"  # noqa: S105 - a throwaway account on a local server


@dataclass
class Target:
    """A running server and the one request the benchmark repeats."""

    name: str
    base_url: str
    log_path: Path
    url: str = ""
    token: str = ""
    #: The server's own process (Hypercorn's master), where known.
    pid: int = 0


@dataclass
class Measurement:
    requests_per_second: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    requests: int
    errors: int


@dataclass
class Summary:
    name: str
    rounds: list[Measurement] = field(default_factory=list)

    def median(self, attribute: str) -> float:
        return float(statistics.median(getattr(m, attribute) for m in self.rounds))


# --- servers -------------------------------------------------------------------------------


def peer_python(peer: str) -> Path:
    """The interpreter of a peer's virtualenv in ``bench/work/``, made and filled on first use."""
    app_file, packages = PEER_APPS[peer]
    home = WORK_DIR / peer
    python = home / "venv" / "bin" / "python"
    marker = home / "venv" / "installed.json"
    if not marker.is_file() or json.loads(marker.read_text()) != packages:
        print(f"[{peer}] creating {home / 'venv'} and installing: {' '.join(packages)}")
        venv.EnvBuilder(with_pip=True, clear=True).create(home / "venv")
        pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", *packages]
        result = subprocess.run(pip, capture_output=True, text=True, check=False)
        (home / "pip.log").write_text(result.stdout + result.stderr)
        if result.returncode != 0:
            sys.exit(f"[{peer}] pip install failed; see {home / 'pip.log'}")
        marker.write_text(json.dumps(packages))
    shutil.copyfile(PEERS_DIR / app_file, home / "main.py")
    return python


@contextmanager
def running_peer(peer: str, log_dir: Path, database_url: str | None) -> Iterator[Target]:
    """A peer app under uvicorn (default access log on), output to ``<log_dir>/<peer>.log``."""
    python = peer_python(peer)
    port = free_port()
    env = dict(os.environ)
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    command = [str(python), "-m", "uvicorn", "main:app", "--host", "127.0.0.1", "--port", str(port)]
    with running_server(
        peer, command, port=port, cwd=WORK_DIR / peer, env=env, log_dir=log_dir, ready="/docs"
    ) as target:
        yield target


def service_name(workers: int) -> str:
    """``ours`` for one worker (the figure compared across runs), ``ours-<n>w`` for more."""
    return "ours" if workers == 1 else f"ours-{workers}w"


@contextmanager
def running_service(
    log_dir: Path, database_url: str, workers: int = 1, name: str = "", **env: str
) -> Iterator[Target]:
    """Our service as the Procfile runs it with ``workers`` Hypercorn workers
    (``WEB_CONCURRENCY``) and the settings ``env``; logs in ``<log_dir>/<name>``."""
    name = name or service_name(workers)
    (log_dir / name).mkdir()
    with start_live_server(
        database_url,
        log_dir / name,
        check_output=False,
        WEB_CONCURRENCY=str(workers),
        LOG_LEVEL="INFO",
        BCRYPT_ROUNDS="12",
        **env,
    ) as server:
        yield Target(name, server.base_url, server.log_path)


@contextmanager
def running_checkout(root: Path, log_dir: Path, database_url: str) -> Iterator[Target]:
    """The service of the checkout at ``root`` (its ``.venv``, its Procfile's ``release:`` then
    ``web:``), set up as ``running_service`` sets up ours, named ``baseline``."""
    port = free_port()
    env = server_environment(
        database_url, port, WEB_CONCURRENCY="1", LOG_LEVEL="INFO", BCRYPT_ROUNDS="12"
    )
    env["PATH"] = os.pathsep.join([str(root / ".venv" / "bin"), env["PATH"]])
    commands = procfile_commands(root / "Procfile")
    with (log_dir / "baseline-release.log").open("wb") as release_log:
        subprocess.run(
            ["bash", "-c", commands["release"]],
            cwd=root,
            env=env,
            stdout=release_log,
            stderr=subprocess.STDOUT,
            check=True,
        )
    web = ["bash", "-c", f"exec {commands['web']}"]
    with running_server(
        "baseline", web, port=port, cwd=root, env=env, log_dir=log_dir, ready="/healthz"
    ) as target:
        yield target


@contextmanager
def running_floor(log_dir: Path) -> Iterator[Target]:
    """``bench/bare_quart.py`` under our Hypercorn config, one worker, like ``running_service``."""
    port = free_port()
    command = [sys.executable, "-m", "hypercorn", "--config", "config/hypercorn.toml"]
    command += ["--bind", f"127.0.0.1:{port}", "--workers", "1", "bench.bare_quart:app"]
    with running_server(
        FLOOR, command, port=port, cwd=ROOT, env=dict(os.environ), log_dir=log_dir, ready="/healthz"
    ) as target:
        yield target


@contextmanager
def running_server(
    name: str,
    command: list[str],
    *,
    port: int,
    cwd: Path,
    env: dict[str, str],
    log_dir: Path,
    ready: str,
) -> Iterator[Target]:
    """Start ``command`` (it listens on ``port``), wait until it answers ``ready``, stop it after.

    Output goes to ``<log_dir>/<name>.log``.
    """
    log_path = log_dir / f"{name}.log"
    process = spawn_logged(command, cwd=cwd, env=env, log_path=log_path)
    target = Target(name, f"http://127.0.0.1:{port}", log_path, pid=process.pid)
    try:
        wait_for(target, process, ready)
        yield target
    finally:
        stop(process)


def wait_for(target: Target, process: subprocess.Popen[bytes], path: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"{target.name} exited at start-up; see {target.log_path}")
        with suppress(httpx.TransportError):
            if httpx.get(target.base_url + path, timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    sys.exit(f"{target.name} did not answer {path} within 60 s; see {target.log_path}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


# --- databases -----------------------------------------------------------------------------


async def _admin(statement: str) -> None:
    admin_url = os.environ.get("TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    connection = await asyncpg.connect(admin_url, timeout=5)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@contextmanager
def postgres_database(prefix: str) -> Iterator[str]:
    """A new PostgreSQL database (on ``TEST_POSTGRES_URL``'s server), dropped afterwards."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    admin_url = make_url(os.environ.get("TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL))
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# --- the request under test ----------------------------------------------------------------


def prepare(target: Target) -> None:
    """Sign up, log in and create one item; remember the item's URL and the access token."""
    if target.name == FLOOR:  # nothing to sign up for; the token is sent and ignored
        target.url, target.token = f"{target.base_url}/items/{uuid.uuid4()}", "unchecked"
        return
    with httpx.Client(base_url=target.base_url, timeout=30) as http:
        if target.name == "fastapi-users":
            email = f"{USERNAME}@example.com"
            http.post("/auth/register", json={"email": email, "password": PASSWORD})
            login = http.post("/auth/jwt/login", data={"username": email, "password": PASSWORD})
        else:
            http.post("/signup", json={"username": USERNAME, "password": PASSWORD})
            login = http.post("/login", data={"username": USERNAME, "password": PASSWORD})
        login.raise_for_status()
        target.token = login.json()["access_token"]
        headers = {"Authorization": f"Bearer {target.token}"}
        created = http.post(
            "/items/", json={"name": "Book", "description": "A nice book"}, headers=headers
        )
        created.raise_for_status()
        target.url = f"{target.base_url}/items/{created.json()['id']}"
        http.get(target.url, headers=headers).raise_for_status()


def wrk(target: Target, seconds: int, connections: int, threads: int = 1) -> Measurement:
    result = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-H",
            f"Authorization: Bearer {target.token}",
            target.url,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return parse_wrk(result.stdout)


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(value: str) -> float:
    number, unit = _search(r"^([\d.]+)(us|ms|s|m)$", value, groups=2)
    return float(number) * _UNITS_MS[unit]


def _search(pattern: str, text: str, groups: int = 1) -> list[str]:
    match = re.search(pattern, text, re.MULTILINE)
    if match is None:
        sys.exit(f"unexpected wrk output (no {pattern!r}):\n{text}")
    return [match.group(index) for index in range(1, groups + 1)]


def parse_wrk(output: str) -> Measurement:
    """The figures of ``wrk --latency`` output; non-2xx/3xx answers and socket errors count."""
    # wrk pads some values with a trailing space ("1.21s ").
    percentiles = dict(re.findall(r"^\s+(50|90|99)%\s+(\S+)\s*$", output, re.MULTILINE))
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", output))
    for counts in re.findall(r"Socket errors: (.*)$", output, re.MULTILINE):
        errors += sum(int(n) for n in re.findall(r"\d+", counts))
    return Measurement(
        requests_per_second=float(_search(r"Requests/sec:\s+([\d.]+)", output)[0]),
        p50_ms=_ms(percentiles["50"]),
        p90_ms=_ms(percentiles["90"]),
        p99_ms=_ms(percentiles["99"]),
        requests=int(_search(r"(\d+) requests in", output)[0]),
        errors=errors,
    )


# --- report --------------------------------------------------------------------------------


def table(summaries: list[Summary]) -> str:
    seed = next(summary for summary in summaries if summary.name == "seed")
    width = max(15, *(len(summary.name) + 1 for summary in summaries))
    lines = [
        f"{'server':<{width}}{'req/s':>10}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}"
        f"{'req/s vs seed':>15}{'p50 vs seed':>13}{'errors':>8}",
    ]
    for summary in summaries:
        rps, p50 = summary.median("requests_per_second"), summary.median("p50_ms")
        lines.append(
            f"{summary.name:<{width}}{rps:>10.0f}{p50:>9.2f}{summary.median('p90_ms'):>9.2f}"
            f"{summary.median('p99_ms'):>9.2f}"
            f"{rps / seed.median('requests_per_second'):>14.2f}x"
            f"{p50 / seed.median('p50_ms'):>12.2f}x"
            f"{sum(m.errors for m in summary.rounds):>8}"
        )
    return "\n".join(lines)


def scaling(summaries: list[Summary], workers: list[int]) -> str:
    """Throughput per worker count, and per worker against one worker."""
    by_name = {summary.name: summary for summary in summaries}
    base = by_name[service_name(workers[0])].median("requests_per_second") / workers[0]
    lines = [f"\n{'workers':>8}{'req/s':>10}{'p99 ms':>9}{'req/s per worker':>18}{'scaling':>9}"]
    for count in workers:
        summary = by_name[service_name(count)]
        rps = summary.median("requests_per_second")
        lines.append(
            f"{count:>8}{rps:>10.0f}{summary.median('p99_ms'):>9.2f}{rps / count:>18.0f}"
            f"{rps / count / base:>8.2f}x"
        )
    return "\n".join(lines)


def git_commit() -> str:
    result = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() or "unknown"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("-d", "--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per server")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per round")
    parser.add_argument("-c", "--connections", type=int, default=32)
    parser.add_argument("-t", "--threads", type=int, default=1, help="wrk threads")
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[1],
        help="measure ours with each of these WEB_CONCURRENCY values (e.g. 1 2 4)",
    )
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument(
        "--peer",
        action="append",
        choices=["fastapi-users"],
        default=[],
        help="also measure this peer (repeatable)",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help=f"also measure {FLOOR}: bench/bare_quart.py, Quart and Hypercorn alone",
    )
    parser.add_argument(
        "--ours-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="also measure ours with this setting (repeatable; e.g. DATABASE_FAST_PATH=false)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="DIR",
        help="also measure the service of the checkout at DIR (its .venv; e.g. /work/main)",
    )
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/")
    return parser.parse_args()


def new_database(stack: ExitStack, kind: str, name: str, *, async_driver: bool = False) -> str:
    """The URL of an empty database of ``kind``, removed when ``stack`` closes."""
    if kind == "postgresql":
        url = stack.enter_context(postgres_database(f"bench_{name}"))
        return url.replace("postgresql://", "postgresql+asyncpg://", 1) if async_driver else url
    directory = stack.enter_context(tempfile.TemporaryDirectory(prefix=f"bench-{name}-"))
    return f"sqlite{'+aiosqlite' if async_driver else ''}:///{directory}/{name}.db"


def measure(targets: list[Target], args: argparse.Namespace) -> list[Summary]:
    """Alternate the servers round by round: warm up, then measure each in turn."""
    summaries = [Summary(target.name) for target in targets]
    for round_number in range(1, args.rounds + 1):
        for target, summary in zip(targets, summaries, strict=True):
            wrk(target, args.warmup, args.connections, args.threads)
            result = wrk(target, args.duration, args.connections, args.threads)
            summary.rounds.append(result)
            print(
                f"round {round_number} {target.name:<30} {result.requests_per_second:>8.0f} req/s"
                f"  p50 {result.p50_ms:.2f} ms  p99 {result.p99_ms:.2f} ms  errors {result.errors}"
            )
    return summaries


def save(summaries: list[Summary], args: argparse.Namespace, started: datetime) -> Path:
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{started.strftime('%Y%m%dT%H%M%SZ')}-{args.database}.json"
    report = {
        "started": started.isoformat(),
        "commit": git_commit(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "settings": vars(args),
        "servers": {summary.name: [asdict(m) for m in summary.rounds] for summary in summaries},
    }
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return path


def main() -> None:
    args = parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")
    started = datetime.now(UTC)
    log_dir = WORK_DIR / "logs" / started.strftime("%Y%m%dT%H%M%SZ")
    log_dir.mkdir(parents=True)
    print(f"server logs in {log_dir.relative_to(ROOT)}")

    with ExitStack() as stack:
        targets = [stack.enter_context(running_peer("seed", log_dir, None))]
        service_url = new_database(stack, args.database, "service")
        for workers in args.workers:
            targets.append(stack.enter_context(running_service(log_dir, service_url, workers)))
        for setting in args.ours_env:
            key, _, value = setting.partition("=")
            url = new_database(stack, args.database, f"service{len(targets)}")
            server = running_service(log_dir, url, name=f"ours+{setting}", **{key: value})
            targets.append(stack.enter_context(server))
        if args.baseline is not None:
            url = new_database(stack, args.database, "baseline")
            targets.append(stack.enter_context(running_checkout(args.baseline, log_dir, url)))
        if args.floor:
            targets.append(stack.enter_context(running_floor(log_dir)))
        for peer in args.peer:
            peer_url = new_database(stack, args.database, "peer", async_driver=True)
            targets.append(stack.enter_context(running_peer(peer, log_dir, peer_url)))
        for target in targets:
            prepare(target)
            print(f"[{target.name}] ready: GET {target.url}")
        summaries = measure(targets, args)

    print(
        f"\nGET /items/{{id}} with a bearer token; wrk -t1 -c{args.connections} "
        f"-d{args.duration}s; median of {args.rounds} round(s); database {args.database}; "
        f"{os.cpu_count()} CPUs\n"
    )
    print(table(summaries))
    if len(args.workers) > 1:
        print(scaling(summaries, args.workers))
    if not args.no_save:
        print(f"\nwritten to {save(summaries, args, started).relative_to(ROOT)}")
    if any(m.errors for summary in summaries for m in summary.rounds):
        sys.exit("some requests failed: the figures above are not comparable")


if __name__ == "__main__":
    main()
