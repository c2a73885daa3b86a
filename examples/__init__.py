"""Example applications that work with the service."""
