"""The sandbox's own install: what `provision` lays down matches what installing a real package of the
same files leaves behind, so self-removal at the end of a run removes real things."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import plistlib
import stat
from pathlib import Path

import pytest

from bootstrapper import __version__
from bootstrapper.deploy.launchd import agent_plist, daemon_plist, dumps
from bootstrapper.engine.cleanup import remove_ourselves
from bootstrapper.engine.provision import provision
from bootstrapper.errors import PlatformError
from bootstrapper.paths import PACKAGE_ID, Paths
from bootstrapper.platform.base import SYSTEM_DOMAIN
from bootstrapper.platform.sandbox import SandboxPlatform
from tests.support.pkgwriter import build_component_pkg


def _files(paths: Paths) -> dict[str, tuple[bytes, int]]:
    """Every regular file under the root outside the journal, with its content and permission bits."""
    found = {}
    for path in paths.root.rglob("*"):
        if path.is_file() and path != paths.launchd_journal:
            found[path.relative_to(paths.root).as_posix()] = (
                path.read_bytes(),
                stat.S_IMODE(path.stat().st_mode),
            )
    return found


def _receipt(paths: Paths) -> dict[str, object]:
    data: dict[str, object] = plistlib.loads((paths.receipts_dir / f"{PACKAGE_ID}.plist").read_bytes())
    data.pop("install-time")
    return data


def _ops(paths: Paths) -> list[tuple[object, ...]]:
    entries = SandboxPlatform(paths).journal()
    return [(e["op"], e.get("domain"), e.get("label"), e.get("result")) for e in entries]


def test_provision_leaves_what_installing_our_package_leaves(tmp_path: Path) -> None:
    ours = Paths(root=tmp_path / "provisioned")
    asyncio.run(provision(ours, SandboxPlatform(ours)))

    # The same files as a real component package, installed by the sandbox's installer.
    theirs = Paths(root=tmp_path / "installed")
    files = {
        str(theirs.launch_daemon_plist.relative_to(theirs.root)): dumps(daemon_plist()),
        str(theirs.launch_agent_plist.relative_to(theirs.root)): dumps(agent_plist()),
        "Library/bootstrapper/README": b"bootstrapper's install folder; removed when the run ends.\n",
    }
    pkg = build_component_pkg(tmp_path / "bootstrapper.pkg", PACKAGE_ID, __version__, files)
    platform = SandboxPlatform(theirs)

    async def install() -> None:
        await platform.install_pkg(pkg)
        await platform.bootstrap(SYSTEM_DOMAIN, theirs.launch_daemon_plist)

    asyncio.run(install())

    # The receipt holds its install time (whole seconds): compared below without it.
    receipt = (ours.receipts_dir / f"{PACKAGE_ID}.plist").relative_to(ours.root).as_posix()
    assert {k: v for k, v in _files(ours).items() if k != receipt} == {
        k: v for k, v in _files(theirs).items() if k != receipt
    }
    assert _files(ours)[receipt][1] == _files(theirs)[receipt][1]
    assert set(_files(ours)) >= {
        "Library/LaunchDaemons/org.bootstrapper.daemon.plist",
        "Library/LaunchAgents/org.bootstrapper.agent.plist",
        "Library/bootstrapper/README",
    } | {(ours.receipts_dir / f"{PACKAGE_ID}.plist").relative_to(ours.root).as_posix()}
    assert _receipt(ours) == _receipt(theirs)
    assert _receipt(ours)["pkg-version"] == __version__
    assert _ops(ours) == _ops(theirs) == [("bootstrap", "system", "org.bootstrapper.daemon", "loaded")]
    mine, real = (
        asyncio.run(SandboxPlatform(ours).receipt(PACKAGE_ID)),
        asyncio.run(platform.receipt(PACKAGE_ID)),
    )
    assert mine is not None and real is not None
    assert dataclasses.replace(mine, install_time=0) == dataclasses.replace(real, install_time=0)


def test_a_resumed_run_provisions_nothing(tmp_path: Path) -> None:
    paths = Paths(root=tmp_path / "mac")
    platform = SandboxPlatform(paths)
    assert asyncio.run(provision(paths, platform)) is True
    before = paths.launch_daemon_plist.stat().st_mtime_ns
    assert asyncio.run(provision(paths, platform)) is False
    assert paths.launch_daemon_plist.stat().st_mtime_ns == before
    assert len(platform.journal()) == 1


def test_self_removal_removes_what_provision_installed(tmp_path: Path) -> None:
    paths = Paths(root=tmp_path / "mac")
    platform = SandboxPlatform(paths)
    asyncio.run(provision(paths, platform))
    report = asyncio.run(remove_ourselves(platform, paths, [os.getuid()]))
    assert report.problems == []
    assert not paths.launch_daemon_plist.exists()
    assert not paths.launch_agent_plist.exists()
    assert not paths.install_dir.exists()
    assert asyncio.run(platform.receipt(PACKAGE_ID)) is None


@pytest.mark.parametrize("rel", ["/etc/passwd", "Library/../../escape", "", "./"])
def test_install_files_refuses_paths_outside_the_location(tmp_path: Path, rel: str) -> None:
    paths = Paths(root=tmp_path / "mac")
    platform = SandboxPlatform(paths)
    with pytest.raises(PlatformError, match="must be a relative path"):
        asyncio.run(platform.install_files("com.example.x", "1.0", {rel: b"x", "ok": b"y"}))
    assert not paths.root.exists() or list(paths.root.rglob("*")) == []


def test_install_files_refuses_a_bad_package_id_before_writing(tmp_path: Path) -> None:
    paths = Paths(root=tmp_path / "mac")
    with pytest.raises(PlatformError, match="invalid package id"):
        asyncio.run(SandboxPlatform(paths).install_files("../evil", "1.0", {"a": b"x"}))
    assert not paths.root.exists() or list(paths.root.rglob("*")) == []


def test_provision_refuses_a_real_mac(tmp_path: Path) -> None:
    from bootstrapper.platform.macos import MacOSPlatform

    paths = Paths(root=tmp_path / "mac")
    with pytest.raises(PlatformError, match="only a sandbox"):
        asyncio.run(provision(paths, MacOSPlatform(paths)))
    assert not paths.launch_daemon_plist.exists()


def test_removal_boots_our_agent_out_of_every_gui_domain_launchd_has_not_only_those_we_served(
    tmp_path: Path,
) -> None:
    paths = Paths(root=tmp_path / "mac")
    platform = SandboxPlatform(paths)
    asyncio.run(provision(paths, platform))
    for uid in (501, 502):  # e.g. loaded at those users' logins by launchd, never checked in with us
        assert asyncio.run(platform.bootstrap(f"gui/{uid}", paths.launch_agent_plist))
    assert asyncio.run(platform.gui_uids()) == {501, 502}
    report = asyncio.run(remove_ourselves(platform, paths, []))
    assert report.problems == []
    for uid in (501, 502):
        assert not asyncio.run(platform.is_loaded(f"gui/{uid}", paths.agent_label))
    assert asyncio.run(platform.gui_uids()) == set()
