"""The reference IUT: only its iut.toml lives here (conformance/adapters/registry.py reads it)."""
