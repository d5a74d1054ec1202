"""The reference-turn IUT: only its iut.toml lives here (conformance/adapters/registry.py reads it)."""
