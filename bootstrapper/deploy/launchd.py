"""The LaunchDaemon and LaunchAgent property lists, generated from `bootstrapper.paths`.

The daemon restarts only after a failure (`KeepAlive: {SuccessfulExit: false}`): a finished run exits 0
and stays down while it removes itself; a crash or an `on_failure: retry` exit comes back after
`ThrottleInterval`. The agent follows the same rule, so it stays up until the daemon tells it to exit
(exit 0). The agent has no StandardOutPath: it runs as the user, who cannot write the root-owned log
folder, and its output reaches the daemon in its replies anyway.
"""

from __future__ import annotations

import plistlib
from pathlib import PurePosixPath
from typing import Any

from bootstrapper.deploy.layout import LAUNCHER, THROTTLE_INTERVAL, real_paths
from bootstrapper.paths import Paths

#: Keys (and their types) each plist must carry; `check` holds built plists to them.
REQUIRED: dict[str, dict[str, type]] = {
    "daemon": {
        "Label": str,
        "ProgramArguments": list,
        "RunAtLoad": bool,
        "KeepAlive": dict,
        "ThrottleInterval": int,
        "StandardOutPath": str,
        "StandardErrorPath": str,
    },
    "agent": {
        "Label": str,
        "ProgramArguments": list,
        "RunAtLoad": bool,
        "KeepAlive": dict,
        "ThrottleInterval": int,
        "LimitLoadToSessionType": str,
    },
}


def daemon_plist(paths: Paths | None = None) -> dict[str, Any]:
    p = paths or real_paths()
    log = str(p.log_dir / "launchd-daemon.log")
    return {
        "Label": p.daemon_label,
        "ProgramArguments": [str(LAUNCHER), "daemon"],
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},
        "ThrottleInterval": THROTTLE_INTERVAL,
        "StandardOutPath": log,
        "StandardErrorPath": log,
    }


def agent_plist(paths: Paths | None = None) -> dict[str, Any]:
    p = paths or real_paths()
    return {
        "Label": p.agent_label,
        "ProgramArguments": [str(LAUNCHER), "agent"],
        "LimitLoadToSessionType": "Aqua",
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},
        "ThrottleInterval": THROTTLE_INTERVAL,
    }


def dumps(plist: dict[str, Any]) -> bytes:
    """XML, keys sorted: the same bytes every build, so the committed copies can be drift-checked."""
    return plistlib.dumps(plist, fmt=plistlib.FMT_XML, sort_keys=True)


def check(data: bytes, kind: str, label: str) -> list[str]:
    """Problems with a built plist: parse errors, missing or mistyped keys, a wrong label or policy."""
    try:
        plist = plistlib.loads(data)
    except Exception as exc:  # plistlib raises several types for bad input
        return [f"not a property list: {exc}"]
    if not isinstance(plist, dict):
        return ["the top level is not a dictionary"]
    problems = [
        f"{key}: expected {kind_.__name__}, got {type(plist.get(key)).__name__}"
        for key, kind_ in REQUIRED[kind].items()
        if not isinstance(plist.get(key), kind_)
    ]
    if problems:
        return problems
    if plist["Label"] != label:
        problems.append(f"Label: expected {label!r}, got {plist['Label']!r}")
    if plist["KeepAlive"] != {"SuccessfulExit": False}:
        problems.append("KeepAlive: expected {SuccessfulExit: false}")
    if plist["RunAtLoad"] is not True:
        problems.append("RunAtLoad: expected true")
    args = plist["ProgramArguments"]
    if not args or not all(isinstance(a, str) for a in args) or not PurePosixPath(args[0]).is_absolute():
        problems.append("ProgramArguments: expected a list of texts starting with an absolute path")
    if kind == "agent" and plist["LimitLoadToSessionType"] != "Aqua":
        problems.append("LimitLoadToSessionType: expected Aqua")
    return problems
