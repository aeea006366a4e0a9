"""Put a sandbox in the state the MDM leaves a Mac in: our own package installed, daemon loaded.

The sandbox installs a real package built on the spot (our launchd plists as its payload) through the
sandbox platform — so the receipt, the plists and the install folder exist exactly as on a Mac, and
self-removal at the end has real things to remove. It does nothing when they are already there (a
resumed run).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from bootstrapper import __version__
from bootstrapper.deploy.launchd import agent_plist, daemon_plist, dumps
from bootstrapper.flatpkg.writer import build_component_pkg
from bootstrapper.paths import PACKAGE_ID, Paths
from bootstrapper.platform.base import SYSTEM_DOMAIN, Platform


async def provision(paths: Paths, platform: Platform) -> bool:
    """Install our package into the sandbox unless it is there; True when it installed it."""
    if paths.launch_daemon_plist.exists() and await platform.receipt(PACKAGE_ID) is not None:
        return False
    files = {
        str(paths.launch_daemon_plist.relative_to(paths.root)): dumps(daemon_plist()),
        str(paths.launch_agent_plist.relative_to(paths.root)): dumps(agent_plist()),
        "Library/bootstrapper/README": b"bootstrapper's install folder; removed when the run ends.\n",
    }
    with tempfile.TemporaryDirectory(prefix="bootstrapper-self-") as tmp:
        pkg = build_component_pkg(Path(tmp) / "bootstrapper.pkg", PACKAGE_ID, __version__, files)
        await platform.install_pkg(pkg)
    # What our postinstall does on a Mac: load the daemon.
    await platform.bootstrap(SYSTEM_DOMAIN, paths.launch_daemon_plist)
    return True
