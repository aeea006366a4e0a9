from __future__ import annotations

from pathlib import Path

import pytest

from pkg.tooling.payload import Payload, assemble

FAKE = Path(__file__).resolve().parents[1] / "support" / "fake_launchctl.py"


@pytest.fixture(scope="session")
def payload(tmp_path_factory: pytest.TempPathFactory) -> Payload:
    """The payload exactly as `make pkg-payload` assembles it (read-only: copy it to tamper)."""
    return assemble(tmp_path_factory.mktemp("payload") / "pkg")


@pytest.fixture
def fresh_payload(tmp_path: Path) -> Payload:
    """A payload a test may break."""
    return assemble(tmp_path / "pkg")


@pytest.fixture(scope="session")
def samples(testdata: Path) -> Path:
    return testdata / "macos"
