"""Process lifecycle under Hypercorn: how a worker settles in once its app is built.

**Stopping.** With ``--workers N`` Hypercorn's master process turns SIGTERM into a shutdown
event that its workers poll, after which each worker stops accepting connections and finishes
the requests in flight (``graceful_timeout``). The workers themselves install no SIGTERM
handler, so a SIGTERM sent to them directly kills them mid-request. Heroku (and ``kill`` on a
process group, and most process supervisors) send SIGTERM to *every* process of the dyno at
once: without this module, requests in flight at a deploy or restart are cut off. A worker
therefore ignores SIGTERM and leaves the decision to the master, which always receives it too.

**Garbage collection.** Everything built at start-up (modules, the app, its routes and schemas,
SQLAlchemy's metadata) lives as long as the worker, yet each full collection of the cyclic
garbage collector walked all of it again, and those pauses set the tail latency under load
(figures in docs/benchmark.md). A worker therefore collects once and freezes what is left
(``gc.freeze``, the gc module's documented remedy), so later collections only look at objects
made while serving.
"""

from __future__ import annotations

import gc
import multiprocessing
import signal
import threading
from types import FrameType

from service.web.http_edge import Draining


async def settle() -> None:
    """``before_serving`` hook: both rules of the module doc, in Hypercorn workers only.

    A process with no multiprocessing parent (the development server with ``--workers 0``,
    tests) is left as it is: tests build many apps, which frozen would never be collected.
    """
    if multiprocessing.parent_process() is None:
        return
    leave_sigterm_to_the_master()
    freeze_startup_objects()


def freeze_startup_objects() -> None:
    """Collect, then move every object alive now out of the garbage collector's sight."""
    gc.collect()
    gc.freeze()


def leave_sigterm_to_the_master() -> None:
    """On SIGTERM only start draining (see the module doc), unless off the main thread (no
    handlers there)."""
    if threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGTERM, start_draining)


def start_draining(signum: int, frame: FrameType | None) -> None:
    """The SIGTERM handler of a worker: the process goes on; its responses say close."""
    Draining.now = True
