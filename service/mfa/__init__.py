"""The TOTP second factor (RFC 6238): enrolment, status and removal under ``/me/mfa/totp``,
and the login's second step (``login_step``; its route, ``/login/mfa``, is ``service.login``'s).

``routes`` and ``schemas`` speak HTTP; ``flows`` (the factor) and ``login_step`` (the
``mfa_token``'s challenge and its spending) are the flows; ``queries`` holds the SQL and the
account's credential state. It imports ``service.accounts`` (the password asked again) and
``service.sessions`` (bearer authentication, ending sessions); ``service.login`` imports it.
"""
