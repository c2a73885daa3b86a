"""The admin blueprint: accounts and their sessions, for active admins only (``/admin``)."""
