"""Password hashing (libpass ``bcrypt_sha256``) on a bounded, low-priority pool, and the policy.

``bcrypt_sha256`` pre-hashes the password with HMAC-SHA256 before bcrypt, so passwords longer
than bcrypt's 72-byte limit are never silently truncated: every character counts. Hashing is
slow on purpose (a good part of a second of CPU at the default 12 rounds).

**Where it runs.** Every hash and verification (login, the dummy check for an unknown user,
signup, password change) is a job on the app's one ``HashingPool``: a fixed number of threads
(``PASSWORD_HASH_THREADS``, by default one per CPU; the ``bcrypt`` package releases the GIL,
so threads use every core without a process pool's start-up and pickling), never the event
loop and never an unbounded executor. The threads run at the lowest CPU priority
(``PASSWORD_HASH_PRIORITY``, Linux ``SCHED_IDLE`` by default): when requests that need the
CPU for a millisecond are waiting, the kernel runs them first and hashing takes what is left,
so a login storm cannot push reads aside. Without other work hashing still gets every core.

**Admission.** A job that would wait longer than ``PASSWORD_QUEUE_WAIT`` seconds for a thread
is refused at once with ``HashingBusy`` (503 with ``Retry-After``) instead of queueing: a
client told to come back costs nothing, a client left waiting holds a connection and gets its
answer after it gave up. The figures behind these choices are in docs/benchmark.md
("Login storm") and docs/design.md.

The policy (NIST SP 800-63B section 3.1.1.2): 8 to 1024 characters, not the username, and not
one of the 20,000 most common passwords. That list ships with the package
(``common-passwords.txt.gz``, from Django, BSD licence: see ``common-passwords.LICENSE``) and
is read once, on first use.
"""

from __future__ import annotations

import asyncio
import gzip
import math
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from collections.abc import Set as AbstractSet
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, Literal, TypeVar

from passlib.context import CryptContext

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024
COMMON_PASSWORDS_FILE = "common-passwords.txt.gz"

SAME_AS_USERNAME = "must not be the same as the username"
TOO_COMMON = "is one of the most commonly used passwords; choose another"
#: Each rule in a sentence of its own, for the top of an answer (a 422's ``detail``): the field
#: messages above finish "password ...", these say what is wrong to someone who reads only them.
RULE_SENTENCES = {
    SAME_AS_USERNAME: "The password must not be the same as the username.",
    TOO_COMMON: "The password is too common: choose another one (it is on the list of the "
    "20,000 most common passwords).",
}

T = TypeVar("T")


class CommonPasswords(AbstractSet[str]):
    """The common-password list as one newline-separated text: a set of its lines.

    A frozenset of the ~20,000 entries would take ~2 MiB of every worker (a string object
    each, and the hash table); the text takes ~160 KiB, and a lookup, a substring search
    done once per sign-up or password change, costs well under a millisecond.
    """

    def __init__(self, entries: Iterable[str]) -> None:
        unique = sorted(set(entries))
        self._count = len(unique)
        self._text = "\n" + "\n".join(unique) + "\n"

    def __contains__(self, entry: object) -> bool:
        return isinstance(entry, str) and "\n" not in entry and f"\n{entry}\n" in self._text

    def __iter__(self) -> Iterator[str]:
        return iter(self._text[1:-1].split("\n"))

    def __len__(self) -> int:
        return self._count


@cache
def common_passwords() -> CommonPasswords:
    """The shipped list of common passwords, lower-cased (~20,000 entries, read once)."""
    data = resources.files("service.security").joinpath(COMMON_PASSWORDS_FILE).read_bytes()
    lines = gzip.decompress(data).decode("utf-8").splitlines()
    return CommonPasswords(line.strip().lower() for line in lines if line.strip())


def is_common(password: str) -> bool:
    """Whether ``password`` is on the common list, ignoring case and surrounding spaces."""
    return password.strip().lower() in common_passwords()


def is_username(password: str, username: str) -> bool:
    """Whether ``password`` is the username in any letter case."""
    return password.casefold() == username.casefold()


def password_problem(password: str, username: str | None = None) -> str | None:
    """Why ``password`` is refused (a message for the ``password`` field), or None if it is fine.

    Length is checked by the schemas; this adds the rules that need the username or the list.
    """
    if username is not None and is_username(password, username):
        return SAME_AS_USERNAME
    if is_common(password):
        return TOO_COMMON
    return None


@dataclass(frozen=True, slots=True)
class Verification:
    """The outcome of checking a password; ``new_hash`` is set when the stored hash is outdated."""

    ok: bool
    new_hash: str | None = None


class HashingBusy(Exception):
    """The hashing queue is longer than a password check may wait: refuse it now, not later.

    ``retry_after`` is the whole number of seconds (at least 1) until the queue is expected to
    have drained enough; the web layer turns this into 503 with ``Retry-After``.
    """

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"password hashing is saturated; retry after {retry_after} s")
        self.retry_after = retry_after


#: How hashing threads are scheduled (see the module doc): ``idle`` is Linux's ``SCHED_IDLE``,
#: ``low`` the lowest nice value (19), ``normal`` the priority the process has.
Priority = Literal["idle", "low", "normal"]

#: Weight of the newest job in the running average of one job's wall time.
_SMOOTHING = 0.2


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def lower_priority(priority: Priority) -> None:
    """Lower the calling thread's CPU priority (a thread-pool initializer).

    On Linux scheduling policy and nice value are per thread: ``pid`` 0 in
    ``sched_setscheduler`` and a thread's own id in ``setpriority`` touch that thread only.
    Lowering needs no privilege. Where the OS has neither call the thread keeps its priority.
    """
    if priority == "normal":
        return
    if priority == "idle" and hasattr(os, "sched_setscheduler") and hasattr(os, "SCHED_IDLE"):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        return
    if hasattr(os, "setpriority"):
        with suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


@dataclass(frozen=True, slots=True)
class HashingStats:
    """What the hashing pool has done so far, for tests and diagnostics."""

    threads: int
    pending: int
    completed: int
    refused: int


class HashingPool:
    """A fixed number of low-priority threads with admission control in front of them.

    A job is admitted only if the jobs ahead of it are expected to be done within ``max_wait``
    seconds (jobs ahead / threads x the running average of one job's wall time); otherwise
    ``HashingBusy`` is raised at once. The average is of wall time, not CPU time, so when the
    threads get little CPU (other work comes first: that is their priority) the estimate grows
    and admission tightens by itself. A job that still has not started by its deadline (the
    wait it was promised plus one job) is dropped with ``HashingBusy`` instead of running late.
    """

    def __init__(
        self, threads: int, *, max_wait: float, priority: Priority, job_seconds: float
    ) -> None:
        self.threads = threads
        self.max_wait = max_wait
        self.priority = priority
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._job_seconds = job_seconds
        self._pending = 0
        self._completed = 0
        self._refused = 0

    def stats(self) -> HashingStats:
        with self._lock:
            return HashingStats(self.threads, self._pending, self._completed, self._refused)

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` on a hashing thread; ``HashingBusy`` if the queue is too long."""
        with self._lock:
            wait = self._expected_wait(self._pending)
            if wait > self.max_wait:
                self._refused += 1
                raise HashingBusy(_whole_seconds(wait))
            self._pending += 1
            # A job that finds a free thread is never dropped; a queued one is, if it is late.
            deadline = time.monotonic() + self.max_wait + self._job_seconds if wait else None
        try:
            future = self._running_executor().submit(self._job, deadline, function, *args)
        except BaseException:
            with self._lock:
                self._pending -= 1
            raise
        # The job runs to its end even if the caller goes away: the count stays right.
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        """Let the threads end after their current job; the next job starts new ones (an app
        may be served again after it stopped, as tests do)."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False)

    def _running_executor(self) -> ThreadPoolExecutor:
        """The executor, made on first use (its threads start as jobs arrive)."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=self.threads,
                thread_name_prefix="password-hash",
                initializer=lower_priority,
                initargs=(self.priority,),
            )
        return self._executor

    def _expected_wait(self, ahead: int) -> float:
        """Seconds until a job submitted now starts, with ``ahead`` jobs queued or running."""
        return max(0, ahead + 1 - self.threads) * self._job_seconds / self.threads

    def _job(self, deadline: float | None, function: Callable[..., T], *args: Any) -> T:
        started = time.monotonic()
        try:
            if deadline is not None and started > deadline:
                with self._lock:
                    self._refused += 1
                    wait = self._expected_wait(self._pending - 1)
                raise HashingBusy(_whole_seconds(wait))
            result = function(*args)
            elapsed = time.monotonic() - started
            with self._lock:
                self._job_seconds += _SMOOTHING * (elapsed - self._job_seconds)
                self._completed += 1
            return result
        finally:
            with self._lock:
                self._pending -= 1


def _whole_seconds(seconds: float) -> int:
    return max(1, math.ceil(seconds))


@dataclass
class PasswordHasher:
    """Hash and verify passwords at the configured bcrypt cost, on the bounded hashing pool.

    ``threads`` 0 means one per CPU the process may use. ``max_wait`` and ``priority``: see
    ``HashingPool``.
    """

    rounds: int
    threads: int = 0
    max_wait: float = 2.0
    priority: Priority = "normal"
    _context: CryptContext = field(init=False, repr=False)
    _dummy_hash: str = field(init=False, repr=False)
    _pool: HashingPool = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # New hashes use ``rounds``; only hashes below it are re-hashed at login. A stronger
        # hash is kept: during a rolling deploy that lowers the cost, instances would otherwise
        # rewrite each other's hashes back and forth.
        self._context = CryptContext(
            schemes=["bcrypt_sha256"],
            bcrypt_sha256__default_rounds=self.rounds,
            bcrypt_sha256__min_rounds=self.rounds,
        )
        # Made at start-up, at the configured cost, so every dummy check costs what a real one
        # does; its time is the pool's first estimate of one job.
        started = time.monotonic()
        self._dummy_hash = self._context.hash(secrets.token_urlsafe(16))
        self._pool = HashingPool(
            self.threads or available_cpus(),
            max_wait=self.max_wait,
            priority=self.priority,
            job_seconds=time.monotonic() - started,
        )

    def stats(self) -> HashingStats:
        return self._pool.stats()

    async def hash(self, password: str) -> str:
        return await self._pool.run(self._context.hash, password)

    async def verify(self, password: str, stored_hash: str) -> Verification:
        """Check ``password``; when the hash used fewer rounds than configured, re-hash it."""
        ok, new_hash = await self._pool.run(self._context.verify_and_update, password, stored_hash)
        return Verification(ok=bool(ok), new_hash=new_hash if ok else None)

    async def verify_nothing(self, password: str) -> None:
        """Spend one verification's time for a username that does not exist.

        Without it, a login for an unknown user would answer a bcrypt check faster than a wrong
        password, telling an attacker which usernames exist. It is a job like any other on the
        same pool: the same queue, the same admission (a full queue refuses it as it refuses a
        real check, so a 503 tells nothing either), the same priority.
        """
        await self._pool.run(self._context.verify, password, self._dummy_hash)

    def close(self) -> None:
        self._pool.close()
