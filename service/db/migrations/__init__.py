"""Alembic migrations of the service's schema, and the function that applies them."""
