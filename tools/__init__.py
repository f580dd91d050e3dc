"""Test and bench tooling shared by tests/ and bench/ (not part of the app)."""
