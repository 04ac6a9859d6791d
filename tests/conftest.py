"""Shared fixtures: the real Heat server (tests/heatserver), an operator's HOME."""

from pathlib import Path

import pytest

from tests.heatserver import heat_server  # noqa: F401
from tests.helpers import operator_env


@pytest.fixture
def operator_home(tmp_path_factory: pytest.TempPathFactory,
                  monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty HOME, set for the test with no OS_* variables nor
    OVERCLOUD_STACK_NAME: the environment tests.helpers.cli then runs in."""
    home = tmp_path_factory.mktemp("home")
    for name, value in operator_env(home).items():
        if value is None:
            monkeypatch.delenv(name)
        else:
            monkeypatch.setenv(name, value)
    return home
