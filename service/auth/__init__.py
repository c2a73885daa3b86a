"""The auth blueprint: accounts, logins, refresh-token rotation and bearer authentication."""
