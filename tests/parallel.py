"""How the suite shares the machine's cores under pytest-xdist: the ``serial`` mark, and order.

``./scripts/test`` runs the suite on two xdist workers. Two things keep that fast and honest:

- **``@pytest.mark.serial``: a test that runs while no other test does.** A test whose
  assertion compares times (an unknown user's login against a wrong password's) or bounds
  them with a small margin, or that loads both cores itself (a frozen or killed PostgreSQL
  under load), would measure the other worker's test too. A serial test waits until the other
  workers are between tests, and they wait until it is done: it runs as in a serial run.
  The workers of a run share a readers-writer lock, two ``flock`` files in a directory the
  controller makes for the run. Every test holds ``room`` shared; a serial test holds it
  exclusively. A serial test also holds ``gate`` from the moment it asks, and every test
  passes through ``gate`` before it takes ``room``: tests that come later wait behind the
  serial test, so a stream of them cannot keep it waiting for ever. The wait is outside the
  test's phases: ``--durations`` and ``PYTEST_TIMEOUT`` do not count it.
- **Serial tests first, then the end-to-end ones, then the rest** (each group in pytest's
  order). A serial test asked for while the other worker is in a long test would leave its
  own worker idle until that test ends, so they come first, before any long test started;
  the long tests (``e2e``: real servers, schemathesis, browsers) come next, so that the end of
  the run is many short tests that both workers share, never one long test with the other
  worker idle beside it.

Without xdist (``-n 0``, ``-p no:xdist``) nothing is locked and the order is pytest's own.
"""

from __future__ import annotations

import fcntl
import shutil
import tempfile
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

#: The key of ``workerinput`` under which the controller names the run's lock directory.
LOCK_DIRECTORY = "serial_lock_directory"
#: On the controller: the lock directory it made, removed when the run ends.
_directory_key = pytest.StashKey[Path]()
_turns_key = pytest.StashKey["Turns"]()


class Turns:
    """The readers-writer lock of one run's workers, in ``directory`` (see the docstring)."""

    def __init__(self, directory: Path) -> None:
        self._gate = (directory / "gate").open("ab")
        self._room = (directory / "room").open("ab")

    @contextmanager
    def turn(self, *, alone: bool) -> Iterator[None]:
        """Hold ``room``, exclusively if ``alone``, for the block; in through ``gate``."""
        fcntl.flock(self._gate, fcntl.LOCK_EX)
        try:
            fcntl.flock(self._room, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
            try:
                if not alone:
                    fcntl.flock(self._gate, fcntl.LOCK_UN)  # the next test may ask now
                yield
            finally:
                fcntl.flock(self._room, fcntl.LOCK_UN)
        finally:
            fcntl.flock(self._gate, fcntl.LOCK_UN)  # a no-op if already let go

    def close(self) -> None:
        self._gate.close()
        self._room.close()


def _workerinput(config: pytest.Config) -> dict[str, Any] | None:
    """What the controller handed this xdist worker; None outside a worker."""
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    return workerinput


def pytest_configure(config: pytest.Config) -> None:
    workerinput = _workerinput(config)
    if workerinput is not None and LOCK_DIRECTORY in workerinput:
        config.stash[_turns_key] = Turns(Path(workerinput[LOCK_DIRECTORY]))


def pytest_unconfigure(config: pytest.Config) -> None:
    turns = config.stash.get(_turns_key, None)
    if turns is not None:
        turns.close()
    directory = config.stash.get(_directory_key, None)
    if directory is not None:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """On the controller, for each worker it starts: the run's lock directory, made once."""
    config: pytest.Config = node.config
    directory = config.stash.get(_directory_key, None)
    if directory is None:
        directory = Path(tempfile.mkdtemp(prefix="pytest-serial-"))
        config.stash[_directory_key] = directory
    node.workerinput[LOCK_DIRECTORY] = str(directory)


def _rank(item: pytest.Item) -> int:
    if item.get_closest_marker("serial") is not None:
        return 0
    if item.get_closest_marker("e2e") is not None:
        return 1
    return 2


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On each worker (they must agree): serial tests, then end-to-end ones, then the rest."""
    if _workerinput(config) is not None:
        items.sort(key=_rank)  # stable: pytest's order (fixtures grouped) within each rank


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    turns = item.config.stash.get(_turns_key, None)
    if turns is None:
        return (yield)
    with turns.turn(alone=item.get_closest_marker("serial") is not None):
        return (yield)
