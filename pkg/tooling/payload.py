"""Assemble the package payload (the files `pkgbuild` packs) and check it without a Mac.

Layout under the build folder:
    root/       what lands on the Mac: launchd plists, the launcher, (on macOS) the runtime bundle
    scripts/    preinstall and postinstall
    Distribution.xml

Reproducible: every file and folder gets the mtime SOURCE_DATE_EPOCH (default: the last commit's
time), modes are fixed (0755 folders and programs, 0644 data), owners are root's when we run as root,
and `archive` writes the tree in sorted order with no owner names or extra headers. Two runs from the
same commit give the same bytes, which is how an admin checks a package against a tag.
"""

from __future__ import annotations

import hashlib
import io
import os
import plistlib
import shutil
import stat
import subprocess
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from bootstrapper import __version__
from bootstrapper.atomic import write_atomic
from bootstrapper.config import coerce, types
from bootstrapper.deploy import launchd
from bootstrapper.deploy.layout import LAUNCHER, real_paths, template_values
from bootstrapper.errors import UsageError
from bootstrapper.process import run_sync
from pkg.tooling import launcher, pins
from pkg.tooling.templates import render

#: The checkout's pkg/ folder: the templates for scripts, Distribution and launcher.
TEMPLATES = Path(__file__).resolve().parents[1]
#: Written into every folder `assemble` creates, so that it never wipes a folder it did not make.
MARKER = ".bootstrapper-payload"
SCRIPTS = ("preinstall", "postinstall")
#: How long `sh -n` and shellcheck may take per script.
CHECK_TIMEOUT = 60.0


@dataclass(frozen=True)
class Payload:
    base: Path

    @property
    def root(self) -> Path:
        return self.base / "root"

    @property
    def scripts(self) -> Path:
        return self.base / "scripts"

    @property
    def distribution(self) -> Path:
        return self.base / "Distribution.xml"

    def file(self, path: str | os.PathLike[str]) -> Path:
        """Where an absolute path on the Mac lives inside the payload root."""
        return self.root.joinpath(*PurePosixPath(os.fspath(path)).parts[1:])


def rendered(name: str, templates: Path = TEMPLATES, version: str = __version__) -> str:
    """A package template with every placeholder filled; scripts get the shared functions inlined."""
    values = template_values(version)
    values["INTERPRETER"] = str(pins.load().interpreter)
    values["COMMON"] = render(
        (templates / "scripts" / "common.sh.in").read_text(encoding="utf-8"), values, name="common.sh.in"
    ).rstrip("\n")
    text = (templates / name).read_text(encoding="utf-8")
    return render(text, values, name=name)


def assemble(
    out: Path,
    *,
    templates: Path = TEMPLATES,
    version: str = __version__,
    config: Mapping[str, Any] | None = None,
    epoch: int | None = None,
) -> Payload:
    """Write a fresh payload tree into `out`; `config` becomes the config.plist shipped in the package.

    The launcher is compiled for this machine (a stand-in `make pkg` replaces with the universal2 build).
    """
    _fresh(out)
    payload = Payload(out)
    paths = real_paths()
    _write(payload.file(paths.launch_daemon_plist), launchd.dumps(launchd.daemon_plist()), 0o644)
    _write(payload.file(paths.launch_agent_plist), launchd.dumps(launchd.agent_plist()), 0o644)
    _mkdirs(payload.file(LAUNCHER).parent)
    launcher.build(payload.file(LAUNCHER), pins.load().interpreter)
    for script in SCRIPTS:
        _write(payload.scripts / script, rendered(f"scripts/{script}.in", templates, version).encode(), 0o755)
    _write(payload.distribution, rendered("Distribution.xml.in", templates, version).encode(), 0o644)
    if config:
        checked = {key: coerce(key, value, f"{key} in the package config") for key, value in config.items()}
        unknown = sorted(set(checked) - set(types()))
        if unknown:
            raise UsageError("package config: unknown settings " + ", ".join(unknown))
        data = plistlib.dumps({k: v for k, v in checked.items() if v is not None}, sort_keys=True)
        _write(payload.file(paths.config_plist), data, 0o644)
    normalize(payload, source_date_epoch() if epoch is None else epoch)
    return payload


def source_date_epoch() -> int:
    """SOURCE_DATE_EPOCH, else the last commit's time: the same checkout always stamps the same time."""
    raw = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not raw:
        try:
            raw = subprocess.run(
                ["git", "-C", str(TEMPLATES.parent), "log", "-1", "--format=%ct"],  # noqa: S607
                capture_output=True, text=True, check=True, timeout=CHECK_TIMEOUT,
            ).stdout.strip()  # fmt: skip
        except (OSError, subprocess.SubprocessError):
            raw = ""
    if not raw.isdigit():
        raise UsageError(
            f"SOURCE_DATE_EPOCH={raw!r}: expected whole seconds since 1970; set it (outside a git "
            "checkout, to the release's commit time: git log -1 --format=%ct)"
        )
    return int(raw)


def normalize(payload: Payload, epoch: int) -> None:
    """Fixed modes, root ownership (when we can), and one mtime for everything under the payload."""
    entries = sorted(payload.base.rglob("*"), key=lambda p: (-len(p.parts), str(p)))
    for path in [*entries, payload.base]:
        if path.is_symlink():
            continue
        if path.is_dir():
            path.chmod(0o755)
        else:
            path.chmod(0o755 if path.stat().st_mode & stat.S_IXUSR else 0o644)
        if os.geteuid() == 0:
            os.chown(path, 0, 0)
        os.utime(path, (epoch, epoch))


def digest(payload: Payload) -> list[str]:
    """`sha256 mode mtime path` for every file and folder, sorted: what two builds must agree on."""
    lines = []
    for path in sorted(payload.base.rglob("*")):
        st = path.lstat()
        data = path.read_bytes() if path.is_file() else b""
        rel = path.relative_to(payload.base).as_posix()
        lines.append(f"{hashlib.sha256(data).hexdigest()} {st.st_mode:o} {int(st.st_mtime)} {rel}")
    return lines


def archive(payload: Payload, out: Path, epoch: int) -> Path:
    """A tar of the payload with sorted members, uid/gid 0, no names and one mtime: byte-identical
    for the same commit, so its sha256 identifies a build."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for path in sorted(payload.base.rglob("*")):
            info = tar.gettarinfo(str(path), arcname=path.relative_to(payload.base).as_posix())
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = epoch
            if info.isreg():
                with path.open("rb") as fh:
                    tar.addfile(info, fh)
            else:
                tar.addfile(info)
    write_atomic(out, buffer.getvalue(), 0o644)
    return out


def verify(payload: Payload, *, runtime: bool = False) -> list[str]:
    """Everything wrong with a payload; `runtime` also requires the bundled interpreter (macOS builds)."""
    paths = real_paths()
    problems: list[str] = []
    for kind, where, label in (
        ("daemon", paths.launch_daemon_plist, paths.daemon_label),
        ("agent", paths.launch_agent_plist, paths.agent_label),
    ):
        file = payload.file(where)
        if not file.is_file():
            problems.append(f"{where}: missing from the payload")
            continue
        found = launchd.check(file.read_bytes(), kind, label)
        problems += [f"{where}: {p}" for p in found]
        if not found:
            program = plistlib.loads(file.read_bytes())["ProgramArguments"][0]
            problems += [f"{where}: {p}" for p in _program_problems(payload, program)]
        if file.stat().st_mode & 0o022:
            problems.append(f"{where}: writable by group or others; launchd refuses such plists")
    if runtime:
        interpreter = str(pins.load().interpreter)
        problems += [f"{LAUNCHER}: {p}" for p in _program_problems(payload, interpreter)]
    for script in SCRIPTS:
        problems += [f"scripts/{script}: {p}" for p in check_script(payload.scripts / script)]
    if not payload.distribution.is_file():
        problems.append("Distribution.xml: missing")
    return problems


def check_script(script: Path) -> list[str]:
    """`sh -n`, then shellcheck when it is installed (it is optional: `make test` must not need it)."""
    if not script.is_file():
        return ["missing"]
    if not os.access(script, os.X_OK):
        return ["not executable"]
    if not script.read_text(encoding="utf-8").startswith("#!/bin/sh\n"):
        return ["must start with #!/bin/sh"]
    result = run_sync(["/bin/sh", "-n", script], timeout=CHECK_TIMEOUT)
    if not result.ok:
        return [f"sh -n: {result.tail.strip()}"]
    shellcheck = shutil.which("shellcheck")
    if shellcheck:
        result = run_sync([shellcheck, "--shell=sh", "--severity=style", script], timeout=CHECK_TIMEOUT)
        if not result.ok:
            return [f"shellcheck:\n{result.tail.rstrip()}"]
    return []


def _program_problems(payload: Payload, program: str) -> list[str]:
    file = payload.file(program)
    if not file.is_file():
        return [f"{program} is not in the payload"]
    if not file.stat().st_mode & stat.S_IXUSR:
        return [f"{program} is not executable"]
    return []


def _fresh(out: Path) -> None:
    if out.exists():
        if not out.is_dir() or out.is_symlink():
            raise UsageError(f"{out}: not a folder; choose another payload folder")
        if any(out.iterdir()) and not (out / MARKER).is_file():
            raise UsageError(f"{out}: not empty and not a payload folder; refusing to replace it")
        shutil.rmtree(out)
    out.mkdir(parents=True, mode=0o755)
    (out / MARKER).write_text("assembled by pkg.tooling.payload\n", encoding="utf-8")


def _mkdirs(folder: Path) -> None:
    for parent in [*reversed(folder.parents), folder]:
        if not parent.exists():
            parent.mkdir(mode=0o755)
            parent.chmod(0o755)


def _write(path: Path, data: bytes, mode: int) -> None:
    _mkdirs(path.parent)
    write_atomic(path, data, mode)
