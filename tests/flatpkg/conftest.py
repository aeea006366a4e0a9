from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def pkgs(testdata: Path) -> Path:
    """The real Apple-built packages (and one xar that is not a package) in tests/data/pkgs/."""
    return testdata / "pkgs"
