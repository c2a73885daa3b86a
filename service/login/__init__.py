"""Login: ``POST /login`` (the password grant) and ``POST /login/mfa`` (its second step).

A login joins three features: the account's password check (``service.accounts``), the second
factor (``service.mfa``), then a new session and device credential (``service.sessions``). It is
the one package above all three, because each of them is needed by the others too: the
accounts and second-factor routes authenticate with the sessions' bearer check and end
sessions, and the second factor asks for the account's password again. Its routes are on the
sessions' blueprint ("auth"), so their endpoint names (``auth.login``, ``auth.login_mfa``, the
keys of their request limits) are what they were.
"""
