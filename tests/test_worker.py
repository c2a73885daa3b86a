"""Worker settling (``service/web/worker.py``): only Hypercorn's worker processes freeze their heap.

A worker's start-up objects are frozen out of the garbage collector's sight (no full-heap
pauses while serving); a process without a multiprocessing parent, like this test run, which
builds an app per test, must never be.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import signal
from multiprocessing.connection import Connection

from service.web import worker
from service.web.http_edge import Draining


def _settle_and_report(results: Connection) -> None:
    asyncio.run(worker.settle())
    signal.raise_signal(signal.SIGTERM)  # survived: it only marks the worker as draining
    results.send((gc.get_freeze_count(), Draining.now))


def test_a_worker_process_freezes_its_start_up_objects_and_only_drains_on_sigterm() -> None:
    receiver, sender = multiprocessing.get_context("spawn").Pipe(duplex=False)
    process = multiprocessing.get_context("spawn").Process(
        target=_settle_and_report, args=(sender,)
    )
    process.start()
    frozen, draining = receiver.recv()
    process.join(timeout=30)
    assert process.exitcode == 0
    assert frozen > 1000
    assert draining


def test_a_process_without_a_parent_is_left_as_it_is() -> None:
    before = gc.get_freeze_count()
    handler = signal.getsignal(signal.SIGTERM)
    asyncio.run(worker.settle())
    assert gc.get_freeze_count() == before == 0
    assert signal.getsignal(signal.SIGTERM) == handler
