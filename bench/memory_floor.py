"""Where a worker's memory goes: resident memory after each import, in a fresh interpreter.

    uv run python bench/memory_floor.py

Each step imports one more package (or builds the app) in the same fresh process and prints
the resident set (``VmRSS``) it added and the total. The first steps are the stack the
service is built on (the event loop, pydantic, SQLAlchemy's asyncio engine and both drivers,
the JOSE and password libraries, Quart, quart-schema, Hypercorn): their total is the floor
that no code of ours can go below. The last steps import the service and build the app, as a
worker does before it serves (it then also opens connections and starts threads; for that
figure see ``bench/cost.py --memory``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: The libraries the service stands on, in the order a worker meets them.
STACK = [
    "uvloop",
    "pydantic",
    "pydantic_settings",
    "sqlalchemy",
    "sqlalchemy.ext.asyncio",
    "asyncpg",
    "aiosqlite",
    "cryptography.hazmat.primitives.asymmetric.ec",
    "joserfc.jwt",
    "passlib.hash",
    "bcrypt",
    "quart",
    "quart_schema",
    "hypercorn.asyncio",
]
#: Then the rest of what the service imports, and the service itself.
SERVICE = ["email_validator", "aiosmtplib", "pyotp", "service.app"]

_MEASURE = """
import importlib, sys
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
print(f"{'python alone':44s} {'':>8s} {rss():7.1f} MiB")
previous = rss()
for name in sys.argv[1:]:
    if name == "create_app()":
        importlib.import_module("service.app").create_app()
    else:
        importlib.import_module(name)
    now = rss()
    print(f"{name:44s} {now - previous:+7.1f} {now:7.1f} MiB", flush=True)
    previous = now
"""


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        env = dict(os.environ, DATABASE_URL=f"sqlite:///{directory}/floor.db")
        env.setdefault("APP_ENV", "development")
        print(f"{'step':44s} {'added':>8s} {'total':>7s}")
        command = [sys.executable, "-c", _MEASURE]
        # One process for every step: each figure is what that step added to the ones before.
        stack_output = subprocess.run(
            [*command, *STACK, *SERVICE, "create_app()"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
        for line in stack_output:
            print(line)
            if line.startswith(STACK[-1]):
                print(f"{'= the stack alone (the floor)':44s} {'':>8s} {line.split()[-2]:>7s} MiB")


if __name__ == "__main__":
    main()
