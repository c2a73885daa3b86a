"""Email on accounts: the address, its verification, and password reset by email.

``routes`` is the blueprint; ``verification``, ``claims`` and ``recovery`` are the flows (links,
who may have an address, reset); ``tokens`` stores the one-time tokens the messages carry,
``addresses`` the address columns of accounts, and ``messages`` turns each event into a
message in the outbox.
"""
