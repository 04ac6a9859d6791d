"""Shared fixtures: the real Heat server (tests/heatserver)."""

from tests.heatserver import heat_server  # noqa: F401
