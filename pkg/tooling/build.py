"""`make pkg`: the runtime bundle, then pkgbuild + productbuild (+ productsign, + notarization).

Runtime bundle: python.org's universal2 Python.framework made relocatable by relocatable-python (the
tool Munki and AutoPkg build their embedded Python with), trimmed, with bootstrapper and its pinned
dependencies installed into it as wheels only. A dependency that ships separate arm64 and x86_64
wheels instead of universal2 ones is fused (a guard: today's runtime dependencies are pure Python): the other
architecture's wheel is downloaded and each binary merged with `lipo -create`. Every Mach-O is then
signed, and the build is refused when any Mach-O file still lacks arm64 or x86_64. See
docs/deployment.md for why this and not PyInstaller.

The decisions (which files are Mach-O, what `lipo -archs` means, the argv of every tool, the signing
order, the requirements pin) are plain functions tested on Linux; `build_package` strings them
together and needs macOS.
"""

from __future__ import annotations

import csv
import importlib.metadata
import io
import os
import plistlib
import re
import shutil
import struct
import sys
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bootstrapper import __version__
from bootstrapper.deploy.layout import COMPONENT_PKG, FRAMEWORK, INTERPRETER, PYTHON_VERSION
from bootstrapper.errors import UsageError
from bootstrapper.paths import PACKAGE_ID
from bootstrapper.process import run_sync
from pkg.tooling.payload import Payload, assemble, verify

REQUIRED_ARCHS = frozenset({"arm64", "x86_64"})
#: The last 3.11 release with a python.org macOS installer (later 3.11 releases are source-only).
PYTHON_FULL_VERSION = "3.11.9"
RELOCATABLE_PYTHON_URL = "https://github.com/gregneagle/relocatable-python.git"
#: Under Python.framework/Versions/X.Y: what the daemon never needs (tests, GUI toolkits, installers).
TRIM = (
    f"lib/python{PYTHON_VERSION}/test",
    f"lib/python{PYTHON_VERSION}/idlelib",
    f"lib/python{PYTHON_VERSION}/tkinter",
    f"lib/python{PYTHON_VERSION}/turtledemo",
    f"lib/python{PYTHON_VERSION}/ensurepip",
    f"lib/python{PYTHON_VERSION}/lib2to3",
    f"lib/python{PYTHON_VERSION}/site-packages/pip",
    f"lib/python{PYTHON_VERSION}/site-packages/setuptools",
    f"lib/python{PYTHON_VERSION}/site-packages/_distutils_hack",
    f"lib/python{PYTHON_VERSION}/site-packages/wheel",
    "share",
)
TRIM_GLOBS = (
    f"lib/python{PYTHON_VERSION}/lib-dynload/_tkinter*",
    f"lib/python{PYTHON_VERSION}/site-packages/pip-*.dist-info",
    f"lib/python{PYTHON_VERSION}/site-packages/setuptools-*.dist-info",
    f"lib/python{PYTHON_VERSION}/site-packages/wheel-*.dist-info",
    "bin/wheel*",
    "lib/libtcl*",
    "lib/libtk*",
    "lib/tcl*",
    "lib/tk*",
    "lib/itcl*",
    "bin/idle*",
    "bin/pydoc*",
    "bin/2to3*",
    "bin/pip*",
)
TOOL_TIMEOUT = 1800.0

_FAT = {b"\xca\xfe\xba\xbe", b"\xca\xfe\xba\xbf"}
_THIN = {b"\xfe\xed\xfa\xce", b"\xce\xfa\xed\xfe", b"\xfe\xed\xfa\xcf", b"\xcf\xfa\xed\xfe"}


# --- decisions (tested on Linux) -----------------------------------------------------------------


def is_macho(head: bytes) -> bool:
    """Mach-O, thin or fat, from a file's first 8 bytes. A Java class file shares the fat magic; its
    next word is a class-file version (45 or more), while a fat header counts its architectures."""
    magic = head[:4]
    if magic in _THIN:
        return True
    if magic in _FAT and len(head) >= 8:
        count: int = struct.unpack(">I", head[4:8])[0]
        return 0 < count < 20
    return False


def find_macho(root: Path) -> list[Path]:
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        with path.open("rb") as fh:
            if is_macho(fh.read(8)):
                found.append(path)
    return found


def archs(lipo_output: str) -> frozenset[str]:
    """`lipo -archs FILE` prints the architectures separated by spaces: `x86_64 arm64`."""
    return frozenset(lipo_output.split())


def not_universal(lipo_outputs: Mapping[str, str]) -> list[str]:
    """One line per binary that would not run on both Apple silicon and Intel Macs."""
    problems = []
    for name, output in sorted(lipo_outputs.items()):
        missing = REQUIRED_ARCHS - archs(output)
        if missing:
            have = " ".join(sorted(archs(output))) or "nothing"
            problems.append(f"{name}: has {have}, lacks {' and '.join(sorted(missing))}: not universal2")
    return problems


def fuse_platform(have: frozenset[str]) -> str:
    """The pip platform tag of the wheel that supplies the architecture a binary lacks."""
    missing = REQUIRED_ARCHS - have
    if missing == {"arm64"}:
        return "macosx_11_0_arm64"
    if missing == {"x86_64"}:
        return "macosx_11_0_x86_64"
    raise ValueError(f"cannot fuse a binary that has {sorted(have)}")


def binaries_by_distribution(site_packages: Path) -> dict[tuple[str, str], list[str]]:
    """(name, version) → the Mach-O files each installed distribution's RECORD lists."""
    out: dict[tuple[str, str], list[str]] = {}
    for record in sorted(site_packages.glob("*.dist-info/RECORD")):
        meta = record.parent / "METADATA"
        fields = dict(
            line.split(": ", 1) for line in meta.read_text(encoding="utf-8").splitlines()[:10] if ": " in line
        )
        key = (fields.get("Name", record.parent.name).lower(), fields.get("Version", ""))
        for row in csv.reader(io.StringIO(record.read_text(encoding="utf-8"))):
            if not row or row[0].startswith(".."):
                continue
            file = site_packages / row[0]
            if file.is_file() and not file.is_symlink():
                with file.open("rb") as fh:
                    if is_macho(fh.read(8)):
                        out.setdefault(key, []).append(row[0])
    return out


def pip_download_argv(python: Path, name: str, version: str, platform: str, dest: Path) -> list[str]:
    return [
        str(python), "-I", "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
        "--platform", platform, "--python-version", PYTHON_VERSION, "--implementation", "cp",
        "--dest", str(dest), f"{name}=={version}",
    ]  # fmt: skip


def wheel_binaries(wheel: Path) -> dict[str, bytes]:
    """The Mach-O members of a wheel, by their path inside site-packages."""
    with zipfile.ZipFile(wheel) as zf:
        return {n: zf.read(n) for n in zf.namelist() if not n.endswith("/") and is_macho(zf.read(n)[:8])}


def runtime_requirements(dist: str = "bootstrapper") -> list[str]:
    """`name==version` for every runtime dependency, as installed in this environment (the tested set)."""
    pins: dict[str, str] = {}
    todo = [dist]
    while todo:
        for req in importlib.metadata.requires(todo.pop()) or []:
            if "extra ==" in req.replace(" ", "").replace("extra==", "extra =="):
                continue
            match = re.match(r"[A-Za-z0-9._-]+", req)
            if not match:
                continue
            name = match.group(0).lower().replace("_", "-")
            if name in pins:
                continue
            try:
                pins[name] = importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                continue  # a marker excluded it here (another Python or platform)
            todo.append(name)
    return [f"{name}=={version}" for name, version in sorted(pins.items())]


def non_relocatable(component_plist: bytes) -> bytes:
    """Installer "relocates" a bundle it finds elsewhere on the disk (a Python.app with the same id);
    ours must land exactly where the launcher looks."""
    bundles = plistlib.loads(component_plist)

    def fix(entries: list[dict[str, Any]]) -> None:
        for entry in entries:
            entry["BundleIsRelocatable"] = False
            entry["BundleOverwriteAction"] = "upgrade"
            fix(entry.get("ChildBundles", []))

    fix(bundles)
    return plistlib.dumps(bundles, sort_keys=True)


def signing_order(machos: Iterable[Path], framework_version: Path) -> list[Path]:
    """Inside out: every nested binary before the bundle that seals it, Python.app before the framework."""
    app = framework_version / "Resources" / "Python.app"
    main_binary = framework_version / "Python"
    loose = [p for p in machos if p != main_binary and app not in p.parents]
    ordered = sorted(loose, key=lambda p: (-len(p.parts), str(p)))
    return [*ordered, app, framework_version]


def codesign_argv(identity: str, target: Path) -> list[str]:
    """Ad hoc (`-`) is enough to run on Apple silicon; a Developer ID needs hardened runtime and a
    timestamp to pass notarization."""
    if identity == "-":
        return ["/usr/bin/codesign", "--force", "--sign", "-", str(target)]
    return [
        "/usr/bin/codesign", "--force", "--options", "runtime", "--timestamp", "--sign", identity, str(target)
    ]  # fmt: skip


def pkgbuild_argv(payload: Payload, component_plist: Path, version: str, out: Path) -> list[str]:
    return [
        "/usr/bin/pkgbuild",
        "--root", str(payload.root),
        "--scripts", str(payload.scripts),
        "--component-plist", str(component_plist),
        "--identifier", PACKAGE_ID,
        "--version", version,
        "--install-location", "/",
        "--ownership", "recommended",
        str(out),
    ]  # fmt: skip


def productbuild_argv(payload: Payload, out: Path) -> list[str]:
    return [
        "/usr/bin/productbuild",
        "--distribution", str(payload.distribution),
        "--package-path", str(payload.base),
        str(out),
    ]  # fmt: skip


def productsign_argv(identity: str, unsigned: Path, signed: Path, keychain: str | None = None) -> list[str]:
    extra = ["--keychain", keychain] if keychain else []
    return ["/usr/bin/productsign", "--sign", identity, "--timestamp", *extra, str(unsigned), str(signed)]


def notarize_argvs(profile: str, pkg: Path) -> list[list[str]]:
    return [
        ["/usr/bin/xcrun", "notarytool", "submit", str(pkg), "--keychain-profile", profile, "--wait"],
        ["/usr/bin/xcrun", "stapler", "staple", str(pkg)],
    ]


@dataclass(frozen=True)
class Identities:
    """From the environment (read by the build script, not here): who signs what."""

    app: str = "-"
    installer: str | None = None
    keychain: str | None = None
    notary_profile: str | None = None


# --- the macOS build ----------------------------------------------------------------------------


def require_macos() -> None:
    if sys.platform != "darwin":
        raise UsageError(
            "make pkg needs macOS (pkgbuild, productbuild, lipo, codesign); "
            "run `make pkg-payload` to check the payload on this machine"
        )


def build_package(
    build: Path,
    checkout: Path,
    ids: Identities,
    *,
    relocatable_python: Path | None = None,
    config: Mapping[str, Any] | None = None,
    log: Any = print,
) -> Path:
    """Build build/bootstrapper-VERSION.pkg (signed when `ids.installer` is set); return its path."""
    require_macos()
    payload = assemble(build / "pkg", config=config)
    framework = payload.file(FRAMEWORK)
    version_dir = framework / "Versions" / PYTHON_VERSION
    log(f"runtime: python.org {PYTHON_FULL_VERSION} universal2, made relocatable")
    tool = relocatable_python or _fetch_relocatable_python(build)
    _run(
        [
            "/usr/bin/python3", str(tool / "make_relocatable_python_framework.py"),
            "--python-version", PYTHON_FULL_VERSION,
            "--os-version", "11",
            "--destination", str(framework.parent),
        ],
        cwd=tool,
    )  # fmt: skip
    python = payload.file(INTERPRETER)
    wheels = build / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(wheels), str(checkout)])
    requirements = build / "requirements.txt"
    requirements.write_text("\n".join(runtime_requirements()) + "\n", encoding="utf-8")
    _run(
        [
            str(python), "-I", "-m", "pip", "install", "--no-cache-dir", "--disable-pip-version-check",
            "--only-binary", ":all:",
            "-r", str(requirements), *map(str, sorted(wheels.glob("bootstrapper-*.whl"))),
        ]
    )  # fmt: skip
    _fuse(python, version_dir / "lib" / f"python{PYTHON_VERSION}" / "site-packages", build / "fuse", log)
    trim(version_dir)
    _run([str(python), "-I", "-m", "compileall", "-q", "-j0", "--invalidation-mode", "unchecked-hash",
          str(version_dir / "lib")])  # fmt: skip
    machos = find_macho(framework)
    lipo = {str(p.relative_to(payload.root)): _run(["/usr/bin/lipo", "-archs", str(p)]) for p in machos}
    problems = not_universal(lipo)
    if problems:
        raise UsageError("refusing to build: " + "; ".join(problems))
    for target in signing_order(machos, version_dir):
        _run(codesign_argv(ids.app, target))
    problems = verify(payload, runtime=True)
    if problems:
        raise UsageError("payload check failed: " + "; ".join(problems))
    shown = _run([str(python), "-I", "-m", "bootstrapper", "--version"]).strip()
    log(f"runtime: {shown}, {_size(framework) / 1e6:.0f} MB")
    analyzed = build / "component.plist"
    _run(["/usr/bin/pkgbuild", "--analyze", "--root", str(payload.root), str(analyzed)])
    analyzed.write_bytes(non_relocatable(analyzed.read_bytes()))
    _run(pkgbuild_argv(payload, analyzed, __version__, payload.base / COMPONENT_PKG))
    product = build / f"bootstrapper-{__version__}.pkg"
    unsigned = product.with_suffix(".unsigned.pkg") if ids.installer else product
    product.unlink(missing_ok=True)
    _run(productbuild_argv(payload, unsigned))
    if ids.installer:
        _run(productsign_argv(ids.installer, unsigned, product, ids.keychain))
        unsigned.unlink()
        if ids.notary_profile:
            for argv in notarize_argvs(ids.notary_profile, product):
                _run(argv)
    log(f"package: {product} ({product.stat().st_size / 1e6:.1f} MB)")
    return product


def _fuse(python: Path, site_packages: Path, work: Path, log: Any) -> None:
    """Give every single-architecture binary in site-packages its other half, from the other wheel."""
    for (name, version), files in binaries_by_distribution(site_packages).items():
        have = {rel: archs(_run(["/usr/bin/lipo", "-archs", str(site_packages / rel)])) for rel in files}
        thin = {rel: a for rel, a in have.items() if not a >= REQUIRED_ARCHS}
        if not thin:
            continue
        platform = fuse_platform(next(iter(thin.values())))
        log(f"runtime: fusing {name} {version} with its {platform} wheel")
        dest = work / f"{name}-{platform}"
        _run(pip_download_argv(python, name, version, platform, dest))
        others: dict[str, bytes] = {}
        for wheel in dest.glob("*.whl"):
            others |= wheel_binaries(wheel)
        for rel in thin:
            if rel not in others:
                raise UsageError(f"refusing to build: {name} {version} has no {platform} build of {rel}")
            half = dest / "half.so"
            half.write_bytes(others[rel])
            target = site_packages / rel
            _run(["/usr/bin/lipo", "-create", str(target), str(half), "-output", str(target)])
            half.unlink()


def _fetch_relocatable_python(build: Path) -> Path:
    dest = build / "relocatable-python"
    if not dest.exists():
        _run(["/usr/bin/git", "clone", "--depth", "1", RELOCATABLE_PYTHON_URL, str(dest)])
    return dest


def trim(version_dir: Path) -> None:
    """Remove what the daemon never needs (TRIM, TRIM_GLOBS) from a framework version folder."""
    doomed = [version_dir / rel for rel in TRIM]
    doomed += [p for pattern in TRIM_GLOBS for p in version_dir.glob(pattern)]
    for path in doomed:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def _run(argv: list[str], *, cwd: Path | None = None, env: Mapping[str, str] | None = None) -> str:
    extra = {"HOME": os.environ.get("HOME", "/var/empty"), **(env or {})}
    return run_sync(argv, timeout=TOOL_TIMEOUT, cwd=cwd, env=extra).check().tail
