"""The generated files kept in the repository, so admins can read them without building anything;
`pkg/build.py generate` rewrites them and the tests fail when a committed copy drifts."""

from __future__ import annotations

from pathlib import Path

from bootstrapper.deploy import launchd
from bootstrapper.deploy.layout import real_paths
from bootstrapper.deploy.profile import example_settings, jamf_schema_text, mobileconfig, settings_markdown
from bootstrapper.paths import PREFS_DOMAIN

REPO = Path(__file__).resolve().parents[2]


def generated(repo: Path = REPO) -> dict[Path, bytes]:
    paths = real_paths()
    return {
        repo / "pkg" / "launchd" / f"{paths.daemon_label}.plist": launchd.dumps(launchd.daemon_plist()),
        repo / "pkg" / "launchd" / f"{paths.agent_label}.plist": launchd.dumps(launchd.agent_plist()),
        repo / "pkg" / "profile" / f"{PREFS_DOMAIN}.mobileconfig": mobileconfig(example_settings()),
        repo / "pkg" / "profile" / "jamf-schema.json": jamf_schema_text().encode(),
        repo / "docs" / "settings.md": settings_markdown().encode(),
    }


def stale(repo: Path = REPO) -> list[Path]:
    """Committed copies that differ from what the generators produce now."""
    return [p for p, data in generated(repo).items() if not p.is_file() or p.read_bytes() != data]
