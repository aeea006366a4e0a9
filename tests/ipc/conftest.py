from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bootstrapper.paths import Paths


@pytest.fixture
def sandbox(tmp_path: Path) -> Paths:
    """A simulated system root in the test's own folder (its socket path may exceed the AF_UNIX cap)."""
    return Paths(root=tmp_path / "root")


@pytest.fixture
def as_root() -> None:
    if os.getuid() != 0:
        pytest.skip("needs root: only root can run a client or a daemon as another uid")


@pytest.fixture(autouse=True)
def _no_asyncio_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """A task that died unnoticed (the loop logs it and carries on) fails the test that caused it."""
    yield
    errors = [
        r.getMessage()
        for r in caplog.get_records("call")
        if r.name == "asyncio" and r.levelno >= logging.ERROR
    ]
    assert not errors, errors
