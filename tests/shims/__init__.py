"""Tiny misbehaving stdio shims for the StdioAdapter's self-tests (each is a standalone script)."""
