"""Login sessions: the session store, refresh rotation, logout, bearer authentication.

The lowest feature package: accounts, the second factor, OAuth, items and admin all import it
(to authenticate the caller or to end sessions), and it imports none of them. So the routes
that need the account's password and the second factor, ``/login`` and ``/login/mfa``, are in
``service.login``, one level up, on this package's blueprint ("auth"), as signup and ``/me``
(``service.accounts``) and the JWK Set (``service.oauth``) are.

``routes`` (``/refresh``, ``/logout``, ``/sessions``) and ``token_endpoint`` (what ``/login``
shares with ``/refresh``) speak HTTP; ``rotation`` (start a session, spend a refresh token) and
``logout`` (end sessions) are the flows; ``rules`` decides with no SQL and no HTTP; ``queries``
holds the SQL. ``bearer`` authenticates protected routes, ``refresh_cookie`` and ``devices``
carry the refresh token and the device credential in cookies.
"""
