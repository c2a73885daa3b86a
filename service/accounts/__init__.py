"""Accounts: signup, the caller's account (``/me``, password change, deletion), the login's
password check, and email (the address, its verification, password reset by email).

``routes`` is the blueprint and ``schemas`` its models; ``flows`` (registration, the password
check at login, password change and confirmation, deletion), ``verification``, ``claims`` and
``recovery`` are the flows (links, who may have an address, reset); ``queries`` holds the SQL
of the ``users`` table, ``addresses`` its address columns, ``tokens`` the one-time tokens the
messages carry, and ``messages`` turns each event into a message in the outbox.

It imports ``service.sessions`` (bearer authentication, ending sessions); ``service.mfa``,
``service.login`` and ``service.admin`` import it.
"""
