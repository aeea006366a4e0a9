from __future__ import annotations

from pathlib import Path

import pytest

TESTDATA = Path(__file__).resolve().parents[1].parent / "shared" / "testdata"


@pytest.fixture(scope="session")
def testdata() -> Path:
    """The shared real-world test data (real packages, manifests, macOS command outputs)."""
    if not TESTDATA.is_dir():
        pytest.fail(f"shared test data not found at {TESTDATA}: the repo must sit beside ../shared")
    return TESTDATA
