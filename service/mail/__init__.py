"""Email: the transactional outbox, its templates and the SMTP sender.

``outbox.enqueue`` writes a rendered message in the caller's write transaction; the sender
(``sender.py``), in each web worker or in ``service send-mail``, delivers committed messages
over SMTP (``smtp.py``) or, in development without ``SMTP_URL``, to the log (``transport.py``).
"""
