"""Benchmark: authenticated item reads idle and during a login storm, and logins alone.

    uv run python bench/storm.py                         # SQLite, 10 s per phase
    uv run python bench/storm.py --database postgresql   # a fresh PostgreSQL database
    uv run python bench/storm.py --priority normal       # hashing threads at normal priority
    uv run python bench/storm.py -d 3                    # a quick check that everything runs

The server is the Procfile's ``release:`` then ``web:`` command (``harness/live_server.py``)
with production settings: ``APP_ENV=production``, the default workers (``WEB_CONCURRENCY``
unset: 2), the default bcrypt cost (12) and hashing settings. Only the brute-force limits are
opened (``AUTH_REQUESTS_PER_MINUTE=0``, high failure limits) so that the storm, all from
127.0.0.1, measures hashing rather than the 429s. ``--rounds`` (2) alternated pairs of phases
1 and 2, then phase 3, each ``--duration`` seconds:

1. **idle**: ``wrk -t1 -c32 --latency`` on ``GET /items/{id}`` with a bearer token;
2. **storm**: the same wrk run while ``--clients`` (20) asyncio clients log in as fast as they
   are answered (right passwords, their own accounts; a 503 is honoured by sleeping its
   ``Retry-After``, as a well-behaved client does);
3. **logins only**: the storm without wrk; its login rate is compared with the machine's
   ceiling, CPUs / the CPU time of one verification (``time.process_time`` around one
   ``bcrypt_sha256`` check at the server's cost, in this process).

It prints idle vs storm req/s and p99 (medians over the rounds) with their ratios, the login
rates and answer counts, and the load average before and after (other work on the machine).
The goals (issue 9): storm reads >= 80% of idle req/s and p99 <= 2x idle; logins alone >= 90%
of the ceiling. The machine is shared and noisy: run it more than once and report each run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import httpx
from passlib.context import CryptContext

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import Measurement, Target, postgres_database, prepare, wrk  # noqa: E402
from harness.live_server import start_live_server  # noqa: E402
from service.config import Settings  # noqa: E402

WORK_DIR = ROOT / "bench" / "work"
BCRYPT_ROUNDS = 12
STORM_PASSWORD = "storm-passw0rd-storm"  # noqa: S105 - throwaway accounts on a local server


@dataclass
class Storm:
    """Logins made by the storm clients: when each answer came and with which status."""

    answers: list[tuple[float, int, float]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def between(self, start: float, end: float) -> list[tuple[float, int, float]]:
        return [answer for answer in self.answers if start <= answer[0] <= end]


async def _client(base_url: str, username: str, storm: Storm) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        while not storm.stop.is_set():
            started = time.monotonic()
            response = await http.post(
                "/login", data={"username": username, "password": STORM_PASSWORD}
            )
            now = time.monotonic()
            storm.answers.append((now, response.status_code, now - started))
            if response.status_code == 503:
                await asyncio.sleep(float(response.headers.get("Retry-After", "1")))


async def _storm(base_url: str, usernames: list[str], storm: Storm) -> None:
    await asyncio.gather(*(_client(base_url, name, storm) for name in usernames))


def start_storm(base_url: str, usernames: list[str]) -> tuple[Storm, threading.Thread]:
    storm = Storm()
    thread = threading.Thread(
        target=asyncio.run, args=(_storm(base_url, usernames, storm),), daemon=True
    )
    thread.start()
    return storm, thread


def sign_up_storm_users(base_url: str, count: int) -> list[str]:
    """``count`` accounts for the storm (retrying a 503 from a busy hashing queue)."""
    names = [f"storm{number}" for number in range(count)]
    with httpx.Client(base_url=base_url, timeout=60) as http:
        for name in names:
            while True:
                response = http.post("/signup", json={"username": name, "password": STORM_PASSWORD})
                if response.status_code != 503:
                    break
                time.sleep(float(response.headers.get("Retry-After", "1")))
            assert response.status_code == 201, response.text
    return names


def process_tree_cpu_seconds(pid: int) -> float:
    """CPU time (user + system, every thread) of ``pid`` and its descendants so far, from
    ``/proc`` (Linux); 0.0 where there is no ``/proc``."""
    total, pending = 0.0, [pid]
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    while pending:
        current = pending.pop()
        proc = Path(f"/proc/{current}")
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
            for task in (proc / "task").iterdir():
                pending.extend(int(child) for child in (task / "children").read_text().split())
        except (OSError, IndexError, ValueError):
            continue
    return total


def _task_cpu(stat: Path) -> float:
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_split(master: int) -> dict[str, float]:
    """CPU seconds so far of the web master, of the workers' main threads (the event loops:
    every request's own work, the logins' included) and of their other threads (the hashing
    threads, and aiosqlite's for SQLite writes), from ``/proc/<pid>/task/<tid>/stat``."""
    split = {"master": 0.0, "event loops": 0.0, "other threads": 0.0}
    with suppress(OSError, IndexError, ValueError):
        split["master"] = _task_cpu(Path(f"/proc/{master}/stat"))
        workers: list[int] = []
        for task in Path(f"/proc/{master}/task").iterdir():
            workers.extend(int(child) for child in (task / "children").read_text().split())
        for worker in workers:
            for task in Path(f"/proc/{worker}/task").iterdir():
                kind = "event loops" if int(task.name) == worker else "other threads"
                with suppress(OSError, IndexError, ValueError):
                    split[kind] += _task_cpu(task / "stat")
    return split


def measured_with_cpu(master: int, measured: Callable[[], object]) -> Callable[[], object]:
    """``measured`` that also returns the server's ``cpu_split`` over its run."""

    def run() -> object:
        before = cpu_split(master)
        value = measured()
        after = cpu_split(master)
        return value, {kind: after[kind] - before[kind] for kind in after}

    return run


def describe_cpu(split: dict[str, float], seconds: float, reads: int, logins: int) -> str:
    loops = split["event loops"]
    text = ", ".join(f"{kind} {spent / seconds:.2f} CPUs" for kind, spent in split.items())
    per_read = f"{loops / reads * 1e6:.0f} us of event-loop CPU per read" if reads else ""
    return f"{text}; {per_read} (with {logins} logins answered 200)"


def load_average() -> str:
    """The 1-minute load average: how busy the machine is with other work too."""
    return f"{os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "?"


def verify_cpu_seconds(rounds: int) -> float:
    """The CPU time of one ``bcrypt_sha256`` verification at ``rounds`` (median of 5)."""
    context = CryptContext(schemes=["bcrypt_sha256"], bcrypt_sha256__default_rounds=rounds)
    stored = context.hash("a-password-to-check")
    times = []
    for _ in range(5):
        started = time.process_time()
        context.verify("a-wrong-password", stored)
        times.append(time.process_time() - started)
    return statistics.median(times)


def describe(answers: list[tuple[float, int, float]], seconds: float) -> str:
    statuses = Counter(status for _, status, _ in answers)
    ok = [latency for _, status, latency in answers if status == 200]
    p50 = f"{statistics.median(ok) * 1000:.0f} ms" if ok else "-"
    counts = ", ".join(f"{status}: {n}" for status, n in sorted(statuses.items()))
    return f"{statuses[200] / seconds:.2f} logins/s (200s), p50 {p50}; answers {counts}"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("-d", "--duration", type=int, default=10, help="seconds per phase")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of wrk warm-up")
    parser.add_argument("-c", "--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--clients", type=int, default=20, help="storm clients")
    parser.add_argument("--rounds", type=int, default=2, help="idle/storm pairs, alternated")
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument(
        "--priority",
        choices=["idle", "low", "normal"],
        default=None,
        help="PASSWORD_HASH_PRIORITY of the server (default: the service's default)",
    )
    return parser.parse_args()


def server_overrides(args: argparse.Namespace) -> dict[str, str]:
    """Production settings, the default workers and cost; only the brute-force limits opened."""
    # The harness pins tests to normal priority; the benchmark runs the service's default.
    default_priority = str(Settings.model_fields["password_hash_priority"].default)
    overrides = {
        "BCRYPT_ROUNDS": str(BCRYPT_ROUNDS),
        "AUTH_REQUESTS_PER_MINUTE": "0",
        "LOGIN_FAILURES_PER_USERNAME": "100000",
        "LOGIN_FAILURES_PER_ADDRESS": "100000",
        "PASSWORD_HASH_PRIORITY": args.priority or default_priority,
    }
    if os.environ.get("WEB_CONCURRENCY"):
        overrides["WEB_CONCURRENCY"] = os.environ["WEB_CONCURRENCY"]
    return overrides


def storm_for(base_url: str, usernames: list[str], measured: Callable[[], object]) -> Result:
    """Run ``measured()`` during a storm (after 2 s to fill the queues); the logins meanwhile."""
    storm, thread = start_storm(base_url, usernames)
    try:
        time.sleep(2)
        start = time.monotonic()
        value = measured()
        end = time.monotonic()
    finally:
        storm.stop.set()
        thread.join(timeout=120)
    return Result(value, storm.between(start, end), end - start)


@dataclass
class Result:
    value: object
    answers: list[tuple[float, int, float]]
    seconds: float

    def login_rate(self) -> float:
        return sum(1 for _, status, _ in self.answers if status == 200) / self.seconds


def main() -> None:
    args = parse_args()
    started = datetime.now(UTC)
    log_dir = WORK_DIR / "logs" / f"storm-{started.strftime('%Y%m%dT%H%M%SZ')}"
    log_dir.mkdir(parents=True)
    idle: list[Measurement] = []
    storms: list[Result] = []
    with ExitStack() as stack:
        if args.database == "postgresql":
            url = stack.enter_context(postgres_database("bench_storm"))
        else:
            directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-storm-"))
            url = f"sqlite:///{directory}/storm.db"
        overrides = server_overrides(args)
        server = stack.enter_context(
            start_live_server(url, log_dir, check_output=False, **overrides)
        )
        target = Target("ours", server.base_url, server.log_path)
        prepare(target)
        usernames = sign_up_storm_users(server.base_url, args.clients)
        print(
            f"server: {server.env['WEB_CONCURRENCY']} workers, bcrypt {BCRYPT_ROUNDS}, "
            f"priority {overrides['PASSWORD_HASH_PRIORITY']}, {args.database}"
        )
        print(f"load average before: {load_average()} ({os.cpu_count()} CPUs)")
        wrk(target, args.warmup, args.connections)
        pid = server.process.pid

        def read_phase() -> Measurement:
            return wrk(target, args.duration, args.connections)

        for number in range(1, args.rounds + 1):
            started_idle = time.monotonic()
            result, split = cast(
                tuple[Measurement, dict[str, float]], measured_with_cpu(pid, read_phase)()
            )
            idle.append(result)
            report(f"round {number} idle", idle[-1])
            reads = result.requests
            print(f"  cpu: {describe_cpu(split, time.monotonic() - started_idle, reads, 0)}")
            storms.append(storm_for(server.base_url, usernames, measured_with_cpu(pid, read_phase)))
            result, split = cast(tuple[Measurement, dict[str, float]], storms[-1].value)
            storms[-1].value = result
            report(f"round {number} storm", result)
            logins = sum(1 for _, status, _ in storms[-1].answers if status == 200)
            print(f"  cpu: {describe_cpu(split, storms[-1].seconds, result.requests, logins)}")

        def server_cpu_during_sleep() -> float:
            before = process_tree_cpu_seconds(pid)
            time.sleep(args.duration)
            return process_tree_cpu_seconds(pid) - before

        alone = storm_for(server.base_url, usernames, server_cpu_during_sleep)
        print(f"load average after: {load_average()}")
    summarize(args, idle, storms, alone)


def summarize(
    args: argparse.Namespace, idle: list[Measurement], storms: list[Result], alone: Result
) -> None:
    during = [cast(Measurement, result.value) for result in storms]
    idle_rps = statistics.median(m.requests_per_second for m in idle)
    idle_p99 = statistics.median(m.p99_ms for m in idle)
    storm_rps = statistics.median(m.requests_per_second for m in during)
    storm_p99 = statistics.median(m.p99_ms for m in during)
    cpu = verify_cpu_seconds(BCRYPT_ROUNDS)
    cpus = os.cpu_count() or 1
    ceiling = cpus / cpu
    print(
        f"\nGET /items/{{id}}, wrk -t1 -c{args.connections} -d{args.duration}s, median of "
        f"{args.rounds} round(s); {args.clients} login clients; {cpus} CPUs"
    )
    print(f"idle:  {idle_rps:.0f} req/s, p99 {idle_p99:.1f} ms")
    print(f"storm: {storm_rps:.0f} req/s, p99 {storm_p99:.1f} ms")
    print(
        f"reads during the storm: {storm_rps / idle_rps:.0%} of idle req/s (goal >= 80%), "
        f"p99 {storm_p99 / idle_p99:.2f}x idle (goal <= 2x)"
    )
    answers = [answer for result in storms for answer in result.answers]
    print(f"logins during the storm: {describe(answers, sum(r.seconds for r in storms))}")
    print(f"logins alone: {describe(alone.answers, alone.seconds)}")
    print(
        f"ceiling: {cpus} CPUs / {cpu * 1000:.0f} ms CPU per verification = {ceiling:.2f}/s; "
        f"logins alone at {alone.login_rate() / ceiling:.0%} of it (goal >= 90%)"
    )
    if cast(float, alone.value):  # the server's CPU seconds in the window (Linux)
        got = cast(float, alone.value) / alone.seconds
        efficiency = alone.login_rate() * cpu / got
        print(
            f"logins alone, CPU: the server got {got:.2f} of {cpus} CPUs (other processes had "
            f"the rest) and spent {efficiency:.0%} of it on verifications: with every CPU, "
            f"{efficiency * ceiling:.2f}/s = {efficiency:.0%} of the ceiling"
        )
    if any(m.errors for m in [*idle, *during]):
        sys.exit("some reads failed: the figures above are not comparable")


def report(phase: str, m: Measurement) -> None:
    print(
        f"{phase:<14} {m.requests_per_second:>8.0f} req/s  p50 {m.p50_ms:.2f} ms"
        f"  p99 {m.p99_ms:.2f} ms  errors {m.errors}"
    )


if __name__ == "__main__":
    main()
