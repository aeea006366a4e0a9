"""A Python runtime every uid can run, built once per test session.

On a Mac our runtime is installed world-readable under /Library, so launchd can start the agent as
the logged-in user. Here the test interpreter may live in a root-only folder (pyenv under /root, a
virtual environment in a clone under /root), which a uid-501 agent cannot execute. `build` makes the
equivalent of the Mac's install: a copy of this interpreter, its standard library (without its test
suite and the tools nobody runs), and bootstrapper with its runtime dependencies, in a 0755 folder.
`sandbox install --runtime` points the sandbox's launcher at it.
"""

from __future__ import annotations

import compileall
import importlib.metadata as md
import os
import re
import shutil
import sys
import sysconfig
from pathlib import Path

import bootstrapper

#: Standard-library folders a daemon or agent never imports; the test suite alone is 120 MB.
_STDLIB_SKIP = {
    "test",
    "site-packages",
    "idlelib",
    "tkinter",
    "turtledemo",
    "ensurepip",
    "lib2to3",
    "venv",
}
_REQUIREMENT = re.compile(r"^[A-Za-z0-9._-]+")


def _place(src: str, dst: str) -> object:
    """A hard link when the two folders share a file system (the bytes are the same, and it is
    instant), else a copy; either way the file keeps its mode, so what was readable stays readable."""
    try:
        os.link(src, dst)
    except OSError:
        return shutil.copy2(src, dst)
    return dst


def _distributions(name: str) -> list[md.Distribution]:
    """`name` and everything it requires at run time (extras and markers that do not apply left out)."""
    seen: dict[str, md.Distribution] = {}
    todo = [name]
    while todo:
        wanted = todo.pop()
        key = wanted.lower().replace("_", "-")
        if key in seen:
            continue
        try:
            dist = md.distribution(wanted)
        except md.PackageNotFoundError:
            continue  # a requirement whose marker excludes this Python (checked below, roughly)
        seen[key] = dist
        for requirement in dist.requires or []:
            head, _, marker = requirement.partition(";")
            if "extra" in marker:
                continue
            match = _REQUIREMENT.match(head.strip())
            if match:
                todo.append(match.group(0))
    return list(seen.values())


def build(folder: Path) -> Path:
    """A runtime in `folder` (created 0755); returns its interpreter, the path to give `--runtime`."""
    base = Path(sys.base_prefix)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)
    stdlib = Path(sysconfig.get_paths(vars={"installed_base": str(base), "base": str(base)})["stdlib"])
    target_lib = folder / "lib" / version
    shutil.copytree(
        stdlib,
        target_lib,
        copy_function=_place,
        ignore=lambda where, names: [
            n for n in names if Path(where) == stdlib and (n in _STDLIB_SKIP or n.startswith("config-"))
        ],
        symlinks=True,
    )
    libdir = sysconfig.get_config_var("LIBDIR")
    ldlibrary = sysconfig.get_config_var("INSTSONAME") or sysconfig.get_config_var("LDLIBRARY")
    shared = bool(sysconfig.get_config_var("Py_ENABLE_SHARED")) and libdir and ldlibrary
    if shared:
        _place(str(Path(libdir) / ldlibrary), str(folder / "lib" / ldlibrary))
    bindir = folder / "bin"
    bindir.mkdir(mode=0o755)
    real = bindir / f"{version}.bin"
    shutil.copy2(os.path.realpath(sys._base_executable), real)  # type: ignore[attr-defined]
    site = target_lib / "site-packages"
    site.mkdir(mode=0o755)
    _copy_distributions(site)
    compileall.compile_dir(site, quiet=2, workers=1)
    # The interpreter was linked against libpython where it was built (an absolute RUNPATH, possibly
    # in a folder other uids cannot enter): the launcher says where the copy is, as a relocatable
    # Python distribution does. Nothing else differs from running the interpreter itself.
    python = bindir / version
    lib = f"LD_LIBRARY_PATH={folder / 'lib'} " if shared else ""
    python.write_text(f'#!/bin/sh\n{lib}exec {real} "$@"\n')
    python.chmod(0o755)
    return python


def _copy_distributions(site: Path) -> None:
    """bootstrapper's source (a snapshot of this checkout, whatever way it is installed) and the
    installed files of every distribution it needs, with their compiled bytecode."""
    source = Path(bootstrapper.__file__).parent
    shutil.copytree(source, site / "bootstrapper")
    for dist in _distributions("bootstrapper"):
        if (dist.metadata["Name"] or "").lower() == "bootstrapper":
            continue
        for file in dist.files or []:
            src = Path(str(dist.locate_file(file)))
            if ".." in file.parts or not src.is_file():
                continue
            dst = site / file
            dst.parent.mkdir(parents=True, exist_ok=True)
            if not dst.exists():
                _place(str(src), str(dst))
