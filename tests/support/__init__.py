"""Test support: real channels, packages and servers for tests."""
