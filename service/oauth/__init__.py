"""The standard OAuth 2.0 endpoints: server metadata, token revocation and introspection, and
the JWK Set of the keys that verify the service's tokens."""
