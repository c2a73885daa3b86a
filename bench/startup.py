"""Start-up figures: ``service --help``, the import of ``service.cli``, a restart to ``/healthz``.

    uv run python bench/startup.py                 # this checkout
    uv run python bench/startup.py --root /tmp/old # another checkout (``git archive``), run
                                                   # with this environment's packages

Each figure is the median of ``--runs`` runs. The restart is the Procfile's ``web:`` command
(production settings, ``WEB_CONCURRENCY`` workers, a migrated SQLite database) from its start
to the first 200 of ``/healthz``. Results go to standard output; docs/startup.md has the last.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness.live_server import free_port, procfile_commands

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def environment(root: Path, **values: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name in {"HOME", "LANG"}}
    env.update(PATH=os.pathsep.join([str(BIN), os.environ.get("PATH", "")]), PYTHONPATH=str(root))
    env.update(values)
    return env


def help_seconds(root: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        [str(BIN / "service"), "--help"], env=environment(root), check=True, capture_output=True
    )
    return time.perf_counter() - started


def import_seconds(root: Path, module: str = "service.cli") -> float:
    """What ``import service.cli`` costs, by ``-X importtime``: its top-level entries summed."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        cwd=root,  # ``-c`` puts the working directory first on sys.path
        env=environment(root),
        capture_output=True,
        text=True,
        check=True,
    )
    before_site = result.stderr.split("| site\n", 1)[-1]  # the interpreter's own start first
    cumulative = re.findall(r"^import time:\s+\d+ \|\s+(\d+) \| \S", before_site, re.MULTILINE)
    return sum(int(value) for value in cumulative) / 1e6


def restart_seconds(root: Path, workers: int) -> float:
    with tempfile.TemporaryDirectory() as directory:
        port = free_port()
        env = environment(
            root,
            APP_ENV="production",
            SECRET_KEY=secrets.token_urlsafe(48),
            DATABASE_URL=f"sqlite:///{directory}/service.db",
            PORT=str(port),
            WEB_CONCURRENCY=str(workers),
        )
        commands = procfile_commands(root / "Procfile")
        subprocess.run(
            ["bash", "-c", commands["release"]], cwd=root, env=env, check=True, capture_output=True
        )
        started = time.perf_counter()
        web = subprocess.Popen(
            ["bash", "-c", f"exec {commands['web']}"],
            cwd=root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            with httpx.Client(timeout=1.0) as client:
                while True:
                    try:
                        if client.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                            return time.perf_counter() - started
                    except httpx.TransportError:
                        time.sleep(0.02)
                    assert web.poll() is None, "the server exited"
        finally:
            web.send_signal(signal.SIGTERM)
            web.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="The checkout to measure.")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2, help="WEB_CONCURRENCY.")
    args = parser.parse_args()
    root = args.root.resolve()
    figures = {
        "service --help (s)": [help_seconds(root) for _ in range(args.runs)],
        "import service.cli (s, -X importtime)": [import_seconds(root) for _ in range(args.runs)],
        "import service.app (s, -X importtime)": [
            import_seconds(root, "service.app") for _ in range(args.runs)
        ],
        f"web: to /healthz 200, {args.workers} workers (s)": [
            restart_seconds(root, args.workers) for _ in range(args.runs)
        ],
    }
    print(f"{root} ({args.runs} runs, median; min-max)")
    for name, values in figures.items():
        print(f"  {name}: {statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})")


if __name__ == "__main__":
    main()
