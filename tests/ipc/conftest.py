from __future__ import annotations

import os
from pathlib import Path

import pytest

from bootstrapper.paths import Paths


@pytest.fixture
def sandbox(tmp_path: Path) -> Paths:
    """A simulated system root; its socket path is usually too long for AF_UNIX, on purpose."""
    return Paths(root=tmp_path / "root")


@pytest.fixture
def as_root() -> None:
    if os.getuid() != 0:
        pytest.skip("needs root: only root can run a client or a daemon as another uid")
