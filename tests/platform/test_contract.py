"""One contract, two platforms: where the simulated Mac and the real one (on fakes) must agree."""

from __future__ import annotations

import asyncio
import plistlib
from pathlib import Path

import pytest

from bootstrapper.errors import ServiceNotLoadedError
from bootstrapper.paths import Paths
from bootstrapper.platform.base import Platform
from bootstrapper.platform.macos import Commands, MacOSPlatform
from bootstrapper.platform.sandbox import SandboxPlatform
from tests.support.fake_macos import FakeMac
from tests.support.pkgwriter import build_component_pkg


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


@pytest.fixture(params=["sandbox", "macos"])
def platform(request: pytest.FixtureRequest, tmp_path: Path) -> Platform:
    root = tmp_path / "root"
    root.mkdir()
    if request.param == "sandbox":
        return SandboxPlatform(Paths(root=root), arch="arm64", os_version="14.6")
    fake = FakeMac(tmp_path / "fakemac")
    return MacOSPlatform(Paths(root=root), commands=Commands.under(fake.bin))


@pytest.fixture
def package(tmp_path: Path) -> Path:
    return build_component_pkg(tmp_path / "c.pkg", "com.example.contract", "1.2.3-4", {"opt/x": b"x"})


def _plist(folder: Path, label: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{label}.plist"
    path.write_bytes(plistlib.dumps({"Label": label, "ProgramArguments": ["/usr/bin/true"]}))
    return path


def test_an_install_leaves_a_receipt(platform: Platform, package: Path) -> None:
    assert run(platform.receipt("com.example.contract")) is None
    seen: list[float] = []
    result = run(platform.install_pkg(package, lambda p, _s: seen.append(p), timeout=60))
    assert result.identifiers == ("com.example.contract",) and not result.restart_required
    assert seen and seen[-1] == 100.0
    receipt = run(platform.receipt("com.example.contract"))
    assert receipt is not None
    assert (receipt.pkgid, receipt.version, receipt.location, receipt.volume) == (
        "com.example.contract",
        "1.2.3-4",
        "",
        "/",
    )


def test_forget_removes_the_receipt_and_is_idempotent(platform: Platform, package: Path) -> None:
    run(platform.install_pkg(package, timeout=60))
    assert run(platform.forget_receipt("com.example.contract")) is True
    assert run(platform.receipt("com.example.contract")) is None
    assert run(platform.forget_receipt("com.example.contract")) is False


def test_bootout_of_what_is_not_loaded_is_success(platform: Platform) -> None:
    assert run(platform.bootout("system", "org.example.nothing")) is False
    assert run(platform.bootout("gui/501", "org.example.nothing")) is False


def test_bootstrap_twice_then_bootout_twice(platform: Platform, tmp_path: Path) -> None:
    plist = _plist(tmp_path / "LaunchDaemons", "org.example.contract")
    assert run(platform.bootstrap("system", plist)) is True
    assert run(platform.bootstrap("system", plist)) is False
    assert run(platform.is_loaded("system", "org.example.contract"))
    run(platform.kickstart("system", "org.example.contract"))
    assert run(platform.bootout("system", "org.example.contract")) is True
    assert run(platform.bootout("system", "org.example.contract")) is False
    assert not run(platform.is_loaded("system", "org.example.contract"))


def test_kickstart_of_what_is_not_loaded_says_so(platform: Platform) -> None:
    with pytest.raises(ServiceNotLoadedError) as err:
        run(platform.kickstart("gui/501", "org.example.nothing"))
    assert err.value.returncode == 113


def test_unknown_receipt_is_none(platform: Platform) -> None:
    assert run(platform.receipt("com.example.never")) is None
