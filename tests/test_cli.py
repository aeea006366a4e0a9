"""The command line: exit codes, one-line errors, no tracebacks for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bootstrapper import __version__, cli
from tests.manifest.test_installapplications import MANIFESTS

ROOT = Path(__file__).resolve().parents[1]
HASH = "c" * 64
BROKEN = f"""\
format: 1
userland:
- name: Dock setup
  type: rootscript
  url: https://e.com/dock.sh
  hash: {HASH[:63]}
- name: Other
  type: userscrpt
"""


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--version"], capsys) == (0, f"bootstrapper {__version__}\n", "")


def test_valid_manifest_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["validate", str(ROOT / "manifests" / "demo.yaml")], capsys)
    assert code == 0
    assert out.splitlines()[-1].endswith("valid (9 items, 1 warning)")


def test_broken_manifest_exits_2_with_every_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(BROKEN)
    code, out, _ = run(["validate", str(path)], capsys)
    assert code == 2
    assert out.splitlines() == [
        f'error: {path}:6:9: userland[0] "Dock setup" → hash: expected 64 hex digits, got 63',
        f"error: {path}:8:9: userland[1] \"Other\" → type: 'userscrpt' is not an item type; expected one of "
        "package, rootscript, userscript, rootfile, userfile, wait (did you mean 'userscript'?)",
        f"{path}: invalid (2 errors, 0 warnings)",
    ]


def test_github_format_prints_annotations(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(BROKEN)
    code, out, _ = run(["validate", "--format", "github", str(path)], capsys)
    assert code == 2
    first = out.splitlines()[0]
    assert first.startswith(f"::error file={path},line=6,col=9::userland[0]")


def test_json_format_is_machine_readable(capsys: pytest.CaptureFixture[str]) -> None:
    files = [
        str(MANIFESTS / "bonniernews-bootstrap.json"),
        str(MANIFESTS / "invalid" / "windowsadmins-installapplications-example.json"),
    ]
    code, out, _ = run(["validate", "--format", "json", *files], capsys)
    assert code == 2
    doc = json.loads(out)
    assert [m["valid"] for m in doc["manifests"]] == [True, False]
    assert doc["manifests"][1]["errors"][0] == {
        "source": files[1],
        "line": 3,
        "col": 5,
        "message": "setupassistant[0] → name: missing; every item needs a name",
    }


def test_missing_file_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["plan", "/nonexistent/m.yaml"], capsys)
    assert (code, out) == (2, "")
    assert err == "error: /nonexistent/m.yaml: no such file; check the manifest path\n"


def test_bad_option_value_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["plan", str(ROOT / "manifests" / "demo.yaml"), "--arch", "ppc"], capsys)
    assert code == 2
    assert err == "error: --arch 'ppc': expected arm64 or x86_64\n"


def test_unknown_option_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["validate", "--bogus", "x"], capsys)
    assert code == 2
    assert "No such option: --bogus" in err


def test_plan_json_rehearses_another_mac(capsys: pytest.CaptureFixture[str]) -> None:
    path = MANIFESTS / "macadmins-installapplications-README-example.json"
    code, out, _ = run(
        ["plan", str(path), "--json", "--arch", "x86_64", "--os-version", "13.6", "--model", "iMac20,1"],
        capsys,
    )
    assert code == 0
    doc = json.loads(out)
    assert doc["facts"]["arch"] == "x86_64"
    assert [(s["id"], s["action"]) for s in doc["steps"]] == [
        # The README's placeholder hashes ("sha256 hash"): the run would refuse these items.
        ("preflight[0]", "refused"),
        ("setupassistant[0]", "refused"),
        ("userland[0]", "skip"),
        ("userland[1]", "refused"),
        ("userland[2]", "refused"),
    ]
    assert doc["steps"][2]["reason"] == "skip_if: arch is x86_64"


def test_convert_writes_a_valid_native_manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_file = tmp_path / "m.yaml"
    code, _, err = run(
        ["convert", str(MANIFESTS / "erikng-installapplicationsdemo-demo.json"), "-o", str(out_file)], capsys
    )
    assert code == 0
    assert f"wrote {out_file}" in err
    assert run(["validate", str(out_file)], capsys)[0] == 0
    assert (
        run(
            ["convert", str(MANIFESTS / "erikng-installapplicationsdemo-demo.json"), "-o", str(out_file)],
            capsys,
        )[0]
        == 2
    )


def test_unexpected_error_exits_3_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bootstrapper.commands import validate

    def boom(*args: object, **kwargs: object) -> int:
        raise RuntimeError("kaboom")

    monkeypatch.setattr(validate, "check", boom)
    code, _, err = run(["validate", "x.yaml"], capsys)
    assert code == 3
    lines = err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("unexpected error: RuntimeError: kaboom; details in ")
    crash_log = Path(lines[0].rsplit(" ", 1)[1])
    assert "Traceback" in crash_log.read_text()
    crash_log.unlink()


def test_keyboard_interrupt_exits_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bootstrapper.commands import validate

    def interrupted(*args: object, **kwargs: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(validate, "check", interrupted)
    assert run(["validate", "x.yaml"], capsys)[0] == 130


def test_the_installed_command_prints_no_traceback_for_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("format: 1\nuserland: [\n")
    proc = subprocess.run(
        [sys.executable, "-m", "bootstrapper", "validate", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "invalid YAML" in proc.stdout


def test_schema_command_prints_the_committed_schema(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["schema"], capsys)
    assert code == 0
    assert out == (ROOT / "manifests" / "schema.json").read_text()


def test_convert_writes_nothing_that_does_not_validate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_file = tmp_path / "m.yaml"
    source = MANIFESTS / "macadmins-installapplications-README-example.json"
    code, out, err = run(["convert", str(source), "-o", str(out_file)], capsys)
    assert code == 2
    assert not out_file.exists()
    assert err.splitlines()[-1] == (
        f"error: {source}: the converted manifest would have 5 problems (listed above); "
        "fix them in the bootstrap.json and convert again"
    )
    assert (
        "  userland[2] \"Example Script (2)\" → hash: expected 64 hex digits (sha256), got 'sha256 hash'"
        in err
    )
    code, out, _ = run(["convert", str(source)], capsys)
    assert (code, out) == (2, "")


def _screen(*args: str, code: str | None = None) -> subprocess.CompletedProcess[str]:
    """The installed command's own stdout and stderr: what an admin sees, with no test logging set up."""
    argv = [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", "bootstrapper", *args]
    return subprocess.run(argv, capture_output=True, text=True, check=False, cwd=ROOT)


def test_convert_to_an_unwritable_path_is_one_line() -> None:
    proc = _screen(
        "convert", str(MANIFESTS / "erikng-installapplicationsdemo-demo.json"), "-o", "/proc/x.yaml"
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.splitlines()[-1].startswith("error: /proc/x.yaml: cannot write it (")
    assert "Traceback" not in proc.stderr


def test_an_unexpected_error_shows_one_line_and_the_crash_log_only() -> None:
    boom = (
        "import sys\n"
        "from bootstrapper import cli\n"
        "from bootstrapper.commands import validate\n"
        "def boom(*a, **k): raise RuntimeError('kaboom')\n"
        "validate.check = boom\n"
        "sys.exit(cli.main(sys.argv[1:]))\n"
    )
    proc = _screen("validate", "x.yaml", code=boom)
    assert proc.returncode == 3
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("unexpected error: RuntimeError: kaboom; details in ")
    Path(lines[0].rsplit(" ", 1)[1]).unlink()


def _commands(group: object, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path below `group` (hidden ones too), e.g. ("sandbox", "boot")."""
    found: list[tuple[str, ...]] = []
    for name, command in getattr(group, "commands", {}).items():
        path = (*prefix, name)
        found.extend(_commands(command, path) if hasattr(command, "commands") else [path])
    return found


def test_every_usage_line_names_its_arguments_in_capitals(capsys: pytest.CaptureFixture[str]) -> None:
    import typer.main

    paths = _commands(typer.main.get_command(cli.app))
    assert ("validate",) in paths and ("sandbox", "launchctl") in paths
    for path in paths:
        code, out, _ = run([*path, "--help"], capsys)
        usage = out.splitlines()[0]
        assert code == 0 and usage.startswith(f"Usage: bootstrapper {' '.join(path)} "), (path, out)
        words = usage.split()[2 + len(path) :]
        # Arguments read as on any Unix tool: DIR, [ARGS...], MANIFEST...; no braces, no lower case.
        assert all("{" not in w and w.strip("[].") == w.strip("[].").upper() for w in words), usage
