"""Put a sandbox in the state the MDM leaves a Mac in: our own package installed, daemon loaded.

The sandbox platform lays down what our package installs (the launchd plists, the install folder)
and writes its receipt the way `install_pkg` does, so the receipt, the plists and the install folder
exist exactly as on a Mac, and self-removal at the end has real things to remove. It does nothing
when they are already there (a resumed run).
"""

from __future__ import annotations

from bootstrapper import __version__
from bootstrapper.deploy.launchd import agent_plist, daemon_plist, dumps
from bootstrapper.errors import PlatformError
from bootstrapper.paths import PACKAGE_ID, Paths
from bootstrapper.platform.base import SYSTEM_DOMAIN, Platform
from bootstrapper.platform.sandbox import SandboxPlatform


async def provision(paths: Paths, platform: Platform) -> bool:
    """Install our package's files into the sandbox unless they are there; True when it installed them."""
    if not isinstance(platform, SandboxPlatform):
        raise PlatformError("only a sandbox is provisioned here; on a Mac the MDM installs our package")
    if paths.launch_daemon_plist.exists() and await platform.receipt(PACKAGE_ID) is not None:
        return False
    files = {
        str(paths.launch_daemon_plist.relative_to(paths.root)): dumps(daemon_plist()),
        str(paths.launch_agent_plist.relative_to(paths.root)): dumps(agent_plist()),
        "Library/bootstrapper/README": b"bootstrapper's install folder; removed when the run ends.\n",
    }
    await platform.install_files(PACKAGE_ID, __version__, files)
    # What our postinstall does on a Mac: load the daemon.
    await platform.bootstrap(SYSTEM_DOMAIN, paths.launch_daemon_plist)
    return True
