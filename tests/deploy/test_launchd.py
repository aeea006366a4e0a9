"""The generated launchd plists: the keys launchd needs, the restart policy, labels from paths.py."""

from __future__ import annotations

import plistlib
from pathlib import Path

import pytest

from bootstrapper.deploy import launchd
from bootstrapper.deploy.layout import LAUNCHER
from bootstrapper.paths import AGENT_LABEL, DAEMON_LABEL, Paths


def test_daemon_runs_the_launcher_and_restarts_only_after_a_failure() -> None:
    plist = launchd.daemon_plist()
    assert plist["Label"] == DAEMON_LABEL
    assert plist["ProgramArguments"] == [str(LAUNCHER), "daemon"]
    assert plist["KeepAlive"] == {"SuccessfulExit": False}
    assert plist["RunAtLoad"] is True
    assert plist["ThrottleInterval"] >= 10
    assert plist["StandardOutPath"].startswith(str(Paths().log_dir) + "/")
    assert plist["StandardErrorPath"].startswith(str(Paths().log_dir) + "/")


def test_agent_is_limited_to_the_gui_session_and_writes_no_root_owned_log() -> None:
    plist = launchd.agent_plist()
    assert plist["Label"] == AGENT_LABEL
    assert plist["ProgramArguments"] == [str(LAUNCHER), "agent"]
    assert plist["LimitLoadToSessionType"] == "Aqua"
    assert plist["KeepAlive"] == {"SuccessfulExit": False}
    assert "StandardOutPath" not in plist  # the user cannot write the root-owned log folder


def test_labels_and_log_paths_follow_paths_py() -> None:
    paths = Paths(root=Path("/"), daemon_label="com.example.d", agent_label="com.example.a")
    assert launchd.daemon_plist(paths)["Label"] == "com.example.d"
    assert launchd.agent_plist(paths)["Label"] == "com.example.a"


@pytest.mark.parametrize("kind", ["daemon", "agent"])
def test_generated_plists_pass_their_own_check(kind: str) -> None:
    plist = launchd.daemon_plist() if kind == "daemon" else launchd.agent_plist()
    assert launchd.check(launchd.dumps(plist), kind, plist["Label"]) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"KeepAlive": True}, "KeepAlive: expected dict"),
        ({"KeepAlive": {"SuccessfulExit": True}}, "KeepAlive: expected {SuccessfulExit: false}"),
        ({"Label": "org.other"}, "Label: expected"),
        ({"ProgramArguments": ["bin/bootstrapper"]}, "ProgramArguments: expected a list"),
        ({"RunAtLoad": False}, "RunAtLoad: expected true"),
        ({"ThrottleInterval": "30"}, "ThrottleInterval: expected int"),
    ],
)
def test_check_names_what_is_wrong(change: dict[str, object], expected: str) -> None:
    plist = launchd.daemon_plist() | change
    problems = launchd.check(plistlib.dumps(plist), "daemon", DAEMON_LABEL)
    assert any(p.startswith(expected) for p in problems), problems


def test_check_requires_aqua_for_the_agent_and_reports_garbage() -> None:
    plist = launchd.agent_plist() | {"LimitLoadToSessionType": "Background"}
    assert launchd.check(plistlib.dumps(plist), "agent", AGENT_LABEL) == [
        "LimitLoadToSessionType: expected Aqua"
    ]
    assert launchd.check(b"<plist>", "agent", AGENT_LABEL)[0].startswith("not a property list")
    no_logs = {k: v for k, v in launchd.daemon_plist().items() if not k.startswith("Standard")}
    assert launchd.check(plistlib.dumps(no_logs), "daemon", DAEMON_LABEL) == [
        "StandardOutPath: expected str, got NoneType",
        "StandardErrorPath: expected str, got NoneType",
    ]
