"""Email on accounts: the address, its verification, and password reset by email.

``routes`` is the blueprint; ``verification`` and ``recovery`` are the flows; ``tokens`` stores
the one-time tokens the messages carry, ``addresses`` the address columns of an account, and
``messages`` turns each event into a message in the outbox.
"""
