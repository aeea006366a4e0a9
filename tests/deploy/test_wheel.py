"""The wheel the runtime bundle installs carries the runtime only: the package build tooling and the
package writer stay in the checkout, and nothing shipped imports them."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
#: Build and test tooling that must never reach a Mac (pkg/tooling/ and tests/support/pkgwriter.py).
TOOLING = (
    "build.py",
    "payload.py",
    "rehearse.py",
    "committed.py",
    "templates.py",
    "pins.py",
    "lock.py",
    "launcher.py",
    "launcher.c",
    "writer.py",
    "pkgwriter.py",
)
#: What the daemon and the `deploy profile` command need at run time.
RUNTIME = (
    "bootstrapper/deploy/launchd.py",
    "bootstrapper/deploy/layout.py",
    "bootstrapper/deploy/profile.py",
    "bootstrapper/engine/provision.py",
    "bootstrapper/flatpkg/package.py",
)
#: Imports every shipped module from the unpacked wheel alone, then names any checkout module it pulled in.
IMPORT_ALL = """
import importlib, pkgutil, sys
sys.path.insert(0, sys.argv[1])
import bootstrapper
assert bootstrapper.__file__.startswith(sys.argv[1]), bootstrapper.__file__
for module in pkgutil.walk_packages(bootstrapper.__path__, "bootstrapper."):
    if not module.name.endswith(".__main__"):
        importlib.import_module(module.name)
print(" ".join(sorted(m for m in sys.modules if m.split(".")[0] in ("pkg", "tests"))))
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(out), str(REPO)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("bootstrapper-*.whl")
    return built


@pytest.mark.slow
def test_the_wheel_leaves_the_build_tooling_and_the_writer_out(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    assert [n for n in names if n.rsplit("/", 1)[-1] in TOOLING] == []
    assert [n for n in names if n.split("/")[0] in ("pkg", "tests")] == []
    assert set(RUNTIME) <= set(names)


@pytest.mark.slow
def test_every_shipped_module_imports_without_the_checkout(wheel: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(tmp_path / "site")
    result = subprocess.run(
        [sys.executable, "-I", "-c", IMPORT_ALL, str(tmp_path / "site")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
