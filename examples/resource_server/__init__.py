"""A resource server that accepts the service's access tokens: ``create_app`` builds it."""

from examples.resource_server.app import create_app

__all__ = ["create_app"]
