"""Framework-free security rules: password hashing and policy, the token signers and their
verification (``tokens``), keys, roles, TOTP, security events, OAuth metadata and clients."""
