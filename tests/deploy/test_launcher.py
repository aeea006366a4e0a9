"""The compiled launcher (pkg/launcher/launcher.c), built here with the system `cc`: it execs exactly
the interpreter fixed at build time with `-I -m bootstrapper` and our arguments, whatever the
environment says, and fails with one line and exit 3 when that interpreter is missing."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path, PurePosixPath

import pytest

from bootstrapper.errors import UsageError
from pkg.tooling import launcher

pytestmark = pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler (cc) on this machine")

#: Prints how it was started: its own path, then one argument a line.
FAKE_PYTHON = '#!/bin/sh\nprintf "%s\\n" "$0"\nfor a in "$@"; do printf "[%s]\\n" "$a"; done\n'


@pytest.fixture
def fake_python(tmp_path: Path) -> Path:
    python = tmp_path / "framework" / "bin" / "python3.14"
    python.parent.mkdir(parents=True)
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    return python


def test_it_execs_the_fixed_interpreter_with_our_flags_and_the_arguments(
    tmp_path: Path, fake_python: Path
) -> None:
    exe = launcher.build(tmp_path / "bin" / "bootstrapper", PurePosixPath(fake_python))
    decoy = tmp_path / "decoy"
    decoy.mkdir()
    (decoy / "python3.14").write_text("#!/bin/sh\necho decoy\n")
    (decoy / "python3.14").chmod(0o755)
    env = {"PATH": str(decoy), "PYTHONPATH": str(decoy), "PYTHONHOME": str(decoy)}
    done = subprocess.run(
        [exe, "status", "--json", "two words", ""], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        str(fake_python), "[-I]", "[-m]", "[bootstrapper]", "[status]", "[--json]", "[two words]", "[]"
    ]  # fmt: skip


def test_no_arguments_is_just_the_module(tmp_path: Path, fake_python: Path) -> None:
    exe = launcher.build(tmp_path / "bootstrapper", PurePosixPath(fake_python))
    done = subprocess.run([exe], capture_output=True, text=True, check=False)
    assert done.stdout.splitlines() == [str(fake_python), "[-I]", "[-m]", "[bootstrapper]"]


def test_a_missing_interpreter_is_one_line_and_exit_3(tmp_path: Path) -> None:
    missing = tmp_path / "gone" / "python3.14"
    exe = launcher.build(tmp_path / "bootstrapper", PurePosixPath(missing))
    done = subprocess.run([exe, "status"], capture_output=True, text=True, check=False)
    assert done.returncode == 3
    assert done.stdout == ""
    assert done.stderr == (
        f"bootstrapper: cannot run the bundled Python {missing}: No such file or directory; "
        "reinstall the bootstrapper package\n"
    )


def test_a_relative_interpreter_is_refused_at_build_time(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="absolute interpreter path"):
        launcher.build(tmp_path / "bootstrapper", PurePosixPath("python3"))


def test_the_mac_build_is_universal2_and_warnings_are_errors(tmp_path: Path) -> None:
    argv = launcher.compile_argv(
        "/usr/bin/clang", PurePosixPath("/L/python3.14"), tmp_path / "b", universal=True
    )
    assert argv[:5] == ["/usr/bin/clang", "-arch", "arm64", "-arch", "x86_64"]
    assert "-mmacosx-version-min=11.0" in argv and "-Werror" in argv
    assert '-DBOOTSTRAPPER_INTERPRETER="/L/python3.14"' in argv


def test_a_compiler_failure_is_one_usage_error(tmp_path: Path) -> None:
    false = shutil.which("false")
    assert false
    with pytest.raises(UsageError, match=r"launcher\.c: .*false failed"):
        launcher.build(tmp_path / "bootstrapper", PurePosixPath("/x/python"), compiler=false)
