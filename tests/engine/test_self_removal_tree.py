"""Self-removal deletes the tree the running program was loaded from, as on a Mac, where our Python
framework and code live in the folder the last steps remove. Whatever runs after that must already be
in memory: a module imported late would fail with its files gone."""

from __future__ import annotations

import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import bootstrapper
from bootstrapper.paths import Paths
from tests.support.runs import run_argv
from tests.support.site import Site

pytestmark = pytest.mark.slow

#: Starts the program from `lib` only (`-S`: no site-packages, so no editable-install hook): our code
#: and every runtime dependency come from the copy that self-removal deletes. The standard library
#: stays where it is (on a Mac it is in the deleted framework too; copying 125 MB per test is not worth it).
LOADER = """\
import sys
lib, argv = sys.argv[1], sys.argv[2:]
sys.path[:0] = [lib]
import bootstrapper, httpx, yaml
for module in (bootstrapper, httpx, yaml):
    assert module.__file__.startswith(lib), module.__file__
from bootstrapper.cli import main
raise SystemExit(main(argv))
"""


def _runtime_closure() -> set[str]:
    """bootstrapper's runtime dependencies, transitively, as installed distribution names."""
    seen: set[str] = set()
    todo = ["bootstrapper"]
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        for text in metadata.requires(name) or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return seen - {"bootstrapper"}


def _copy_runtime(lib: Path) -> None:
    """Our package and the files of every runtime dependency, laid out as in site-packages."""
    shutil.copytree(
        Path(bootstrapper.__file__).parent, lib / "bootstrapper", ignore=shutil.ignore_patterns("__pycache__")
    )
    for name in _runtime_closure():
        dist = metadata.distribution(name)
        for file in dist.files or []:
            source = Path(str(dist.locate_file(file)))
            if file.parts[0].startswith("..") or "__pycache__" in file.parts or not source.is_file():
                continue
            target = lib / file
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


@pytest.mark.parametrize("final_action", ["none", "reboot"])
def test_self_removal_from_a_program_whose_own_tree_is_deleted(
    site: Site, tmp_path: Path, final_action: str
) -> None:
    root = tmp_path / "mac"
    paths = Paths(root=root)
    lib = paths.install_dir / "lib"
    _copy_runtime(lib)
    step = site.script("s.sh", "touch $BOOTSTRAPPER_ROOT/ran")
    url = site.manifest(
        {"final_action": final_action, "setupassistant": [{"name": "s", "type": "rootscript", **step}]}
    )
    argv = run_argv(url, root)[3:]  # what follows `python -m bootstrapper`
    done = subprocess.run(
        [sys.executable, "-S", "-c", LOADER, str(lib), *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (root / "ran").exists()
    assert not paths.install_dir.exists()  # the program's own tree is gone ...
    assert "Error" not in done.stderr and "Traceback" not in done.stderr, (
        done.stderr
    )  # ... and nothing missed it
    if final_action == "reboot":
        assert "reboot" in paths.launchd_journal.read_text()


def test_before_removal_every_module_of_ours_is_loaded() -> None:
    """What the last steps may import late is in memory before the files go (a fresh interpreter)."""
    code = """\
import pkgutil, sys, bootstrapper
from bootstrapper.engine.cleanup import load_ourselves
loaded = load_ourselves()
names = [i.name for i in pkgutil.walk_packages(bootstrapper.__path__, "bootstrapper.")]
missing = [n for n in names if not n.endswith(".__main__") and n not in sys.modules]
print(loaded, missing)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    loaded, missing = out.stdout.split(" ", 1)
    assert int(loaded) > 10 and missing.strip() == "[]", out.stdout
