"""The orchestrator in one process against the sandbox: phases, policies, state, self-removal.

Real parts throughout: a loopback web server, real scripts and packages, the sandbox platform, the
real agent process for user items.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from bootstrapper.engine.events import from_json
from bootstrapper.paths import PACKAGE_ID, Paths
from bootstrapper.platform.sandbox import SandboxPlatform
from tests.engine.conftest import result, run_sandbox, statuses
from tests.support.pkgwriter import build_component_pkg
from tests.support.site import Site


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_every_kind_runs_in_order_and_bootstrapper_removes_itself(
    site: Site, sandbox: Paths, tmp_path: Path
) -> None:
    pkg = build_component_pkg(
        tmp_path / "a.pkg", "com.example.a", "2.0", {"Applications/A.app/Contents/x": b"x"}
    )
    pkg_url, pkg_hash = site.add("a.pkg", pkg.read_bytes())
    log = "$BOOTSTRAPPER_ROOT/order.log"
    url = site.manifest(
        {
            "preflight": [
                {"name": "pre", "type": "rootscript", **site.script("pre.sh", f"echo pre >> {log}; exit 1")}
            ],
            "setupassistant": [
                {
                    "name": "pkg",
                    "type": "package",
                    "url": pkg_url,
                    "hash": pkg_hash,
                    "packageid": "com.example.a",
                    "version": "2.0",
                },
                {"name": "root", "type": "rootscript", **site.script("root.sh", f"echo root >> {log}")},
                {
                    "name": "file",
                    "type": "rootfile",
                    "file": "/Library/Example/f.txt",
                    **_file(site, "f.txt", b"hello"),
                },
            ],
            "userland": [
                {"name": "wait", "type": "wait", "path": "/Applications/A.app", "timeout": 5},
                {
                    "name": "user",
                    "type": "userscript",
                    **site.script("user.sh", f'echo "user $HOME" >> {log}'),
                },
                {
                    "name": "ufile",
                    "type": "userfile",
                    "file": "/Users/Shared/u.txt",
                    **_file(site, "u.txt", b"mine"),
                },
                {
                    "name": "skipped",
                    "type": "rootscript",
                    "only_if": {"arch": "x86_64"},
                    **site.script("no.sh", f"echo no >> {log}"),
                },
            ],
        }
    )
    before = _tree(sandbox.root)
    assert run_sandbox(sandbox, url) == 0
    root = sandbox.root
    lines = (root / "order.log").read_text().splitlines()
    assert lines == ["pre", "root", f"user {root}/Users/{_me()}"]
    assert (root / "Applications/A.app/Contents/x").read_bytes() == b"x"
    assert (root / "Library/Example/f.txt").read_bytes() == b"hello"
    assert (root / "Users/Shared/u.txt").stat().st_uid == os.getuid()
    doc = result(sandbox)
    assert doc["result"] == "success"
    assert statuses(sandbox) == {
        "preflight[0]": "done",
        "setupassistant[0]": "done",
        "setupassistant[1]": "done",
        "setupassistant[2]": "done",
        "userland[0]": "done",
        "userland[1]": "done",
        "userland[2]": "done",
        "userland[3]": "skipped",
    }
    # Self-removal: exactly our files are gone; what the items installed and the logs stay.
    after = _tree(root)
    for ours in (
        sandbox.install_dir,
        sandbox.launch_daemon_plist,
        sandbox.launch_agent_plist,
        sandbox.run_dir,
    ):
        assert not ours.exists()
    assert not (sandbox.receipts_dir / f"{PACKAGE_ID}.plist").exists()
    assert (sandbox.receipts_dir / "com.example.a.plist").exists()
    assert sandbox.result_file.exists()
    assert before <= after | before
    journal = [json.loads(line) for line in sandbox.launchd_journal.read_text().splitlines()]
    ops = [(e["op"], e.get("target")) for e in journal]
    assert ops[-1] == ("bootout", "system/org.bootstrapper.daemon")
    assert ("bootout", f"gui/{os.getuid()}/org.bootstrapper.agent") in ops


def _file(site: Site, name: str, data: bytes) -> dict[str, str]:
    url, digest = site.add(name, data)
    return {"url": url, "hash": digest}


def _me() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def test_preflight_exit_0_means_already_set_up(site: Site, sandbox: Paths) -> None:
    url = site.manifest(
        {
            "preflight": [{"name": "pre", "type": "rootscript", **site.script("pre.sh", "exit 0")}],
            "setupassistant": [
                {"name": "big", "type": "rootscript", **site.script("big.sh", "touch $BOOTSTRAPPER_ROOT/ran")}
            ],
        }
    )
    assert run_sandbox(sandbox, url) == 0
    assert result(sandbox)["result"] == "already-set-up"
    assert not (sandbox.root / "ran").exists()
    assert not sandbox.install_dir.exists()
    # The rest was never even downloaded.
    assert not (sandbox.root / "Library/bootstrapper/setupassistant/big.sh").exists()


@pytest.mark.parametrize("stage", ["setupassistant", "userland"])
@pytest.mark.parametrize(
    ("policy", "failure", "stops"),
    [
        ("failable", "download", False),
        ("failable", "execution", False),
        ("failable_execution", "download", True),
        ("failable_execution", "execution", False),
        ("failure_is_not_an_option", "download", True),
        ("failure_is_not_an_option", "execution", True),
    ],
)
def test_fail_policy_matrix(
    site: Site, sandbox: Paths, stage: str, policy: str, failure: str, stops: bool
) -> None:
    bad = site.script("bad.sh", "echo broken >&2; exit 3")
    if failure == "download":
        bad["hash"] = "0" * 64
    after = site.script("after.sh", "touch $BOOTSTRAPPER_ROOT/after")
    url = site.manifest(
        {
            stage: [
                {"name": "bad", "type": "rootscript", "fail_policy": policy, **bad},
                {"name": "after", "type": "rootscript", **after},
            ],
            "on_failure": "retry",
        }
    )
    code = run_sandbox(sandbox, url)
    doc = result(sandbox)
    assert statuses(sandbox)[f"{stage}[0]"] == "failed"
    assert (sandbox.root / "after").exists() is not stops
    # went on past a failable failure: exit 0, but never "success" (it is listed)
    assert doc["result"] == ("failed" if stops else "partial")
    assert doc["failed_steps"] == [f"{stage}[0]"]
    assert code == (1 if stops else 0)
    reason = next(s["reason"] for s in doc["steps"] if s["id"] == f"{stage}[0]")
    if failure == "download":
        assert "sha256" in reason
    else:
        assert reason == "exited with 3: broken"
    # on_failure: retry keeps the daemon installed for launchd to run again; success removes it.
    assert sandbox.launch_daemon_plist.exists() is stops


def test_on_failure_cleanup_removes_bootstrapper_after_a_stopping_failure(site: Site, sandbox: Paths) -> None:
    bad = site.script("bad.sh", "exit 1")
    url = site.manifest(
        {
            "setupassistant": [
                {"name": "bad", "type": "rootscript", "fail_policy": "failure_is_not_an_option", **bad}
            ],
            "on_failure": "cleanup",
        }
    )
    assert run_sandbox(sandbox, url) == 1
    assert result(sandbox)["result"] == "failed"
    assert not sandbox.launch_daemon_plist.exists()


def test_retry_is_bounded_by_max_attempts(site: Site, sandbox: Paths) -> None:
    bad = site.script("bad.sh", "exit 1")
    url = site.manifest(
        {
            "setupassistant": [
                {"name": "bad", "type": "rootscript", "fail_policy": "failure_is_not_an_option", **bad}
            ]
        }
    )
    assert run_sandbox(sandbox, url, max_attempts=2) == 1
    assert sandbox.launch_daemon_plist.exists()
    assert result(sandbox)["retrying"] is True
    assert run_sandbox(sandbox, url, max_attempts=2) == 1
    assert result(sandbox)["retrying"] is False
    assert not sandbox.launch_daemon_plist.exists()


def test_a_finished_step_is_not_repeated_after_a_failed_attempt(site: Site, sandbox: Paths) -> None:
    once = site.script("once.sh", "echo x >> $BOOTSTRAPPER_ROOT/count")
    flaky = site.script("flaky.sh", "[ -f $BOOTSTRAPPER_ROOT/fixed ]")
    url = site.manifest(
        {
            "setupassistant": [
                {"name": "once", "type": "rootscript", **once},
                {"name": "flaky", "type": "rootscript", "fail_policy": "failure_is_not_an_option", **flaky},
            ]
        }
    )
    assert run_sandbox(sandbox, url) == 1
    (sandbox.root / "fixed").touch()
    assert run_sandbox(sandbox, url) == 0
    assert (sandbox.root / "count").read_text() == "x\n"


def test_a_corrupt_state_file_is_set_aside_and_the_run_starts_over(site: Site, sandbox: Paths) -> None:
    url = site.manifest(
        {"setupassistant": [{"name": "s", "type": "rootscript", **site.script("s.sh", "true")}]}
    )
    sandbox.install_dir.mkdir(parents=True)
    sandbox.state_file.write_text('{"version": 1, "steps": [trunc')
    assert run_sandbox(sandbox, url, cleanup=False) == 0
    assert list(sandbox.install_dir.glob("state.json.corrupt-*"))
    assert result(sandbox)["result"] == "success"


def test_a_partial_run_says_so_everywhere_and_still_runs_the_final_action(
    site: Site, sandbox: Paths, tmp_path: Path
) -> None:
    from bootstrapper.engine.events import RunFinished

    bad = site.script("bad.sh", "exit 4")
    url = site.manifest(
        {
            "setupassistant": [{"name": "bad", "type": "rootscript", "fail_policy": "failable", **bad}],
            "final_action": "reboot",
        }
    )
    assert run_sandbox(sandbox, url) == 0
    assert result(sandbox)["result"] == "partial"
    journal = sandbox.launchd_journal.read_text()
    assert '"reboot"' in journal  # the final action runs after a partial run (docs/progress.md)
    assert RunFinished("partial", ("setupassistant[0]",)).headline == "Setup finished with 1 item failed"


def test_a_failing_background_root_script_is_reported_with_its_exit_code(site: Site, sandbox: Paths) -> None:
    bg = site.script("bg.sh", "exit 7")
    url = site.manifest({"setupassistant": [{"name": "bg", "type": "rootscript", "donotwait": True, **bg}]})
    assert run_sandbox(sandbox, url) == 0
    doc = result(sandbox)
    step = next(s for s in doc["steps"] if s["id"] == "setupassistant[0]")
    assert (step["status"], step["exit_code"]) == ("failed", 7)
    assert doc["result"] == "partial" and doc["failed_steps"] == ["setupassistant[0]"]


def test_an_agent_that_never_checks_in_hits_the_deadline(site: Site, sandbox: Paths) -> None:
    user = site.script("u.sh", "true")
    after = site.script("after.sh", "touch $BOOTSTRAPPER_ROOT/after")
    url = site.manifest(
        {
            "userland": [
                {"name": "u", "type": "userscript", **user},
                {"name": "after", "type": "rootscript", **after},
            ]
        }
    )
    mute = SandboxPlatform(sandbox, os_version="14.6", agent_argv=["sleep", "30"])
    assert run_sandbox(sandbox, url, platform=mute, agent_checkin_timeout=1.0) == 0
    reason = next(s["reason"] for s in result(sandbox)["steps"] if s["id"] == "userland[0]")
    assert "did not check in within 1 s" in reason
    # failable_execution: the run went on.
    assert (sandbox.root / "after").exists()
    spawned = [
        json.loads(line) for line in sandbox.launchd_journal.read_text().splitlines() if '"spawn"' in line
    ]
    assert spawned


def test_a_manifest_item_without_hash_is_refused_at_run_time(site: Site, sandbox: Paths) -> None:
    path, _ = site.add("ia.sh", b"#!/bin/sh\ntouch $BOOTSTRAPPER_ROOT/ran\n")
    doc = {
        "setupassistant": [
            {
                "name": "ia",
                "type": "rootscript",
                "url": path,
                "file": "/Library/installapplications/ia.sh",
                "hash": "sha256 hash",
            }
        ]
    }
    site.add("bootstrap.json", json.dumps(doc).encode())
    assert run_sandbox(sandbox, f"{site.base}/bootstrap.json") == 1
    reason = result(sandbox)["steps"][0]["reason"]
    assert reason == "no sha256 hash in the manifest: bootstrapper never runs an unverified download"
    assert not (sandbox.root / "ran").exists()


def test_progress_files_and_event_log_hold_the_run(site: Site, sandbox: Paths) -> None:
    url = site.manifest(
        {"setupassistant": [{"name": "Step One", "type": "rootscript", **site.script("a.sh", "true")}]}
    )
    assert run_sandbox(sandbox, url, depnotify=True, swiftdialog=True) == 0
    depnotify = sandbox.system("/var/tmp/depnotify.log").read_text().splitlines()
    assert "Command: DeterminateManual: 1" in depnotify
    assert depnotify[-1] == "Command: Quit"
    dialog = sandbox.system("/var/tmp/dialog.log").read_text()
    assert "listitem: title: Step One, status: success" in dialog
    events = [
        from_json(json.loads(line)) for line in (sandbox.log_dir / "events.jsonl").read_text().splitlines()
    ]
    names = [e.event for e in events]
    assert names.index("run_started") < names.index("step_started") < names.index("step_finished")
    assert names[-1] == "run_finished"
    assert any(e.event == "message" and "not protected by TLS" in e.to_json()["text"] for e in events)


def test_self_removal_is_idempotent(sandbox: Paths) -> None:
    import asyncio

    from bootstrapper.engine.cleanup import remove_ourselves
    from bootstrapper.engine.provision import provision

    platform = SandboxPlatform(sandbox)
    asyncio.run(provision(sandbox, platform))
    assert sandbox.launch_daemon_plist.exists()
    first = asyncio.run(remove_ourselves(platform, sandbox, [os.getuid()]))
    second = asyncio.run(remove_ourselves(platform, sandbox, [os.getuid()]))
    assert str(sandbox.launch_daemon_plist) in first.removed
    assert first.problems == []
    assert second.removed == []
    assert second.problems == []


DIALOG = "/usr/local/bin/dialog"


def _fake_dialog(sandbox: Paths, body: str) -> None:
    """A stand-in for swiftDialog at its usual path: a shell script with `body`."""
    dialog = sandbox.system(DIALOG)
    dialog.parent.mkdir(parents=True)
    dialog.write_text(f"#!/bin/sh\n{body}\n")
    dialog.chmod(0o755)


def test_swiftdialog_opens_for_the_console_user_when_installed(site: Site, sandbox: Paths) -> None:
    record = sandbox.root / "dialog-argv"
    _fake_dialog(sandbox, f'echo "$@" > {record}')
    url = site.manifest(
        {"setupassistant": [{"name": "Step One", "type": "rootscript", **site.script("a.sh", "sleep 1.5")}]}
    )
    assert run_sandbox(sandbox, url, swiftdialog=True, swiftdialog_path="/usr/local/bin/dialog") == 0
    argv = record.read_text().split()
    assert argv[:2] == ["--commandfile", str(sandbox.system("/var/tmp/dialog.log"))]
    assert "Step One" in record.read_text()


def test_swiftdialog_installed_by_the_manifests_first_package_opens_with_the_items(
    site: Site, sandbox: Paths
) -> None:
    """The usual pattern: the first item installs swiftDialog; the window opens once it exists."""
    from tests.support.pkgwriter import PayloadFile

    record = sandbox.root / "dialog-argv"
    fake_dialog = f'#!/bin/sh\necho "$@" > {record}\n'.encode()
    pkg = build_component_pkg(
        site.root / "dialog.pkg",
        "au.csiro.dialog",
        "2.5",
        {"usr/local/bin/dialog": PayloadFile(fake_dialog, 0o755)},
    )
    name, digest = site.add("dialog.pkg", pkg.read_bytes())
    wait_for_window = site.script(
        "after.sh", f"for i in $(seq 100); do [ -s {record} ] && exit 0; sleep 0.1; done; exit 1"
    )
    url = site.manifest(
        {
            "setupassistant": [
                {"name": "swiftDialog", "type": "package", "url": name, "hash": digest,
                 "packageid": "au.csiro.dialog", "version": "2.5"},
                {"name": "Wait for the window", "type": "rootscript", **wait_for_window},
            ]
        }
    )  # fmt: skip
    assert not sandbox.system("/usr/local/bin/dialog").exists()
    assert run_sandbox(sandbox, url, swiftdialog=True, swiftdialog_path="/usr/local/bin/dialog") == 0
    assert statuses(sandbox) == {"setupassistant[0]": "done", "setupassistant[1]": "done"}
    shown = record.read_text()
    assert shown.split()[:2] == ["--commandfile", str(sandbox.system("/var/tmp/dialog.log"))]
    assert "Wait for the window" in shown


def test_a_progress_window_closed_before_the_end_opens_again(site: Site, sandbox: Paths) -> None:
    """A logout's SIGTERM (or a user) closes swiftDialog mid-run: it is opened again while the run goes on."""
    opened = sandbox.root / "dialog-opened"
    # Records each opening with its pid, then stays open as the real window does.
    _fake_dialog(sandbox, f"echo $$ >> {opened}\nexec sleep 60")
    closer = site.script(
        "close.sh",
        f"""for i in $(seq 100); do [ -s {opened} ] && break; sleep 0.1; done
kill -TERM "$(head -n 1 {opened})"
for i in $(seq 100); do [ "$(wc -l < {opened})" -ge 2 ] && break; sleep 0.1; done""",
    )
    url = site.manifest({"setupassistant": [{"name": "Close it", "type": "rootscript", **closer}]})
    assert run_sandbox(sandbox, url, swiftdialog=True, swiftdialog_path="/usr/local/bin/dialog") == 0
    pids = opened.read_text().split()
    assert len(pids) == 2 and pids[0] != pids[1], pids  # closed once, opened again, by the running daemon


def test_dry_run_prints_this_macs_plan_and_changes_nothing(
    site: Site, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from bootstrapper import cli

    monkeypatch.setenv("COLUMNS", "200")
    script = site.script("a.sh", "touch $BOOTSTRAPPER_ROOT/ran")
    url = site.manifest(
        {
            "setupassistant": [
                {"name": "Configure", "type": "rootscript", **script},
                {"name": "Intel only", "type": "rootscript", "only_if": {"arch": "x86_64"}, **script},
            ]
        }
    )
    root = tmp_path / "dry"
    code = cli.main(
        ["run", "--manifest", url, "--sandbox", str(root), "--dry-run", "--allow-http", "--arch", "arm64"]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "dry run: nothing downloaded or changed" in out
    assert "only_if: arch is arm64, not x86_64" in out
    assert [p.name for p in root.iterdir()] == []


def test_a_failed_background_script_reaches_the_webhook_with_its_last_lines(
    site: Site, sandbox: Paths, httpserver: HTTPServer
) -> None:
    """A `donotwait` script fails after its step was reported: run_finished carries what it printed."""
    httpserver.expect_request("/hook", method="POST").respond_with_data("", status=204)
    bg = site.script("bg.sh", "echo fine; echo 'disk is full' >&2; exit 4")
    url = site.manifest(
        {
            "setupassistant": [
                {"name": "bg", "type": "rootscript", "donotwait": True, "fail_policy": "failable", **bg}
            ]
        }
    )
    assert run_sandbox(sandbox, url, webhook_url=httpserver.url_for("/hook")) == 0
    posted = [json.loads(request.get_data()) for request, _ in httpserver.log]
    finished = posted[-1]
    assert (finished["event"], finished["result"]) == ("run_finished", "partial")
    assert finished["failed_steps"] == [
        {"step_id": "setupassistant[0]", "name": "bg", "output_tail": "disk is full"}
    ]


def test_the_webhook_hears_start_failure_and_end_from_a_real_run(
    site: Site, sandbox: Paths, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/hook", method="POST").respond_with_data("", status=204)
    bad = site.script("bad.sh", "echo nope >&2; exit 2")
    url = site.manifest(
        {"setupassistant": [{"name": "bad", "type": "rootscript", "fail_policy": "failable", **bad}]}
    )
    hook = httpserver.url_for("/hook") + "?token=s3cret"
    assert run_sandbox(sandbox, url, webhook_url=hook) == 0
    posted = [json.loads(request.get_data()) for request, _ in httpserver.log]
    assert [p["event"] for p in posted] == ["run_started", "step_failed", "run_finished"]
    assert (posted[1]["name"], posted[1]["reason"], posted[1]["exit_code"]) == (
        "bad",
        "exited with 2: nope",
        2,
    )
    assert "s3cret" not in json.dumps(posted)


def test_condition_scripts_and_paths_are_decided_on_the_machine(site: Site, sandbox: Paths) -> None:
    (sandbox.root / "Applications").mkdir()
    (sandbox.root / "Applications/Have.app").mkdir()
    marker = "touch $BOOTSTRAPPER_ROOT/ran-{}"
    url = site.manifest(
        {
            "setupassistant": [
                {
                    "name": "script holds",
                    "type": "rootscript",
                    "only_if": {"script": "exit 0"},
                    **site.script("a.sh", marker.format("a")),
                },
                {
                    "name": "script fails",
                    "type": "rootscript",
                    "only_if": {"script": "exit 1"},
                    **site.script("b.sh", marker.format("b")),
                },
                {
                    "name": "app present",
                    "type": "rootscript",
                    "skip_if": {"path_exists": "/Applications/Have.app"},
                    **site.script("c.sh", marker.format("c")),
                },
            ]
        }
    )
    assert run_sandbox(sandbox, url) == 0
    assert sorted(p.name for p in sandbox.root.glob("ran-*")) == ["ran-a"]
    assert statuses(sandbox) == {
        "setupassistant[0]": "done",
        "setupassistant[1]": "skipped",
        "setupassistant[2]": "skipped",
    }


def test_conditions_are_decided_when_the_step_is_reached(site: Site, sandbox: Paths) -> None:
    """A condition about a path or a script is asked when its step comes up, so an earlier step's
    work counts (InstallApplications decides per item too)."""
    make = site.script("make.sh", "touch $BOOTSTRAPPER_ROOT/Library/made")
    by_path = site.script("by-path.sh", "touch $BOOTSTRAPPER_ROOT/by-path-ran")
    by_script = site.script("by-script.sh", "touch $BOOTSTRAPPER_ROOT/by-script-ran")
    url = site.manifest(
        {
            "setupassistant": [
                {"name": "make", "type": "rootscript", **make},
                {
                    "name": "by path",
                    "type": "rootscript",
                    "skip_if": {"path_exists": "/Library/made"},
                    **by_path,
                },
                {
                    "name": "by script",
                    "type": "rootscript",
                    "skip_if": {"script": 'test -e "$BOOTSTRAPPER_ROOT/Library/made"'},
                    **by_script,
                },
            ]
        }
    )
    assert run_sandbox(sandbox, url) == 0
    assert statuses(sandbox) == {
        "setupassistant[0]": "done",
        "setupassistant[1]": "skipped",
        "setupassistant[2]": "skipped",
    }
    assert not (sandbox.root / "by-path-ran").exists() and not (sandbox.root / "by-script-ran").exists()


def test_a_package_installed_by_an_earlier_step_is_not_installed_again(site: Site, sandbox: Paths) -> None:
    from tests.support.pkgwriter import build_component_pkg

    pkg = build_component_pkg(site.root / "tool.pkg", "com.example.tool", "2.0", {"usr/local/tool": b"x"})
    name, digest = site.add("tool.pkg", pkg.read_bytes())
    item = {"type": "package", "url": name, "hash": digest, "packageid": "com.example.tool", "version": "2.0"}
    url = site.manifest({"setupassistant": [{"name": "first", **item}, {"name": "again", **item}]})
    assert run_sandbox(sandbox, url) == 0
    assert statuses(sandbox) == {"setupassistant[0]": "done", "setupassistant[1]": "skipped"}


def test_installapplications_downloads_are_removed_at_the_end_and_placements_stay(
    site: Site, sandbox: Paths
) -> None:
    from tests.support.pkgwriter import build_component_pkg

    script, script_hash = site.add("setup.sh", b"#!/bin/sh\necho secret-token-in-a-script\n")
    pkg = build_component_pkg(site.root / "app.pkg", "com.example.app", "1.0", {"Applications/App.txt": b"x"})
    pkg_url, pkg_hash = site.add("app.pkg", pkg.read_bytes())
    conf, conf_hash = site.add("app.conf", b"key=value\n")
    folder = "/Library/Application Support/installapplications"
    doc = {
        "setupassistant": [
            {
                "name": "setup",
                "type": "rootscript",
                "url": script,
                "file": f"{folder}/setup.sh",
                "hash": script_hash,
            },
            {
                "name": "app",
                "type": "package",
                "url": pkg_url,
                "file": f"{folder}/pkgs/app.pkg",
                "hash": pkg_hash,
                "packageid": "com.example.app",
                "version": "1.0",
            },
            {
                "name": "conf",
                "type": "rootfile",
                "url": conf,
                "file": "/Library/Preferences/app.conf",
                "hash": conf_hash,
            },
        ]
    }
    sandbox.system("/Library/Application Support").mkdir(parents=True)
    site.add("bootstrap.json", json.dumps(doc).encode())
    assert run_sandbox(sandbox, f"{site.base}/bootstrap.json") == 0
    assert not sandbox.system(folder).exists()  # its files gone, and the folders the run made
    assert sandbox.system("/Library/Application Support").is_dir()  # it was there before: stays
    assert sandbox.system("/Library/Preferences/app.conf").read_bytes() == b"key=value\n"
    assert sandbox.system("/Applications/App.txt").exists()


def test_a_donotwait_user_script_frees_the_agent_for_the_next_and_its_exit_code_is_recorded(
    site: Site, sandbox: Paths
) -> None:
    log = "$BOOTSTRAPPER_ROOT/order.log"
    slow = f"echo slow-start >> {log}; sleep 2; echo slow-end >> {log}; exit 7"
    url = site.manifest(
        {
            "userland": [
                {"name": "slow", "type": "userscript", "donotwait": True, **site.script("s.sh", slow)},
                {"name": "next", "type": "userscript", **site.script("n.sh", f"echo next >> {log}")},
            ]
        }
    )
    assert run_sandbox(sandbox, url) == 0
    # The second script ran while the first still did: the background one did not hold the slot.
    assert (sandbox.root / "order.log").read_text().split() == ["slow-start", "next", "slow-end"]
    doc = result(sandbox)
    steps = {s["name"]: s for s in doc["steps"]}
    assert steps["slow"]["status"] == "failed" and steps["slow"]["exit_code"] == 7
    assert steps["next"]["exit_code"] == 0
    assert doc["result"] == "partial"


def test_progress_windows_open_once_a_step_installs_their_program(site: Site, sandbox: Paths) -> None:
    record = sandbox.root / "windows"
    fake = f'#!/bin/sh\\necho "$0 $*" >> {record}\\nsleep 30\\n'
    install = (
        'mkdir -p "$BOOTSTRAPPER_ROOT/usr/local/bin" "$BOOTSTRAPPER_ROOT/$DEP"\n'
        f'for p in "$BOOTSTRAPPER_ROOT/usr/local/bin/dialog" "$BOOTSTRAPPER_ROOT/$DEP/DEPNotify"; do\n'
        f'  printf \'{fake}\' > "$p"; chmod 755 "$p"\n'
        "done"
    )
    dep = "Applications/Utilities/DEPNotify.app/Contents/MacOS"
    # The last step waits until both windows are up: they opened while the run went on.
    wait = f"for i in $(seq 100); do [ $(wc -l < {record} 2>/dev/null || echo 0) -ge 2 ] && exit 0; sleep 0.1; done; exit 1"
    url = site.manifest(
        {
            "setupassistant": [
                {
                    "name": "Install the windows",
                    "type": "rootscript",
                    **site.script("i.sh", f"DEP={dep}\n{install}"),
                },
                {"name": "Wait for them", "type": "rootscript", **site.script("w.sh", wait)},
            ]
        }
    )
    assert not sandbox.system("/usr/local/bin/dialog").exists()
    assert run_sandbox(sandbox, url, swiftdialog=True, depnotify=True) == 0
    assert statuses(sandbox) == {"setupassistant[0]": "done", "setupassistant[1]": "done"}
    lines = record.read_text().splitlines()
    dialog = next(line for line in lines if line.startswith(str(sandbox.system("/usr/local/bin/dialog"))))
    assert "--commandfile" in dialog and "Wait for them" in dialog
    depnotify = next(line for line in lines if "DEPNotify" in line)
    assert depnotify.endswith(f"-path {sandbox.system('/var/tmp/depnotify.log')}")
