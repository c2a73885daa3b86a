"""Async JWT-auth + CRUD HTTP API service: ``create_app`` is the one entry point."""

from service.app import create_app

__all__ = ["create_app"]
