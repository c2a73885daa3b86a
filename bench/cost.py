"""Per-request cost and worker memory: figures that hold on a busy machine.

    uv run python bench/cost.py                          # CPU per GET /items/{id}, SQLite
    uv run python bench/cost.py --database postgresql    # the same on a fresh PostgreSQL
    uv run python bench/cost.py --memory                 # worker RSS after start, after 60 s
    uv run python bench/cost.py --soak                   # RSS over 5 min of mixed traffic
    uv run python bench/cost.py --soak --duration 60     # a shorter soak
    uv run python bench/cost.py --ours-env DATABASE_FAST_PATH=false --baseline /work/main

Throughput (``bench/run.py``) needs an idle machine. What a request costs does not: the
server (the Procfile's ``release:`` and ``web:`` commands, one Hypercorn worker, production
settings, one access line per request) is sent requests at a fixed, moderate ``--rate``
(well below what it can serve, so nothing queues), and the worker's CPU time (user + system,
every thread, from ``/proc/<pid>/stat``) over the run is divided by the requests it answered.
Other work on the machine makes each request a little slower (shared caches), not more
expensive by much; compare two builds in one sitting, as with any figure.

- default: ``--requests`` authenticated ``GET /items/{id}`` at ``--rate`` per second; prints
  the worker's CPU microseconds per request (median of ``--rounds`` rounds). With
  ``--ours-env KEY=VALUE`` (repeatable) ours is measured again with that setting, and with
  ``--baseline DIR`` the service of another checkout too (``bench/run.py``), one after the
  other in the same sitting, each on a database of its own.
- ``--memory``: the worker's resident set (``VmRSS``) right after start-up, then after
  ``--duration`` (60) seconds of mixed traffic: item reads, pages, creates, updates, deletes,
  ``/me``, ``/sessions``, a refresh, and a login every 10 s (bcrypt at the server's cost).
- ``--soak``: the same traffic for ``--duration`` (300) seconds, sampling RSS every 5 s; prints
  the samples and the least-squares slope after the first third (the warm-up), in KiB per
  minute and per 1,000 requests. A worker that keeps something per request grows steadily.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import WORK_DIR, Target, new_database, prepare, running_checkout  # noqa: E402
from harness.live_server import start_live_server  # noqa: E402

PASSWORD = "bench-passw0rd-bench"  # noqa: S105 - a throwaway account on a local server
TICKS = os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.extend(int(child) for child in (task / "children").read_text().split())
    return found


def workers(master: int) -> list[int]:
    """The Hypercorn workers under ``master`` (not multiprocessing's resource tracker)."""
    found = []
    for pid in children(master):
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
        if b"resource_tracker" not in command:
            found.append(pid)
    return found


def worker_pid(master: int) -> int:
    """The one Hypercorn worker under ``master`` (the web command's process)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = workers(master)
        if len(found) == 1:
            return found[0]
        time.sleep(0.2)
    sys.exit(f"expected one worker under {master}, found {workers(master)}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def paced(count: int, rate: float, send: object) -> int:
    """Call ``send()`` ``count`` times at ``rate`` per second from 4 connections; the number
    of non-2xx answers."""
    assert callable(send)
    interval = 4 / rate
    failures = 0

    async def lane(share: int) -> None:
        nonlocal failures
        start = time.monotonic()
        for number in range(share):
            delay = start + number * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if not (await send()).is_success:
                failures += 1

    await asyncio.gather(*(lane(count // 4) for _ in range(4)))
    return failures


async def read_cost(target: Target, pid: int, args: argparse.Namespace) -> list[float]:
    headers = {"Authorization": f"Bearer {target.token}"}
    limits = httpx.Limits(max_connections=4, max_keepalive_connections=4)
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:

        def one() -> object:
            return http.get(target.url, headers=headers)

        await paced(min(args.requests, 2000), args.rate, one)  # warm-up
        rounds = []
        for number in range(1, args.rounds + 1):
            before = cpu_seconds(pid)
            failures = await paced(args.requests, args.rate, one)
            spent = cpu_seconds(pid) - before
            if failures:
                sys.exit(f"{failures} requests failed: the figure would not be comparable")
            rounds.append(spent / args.requests * 1e6)
            print(f"round {number}: {rounds[-1]:.0f} us of worker CPU per request")
    return rounds


class Traffic:
    """Mixed traffic of one user: reads mostly, some writes, a login now and then."""

    def __init__(self, http: httpx.AsyncClient, username: str) -> None:
        self.http = http
        self.username = username
        self.headers: dict[str, str] = {}
        self.refresh_token = ""
        self.last_login = 0.0
        self.requests = 0

    async def log_in(self) -> None:
        form = {"username": self.username, "password": PASSWORD}
        answer = (await self.http.post("/login", data=form)).raise_for_status().json()
        self.headers = {"Authorization": f"Bearer {answer['access_token']}"}
        self.refresh_token = answer["refresh_token"]
        self.last_login = time.monotonic()
        self.requests += 1

    async def step(self) -> None:
        """One round: 20 requests of every kind but login (and a login every 10 s)."""
        if time.monotonic() - self.last_login > 10:
            await self.log_in()
        http, headers = self.http, self.headers
        created = await http.post(
            "/items", json={"name": "Soak", "description": "x" * 200}, headers=headers
        )
        path = f"/items/{created.raise_for_status().json()['id']}"
        calls = [http.get(path, headers=headers) for _ in range(10)]
        calls += [
            http.get("/items?limit=20", headers=headers),
            http.patch(path, json={"description": "y" * 100}, headers=headers),
            http.get("/me", headers=headers),
            http.get("/sessions", headers=headers),
            http.get(f"/items/{path[-36:-1]}0", headers=headers),  # almost always 404
            http.post("/items", json={"name": ""}, headers=headers),  # 422
            http.get("/items", headers={"Authorization": "Bearer nonsense"}),  # 401
        ]
        for call in calls:
            await call
        (await http.delete(path, headers=headers)).raise_for_status()
        self.requests += len(calls) + 2


async def traffic_for(base_url: str, seconds: float, sample: object = None) -> int:
    """``seconds`` of mixed traffic from 4 users in turn; ``sample(requests)`` every 5 s."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        users = []
        for number in range(4):
            name = f"soak{number}-{os.getpid()}"
            (await http.post("/signup", json={"username": name, "password": PASSWORD}))
            users.append(Traffic(http, name))
        for user in users:
            await user.log_in()
        end = time.monotonic() + seconds
        next_sample = time.monotonic()
        while time.monotonic() < end:
            await asyncio.gather(*(user.step() for user in users))
            if sample is not None and time.monotonic() >= next_sample:
                assert callable(sample)
                sample(sum(user.requests for user in users))
                next_sample += 5
        return sum(user.requests for user in users)


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of ``(x, y)`` points."""
    xs, ys = [x for x, _ in points], [y for _, y in points]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread if spread else 0.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--memory", action="store_true", help="RSS after start and after traffic")
    mode.add_argument("--soak", action="store_true", help="RSS over a long run; its slope")
    parser.add_argument("--duration", type=float, help="seconds of traffic (60; soak 300)")
    parser.add_argument("--rate", type=float, default=200.0, help="requests/s (CPU mode)")
    parser.add_argument("--requests", type=int, default=4000, help="requests per CPU round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--ours-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="also measure ours with this setting (repeatable; CPU mode)",
    )
    parser.add_argument(
        "--baseline", type=Path, metavar="DIR", help="also measure the checkout at DIR (CPU mode)"
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    started = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    log_dir = WORK_DIR / "logs" / f"{started}-cost"
    log_dir.mkdir(parents=True)
    with ExitStack() as stack:
        url = new_database(stack, args.database, "cost")
        server = stack.enter_context(
            start_live_server(
                url, log_dir, check_output=False, WEB_CONCURRENCY="1", BCRYPT_ROUNDS="12"
            )
        )
        pid = worker_pid(server.process.pid)
        print(f"worker {pid}, database {args.database}, logs in {log_dir.relative_to(ROOT)}")
        if args.memory or args.soak:
            memory(server.base_url, pid, args)
            return
        servers = [(Target("ours", server.base_url, server.log_path), pid)]
        for setting in args.ours_env:
            key, _, value = setting.partition("=")
            other_url = new_database(stack, args.database, f"cost{len(servers)}")
            (log_dir / setting).mkdir()
            other = stack.enter_context(
                start_live_server(
                    other_url,
                    log_dir / setting,
                    check_output=False,
                    WEB_CONCURRENCY="1",
                    BCRYPT_ROUNDS="12",
                    **{key: value},
                )
            )
            target = Target(f"ours+{setting}", other.base_url, other.log_path)
            servers.append((target, worker_pid(other.process.pid)))
        if args.baseline is not None:
            baseline_url = new_database(stack, args.database, "cost_baseline")
            target = stack.enter_context(running_checkout(args.baseline, log_dir, baseline_url))
            servers.append((target, worker_pid(target.pid)))
        figures: dict[str, list[float]] = {}
        for target, worker in servers:
            prepare(target)
            print(f"[{target.name}] worker {worker}")
            figures[target.name] = asyncio.run(read_cost(target, worker, args))
    for name, rounds in figures.items():
        print(
            f"\n{name}: GET /items/{{id}} at {args.rate:.0f}/s, {args.requests} requests per "
            f"round, database {args.database}: median {statistics.median(rounds):.0f} us of "
            f"worker CPU per request (rounds: {', '.join(f'{f:.0f}' for f in rounds)})"
        )
    print(f"load average {os.getloadavg()[0]:.1f}")


def memory(base_url: str, pid: int, args: argparse.Namespace) -> None:
    seconds = args.duration or (300.0 if args.soak else 60.0)
    after_start = rss_mib(pid)
    print(f"RSS after start-up: {after_start:.1f} MiB")
    began = time.monotonic()
    samples: list[tuple[float, int, float]] = []

    def sample(requests: int) -> None:
        samples.append((time.monotonic() - began, requests, rss_mib(pid)))
        if args.soak:
            at, count, rss = samples[-1]
            print(f"  {at:6.0f} s {count:>7} requests  RSS {rss:.1f} MiB")

    requests = asyncio.run(traffic_for(base_url, seconds, sample))
    print(
        f"RSS after {seconds:.0f} s of mixed traffic ({requests} requests): {rss_mib(pid):.1f} MiB"
    )
    if args.soak:
        settled = [s for s in samples if s[0] >= seconds / 3]
        if len(settled) < 3:
            sys.exit("too few samples after the warm-up for a slope; run longer")
        per_minute = slope([(at / 60, rss * 1024) for at, _, rss in settled])
        per_thousand = slope([(count / 1000, rss * 1024) for _, count, rss in settled])
        print(
            f"slope after the first third: {per_minute:+.0f} KiB/min, "
            f"{per_thousand:+.1f} KiB per 1,000 requests"
        )


if __name__ == "__main__":
    main()
