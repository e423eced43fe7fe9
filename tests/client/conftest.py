"""Fixtures for the client layer's tests: a kubeling `Client` for the module's real server
(the `cluster` fixture of tests/conftest.py), and a fresh namespace per test made through it."""

from async_client_fixtures import client, ns

__all__ = ["client", "ns"]
