"""The mail sender as a process of its own: ``service send-mail``, the Procfile's ``worker:``.

It runs the same sender as a web worker (``service.mail.sender``) on a database pool of its
own until SIGTERM (the platform stopping the dyno) or SIGINT (Ctrl-C); then it finishes the
message in flight and exits. With this process running, set ``MAIL_SEND_IN_WEB=false`` so the
web workers leave sending to it, or keep both: leases keep them from sending a row twice.
Messages queued by the web process are found by polling (``MAIL_POLL_INTERVAL``).
"""

from __future__ import annotations

import asyncio
import signal

from service.config import Settings
from service.db import Database
from service.mail.sender import MailSender
from service.mail.transport import mail_log


async def send_until_stopped(settings: Settings) -> None:
    """Run a sender until the process is asked to stop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signal_number, stop.set)
    db = Database(settings)
    sender = MailSender.from_settings(settings, db)
    await sender.start()
    mail_log.info("mail sender started")
    try:
        await stop.wait()
    finally:
        await sender.stop()
        await db.dispose()
        mail_log.info("mail sender stopped")
