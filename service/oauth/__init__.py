"""The standard OAuth 2.0 endpoints: server metadata, token revocation and introspection."""
