"""Process lifecycle under Hypercorn: let the master process decide when workers stop.

With ``--workers N`` Hypercorn's master process turns SIGTERM into a shutdown event that its
workers poll, after which each worker stops accepting connections and finishes the requests in
flight (``graceful_timeout``). The workers themselves install no SIGTERM handler, so a SIGTERM
sent to them directly kills them mid-request. Heroku (and ``kill`` on a process group, and most
process supervisors) send SIGTERM to *every* process of the dyno at once: without this module,
requests in flight at a deploy or restart are cut off. A worker therefore ignores SIGTERM and
leaves the decision to the master, which always receives it too.
"""

from __future__ import annotations

import multiprocessing
import signal
import threading


def leave_sigterm_to_the_master() -> None:
    """In a worker process started by Hypercorn's master, ignore SIGTERM (see the module doc).

    Does nothing in a process that has no multiprocessing parent (the development server with
    ``--workers 0``, tests), nor off the main thread, where signal handlers cannot be set.
    """
    if multiprocessing.parent_process() is None:
        return
    if threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
