"""`make pkg-payload`: the assembled tree, and the checks that must catch a broken one."""

from __future__ import annotations

import plistlib
import re
import shutil
from pathlib import Path

import pytest

from bootstrapper.deploy.layout import LAUNCHER, template_values
from bootstrapper.errors import ConfigError, UsageError
from bootstrapper.paths import Paths
from pkg.tooling import pins
from pkg.tooling.payload import TEMPLATES, Payload, assemble, check_script, rendered, verify
from pkg.tooling.templates import TemplateError, render

PATHS = Paths()
INTERPRETER = pins.load().interpreter


def test_the_payload_passes_every_check(payload: Payload) -> None:
    assert verify(payload) == []


def test_the_payload_holds_what_the_mac_needs(payload: Payload) -> None:
    files = sorted(str(p.relative_to(payload.root)) for p in payload.root.rglob("*") if p.is_file())
    assert files == [
        "Library/LaunchAgents/org.bootstrapper.agent.plist",
        "Library/LaunchDaemons/org.bootstrapper.daemon.plist",
        "Library/bootstrapper/bin/bootstrapper",
    ]
    assert payload.file(PATHS.launch_daemon_plist).stat().st_mode & 0o777 == 0o644
    assert payload.file(LAUNCHER).stat().st_mode & 0o777 == 0o755
    # the launcher is a compiled program with the interpreter's path built in
    assert str(INTERPRETER).encode() + b"\0" in payload.file(LAUNCHER).read_bytes()


def test_no_placeholder_survives_rendering(payload: Payload) -> None:
    for file in [*payload.scripts.iterdir(), payload.distribution]:
        assert not re.search(r"@[A-Z_]+@", file.read_text()), file


def test_distribution_is_a_product_archive_for_both_architectures(payload: Payload) -> None:
    text = payload.distribution.read_text()
    assert 'hostArchitectures="arm64,x86_64"' in text
    assert '<os-version min="11.0"/>' in text
    assert ">bootstrapper-component.pkg</pkg-ref>" in text
    assert '<product id="org.bootstrapper.pkg"' in text


def test_a_missing_program_is_caught(fresh_payload: Payload) -> None:
    fresh_payload.file(LAUNCHER).unlink()
    problems = verify(fresh_payload)
    assert f"{PATHS.launch_daemon_plist}: {LAUNCHER} is not in the payload" in problems
    assert f"{PATHS.launch_agent_plist}: {LAUNCHER} is not in the payload" in problems


def test_a_program_that_is_not_executable_is_caught(fresh_payload: Payload) -> None:
    fresh_payload.file(LAUNCHER).chmod(0o644)
    assert f"{PATHS.launch_agent_plist}: {LAUNCHER} is not executable" in verify(fresh_payload)


def test_the_runtime_check_wants_the_bundled_interpreter(fresh_payload: Payload) -> None:
    assert f"{LAUNCHER}: {INTERPRETER} is not in the payload" in verify(fresh_payload, runtime=True)


def test_a_group_writable_plist_is_caught(fresh_payload: Payload) -> None:
    fresh_payload.file(PATHS.launch_daemon_plist).chmod(0o664)
    assert any("writable by group or others" in p for p in verify(fresh_payload))


def test_a_plist_without_keepalive_is_caught(fresh_payload: Payload) -> None:
    file = fresh_payload.file(PATHS.launch_agent_plist)
    plist = plistlib.loads(file.read_bytes())
    del plist["KeepAlive"]
    file.write_bytes(plistlib.dumps(plist))
    assert f"{PATHS.launch_agent_plist}: KeepAlive: expected dict, got NoneType" in verify(fresh_payload)


def test_a_script_with_a_syntax_error_is_caught(fresh_payload: Payload) -> None:
    script = fresh_payload.scripts / "postinstall"
    script.write_text(script.read_text().replace("fi\n", "", 1))
    problems = check_script(script)
    assert len(problems) == 1 and problems[0].startswith("sh -n:")


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is optional")
def test_shellcheck_findings_are_reported(tmp_path: Path) -> None:
    script = tmp_path / "s"
    script.write_text("#!/bin/sh\nset -eu\nrm -rf $1/x\n")
    script.chmod(0o755)
    problems = check_script(script)
    assert len(problems) == 1 and "SC2086" in problems[0]


def test_scripts_must_be_posix_sh(tmp_path: Path) -> None:
    script = tmp_path / "s"
    script.write_text("#!/bin/bash\nset -eu\n")
    script.chmod(0o755)
    assert check_script(script) == ["must start with #!/bin/sh"]
    script.chmod(0o644)
    assert check_script(script) == ["not executable"]


def test_templates_refuse_an_unknown_placeholder() -> None:
    with pytest.raises(TemplateError, match=r"x\.in: no value for @NOPE@"):
        render("a @NOPE@ b @VERSION@", template_values(), name="x.in")


def test_templates_come_from_paths_py() -> None:
    text = rendered("scripts/postinstall.in")
    assert f"DAEMON_LABEL='{PATHS.daemon_label}'" in text
    assert f"make_folder '{PATHS.staging_dir}' 0700" in text
    assert (TEMPLATES / "scripts" / "postinstall.in").read_text().count("org.bootstrapper") == 0


def test_settings_shipped_in_the_package_are_type_checked(tmp_path: Path) -> None:
    payload = assemble(tmp_path / "a", config={"manifest_url": "https://e.com/m.yaml", "concurrency": "8"})
    shipped = plistlib.loads(payload.file(PATHS.config_plist).read_bytes())
    assert shipped == {"manifest_url": "https://e.com/m.yaml", "concurrency": 8}
    with pytest.raises(ConfigError, match="concurrency in the package config: expected a whole number"):
        assemble(tmp_path / "b", config={"concurrency": "lots"})


def test_assemble_never_wipes_a_folder_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "precious").write_text("keep me")
    with pytest.raises(UsageError, match="not empty and not a payload folder"):
        assemble(tmp_path)
    assert (tmp_path / "precious").read_text() == "keep me"
    assemble(tmp_path / "pkg")
    assemble(tmp_path / "pkg")  # its own folder is replaced
