"""Framework-free security rules: password hashing and policy, JWT issue and verification."""
