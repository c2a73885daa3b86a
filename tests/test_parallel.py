"""Running on xdist workers: the suite's plugin (``tests/parallel.py``) and kept fixtures.

A small suite of sleeping tests runs under ``pytest -n 2`` in a process of its own; each test
writes when it started and ended, and the intervals show what ran beside what.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from tests.helpers import Kept
from tests.parallel import Turns

ROOT = Path(__file__).resolve().parent.parent
ORDINARY = 12

SUITE = textwrap.dedent(
    f"""
    import os, time
    import pytest

    def run(name):
        started = time.monotonic()
        time.sleep(0.3)
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        with open(os.environ["INTERVALS"], "a") as log:
            log.write(f"{{name}} {{worker}} {{started}} {{time.monotonic()}}\\n")

    @pytest.mark.parametrize("n", range({ORDINARY // 2}))
    def test_ordinary_before(n):
        run(f"ordinary-before-{{n}}")

    @pytest.mark.serial
    def test_serial():
        run("serial")

    @pytest.mark.parametrize("n", range({ORDINARY // 2}))
    def test_ordinary_after(n):
        run(f"ordinary-after-{{n}}")
    """
)


Interval = tuple[str, float, float]


def run_suite(tmp_path: Path, *options: str) -> dict[str, Interval]:
    """Run ``SUITE`` with ``options``; each test's (worker, start, end), by name."""
    (tmp_path / "test_suite.py").write_text(SUITE)
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    serial: alone\n")
    intervals = tmp_path / "intervals"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "xdist", "-p", "tests.parallel", *options],
        cwd=tmp_path,
        # Only the plugins it needs: the environment's others take seconds to import per worker.
        env={
            **os.environ,
            "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
            "PYTHONPATH": str(ROOT),
            "INTERVALS": str(intervals),
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    found = {}
    for line in intervals.read_text().splitlines():
        name, worker, started, ended = line.split()
        found[name] = (worker, float(started), float(ended))
    assert len(found) == ORDINARY + 1, found
    return found


def overlap(first: Interval, second: Interval) -> bool:
    return first[1] < second[2] and second[1] < first[2]


def test_a_serial_test_runs_first_and_alone_while_the_others_share_the_workers(
    tmp_path: Path,
) -> None:
    found = run_suite(tmp_path, "-n", "2")
    serial = found.pop("serial")
    assert not [name for name, times in found.items() if overlap(serial, times)]
    same_worker = [times for times in found.values() if times[0] == serial[0]]
    assert serial[1] < min(started for _, started, _ in same_worker), "serial tests come first"
    ordinary = list(found.values())
    assert any(overlap(a, b) for i, a in enumerate(ordinary) for b in ordinary[i + 1 :]), (
        "ordinary tests run side by side"
    )


def test_without_xdist_the_mark_changes_nothing(tmp_path: Path) -> None:
    found = run_suite(tmp_path, "-n", "0")
    names = sorted(found, key=lambda name: found[name][1])
    assert names.index("serial") == ORDINARY // 2, "pytest's own order"


def test_tests_that_ask_after_a_waiting_serial_test_wait_behind_it(tmp_path: Path) -> None:
    """A serial test that waits for a running test holds the gate: a stream of later tests
    cannot keep it waiting for ever."""
    running, serial, later = Turns(tmp_path), Turns(tmp_path), Turns(tmp_path)
    order: list[str] = []
    started, finish, later_done = threading.Event(), threading.Event(), threading.Event()

    def a_running_test() -> None:
        with running.turn(alone=False):
            started.set()
            finish.wait(10)
            order.append("running")

    def a_serial_test() -> None:
        with serial.turn(alone=True):
            order.append("serial")

    def a_later_test() -> None:
        with later.turn(alone=False):
            order.append("later")
        later_done.set()

    threads = [threading.Thread(target=a_running_test)]
    threads[0].start()
    assert started.wait(10)
    threads.append(threading.Thread(target=a_serial_test))
    threads[1].start()
    wait_until_gate_is_held(tmp_path / "gate")
    threads.append(threading.Thread(target=a_later_test))
    threads[2].start()
    assert not later_done.wait(0.5), "a later test went in before the waiting serial test"
    finish.set()
    for thread in threads:
        thread.join(10)
    for turns in (running, serial, later):
        turns.close()
    assert order == ["running", "serial", "later"]


def wait_until_gate_is_held(path: Path) -> None:
    deadline = time.monotonic() + 10
    with path.open("ab") as gate:
        while True:
            try:
                fcntl.flock(gate, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return
            fcntl.flock(gate, fcntl.LOCK_UN)
            assert time.monotonic() < deadline, "the serial test never took the gate"
            time.sleep(0.01)


def test_a_kept_resource_is_made_once_and_ended_with_the_session() -> None:
    """A worker that gets SQLite and PostgreSQL tests in turns migrates each database once."""
    made, ended = [], []

    @contextmanager
    def database() -> Iterator[str]:
        made.append("made")
        yield "sqlite:///one.db"
        ended.append("ended")

    with ExitStack() as session:
        kept = Kept(session)
        for _ in range(3):  # sqlite, postgresql, sqlite...: the first is not made again
            assert kept.get("database-sqlite", database) == "sqlite:///one.db"
        assert (made, ended) == (["made"], [])
    assert ended == ["ended"]
