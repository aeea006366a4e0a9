from __future__ import annotations

from pathlib import Path

import pytest

from bootstrapper.paths import Paths
from bootstrapper.platform.macos import Commands, MacOSPlatform
from tests.support.fake_macos import FakeMac


@pytest.fixture
def fake(tmp_path: Path) -> FakeMac:
    return FakeMac(tmp_path / "fakemac")


@pytest.fixture
def mac(fake: FakeMac, tmp_path: Path) -> MacOSPlatform:
    """The real-Mac platform, its commands pointed at the fakes, its paths under a temp root."""

    def lookup(name: str) -> tuple[int, int, Path] | None:
        return {"erikberglund": (501, 20, Path("/Users/erikberglund"))}.get(name)

    root = tmp_path / "mac"
    root.mkdir()
    return MacOSPlatform(Paths(root=root), commands=Commands.under(fake.bin), user_lookup=lookup)


@pytest.fixture(scope="session")
def pkgs(testdata: Path) -> Path:
    return testdata / "pkgs"
