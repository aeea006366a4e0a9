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
import io
import os
import plistlib
import shutil
import struct
import sys
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bootstrapper import __version__
from bootstrapper.deploy.layout import COMPONENT_PKG, FRAMEWORK, LAUNCHER, MIN_MACOS
from bootstrapper.errors import UsageError
from bootstrapper.hashing import sha256_file
from bootstrapper.paths import PACKAGE_ID
from bootstrapper.platform.macos import parse_check_signature
from bootstrapper.process import run_sync
from pkg.tooling import launcher, lock, pins
from pkg.tooling.payload import Payload, assemble, verify

REQUIRED_ARCHS = frozenset({"arm64", "x86_64"})
#: The hardened-runtime exceptions python.org's own signed interpreter carries (see the file's comments).
ENTITLEMENTS = Path(__file__).resolve().parents[1] / "entitlements.plist"
#: Under Python.framework/Versions/X.Y (`{lib}` is lib/pythonX.Y): what the daemon never needs.
TRIM = (
    "{lib}/test",
    "{lib}/idlelib",
    "{lib}/tkinter",
    "{lib}/turtledemo",
    "{lib}/ensurepip",
    "{lib}/lib2to3",
    "{lib}/site-packages/pip",
    "{lib}/site-packages/setuptools",
    "{lib}/site-packages/_distutils_hack",
    "{lib}/site-packages/wheel",
    "share",
)
TRIM_GLOBS = (
    "{lib}/lib-dynload/_tkinter*",
    "{lib}/site-packages/pip-*.dist-info",
    "{lib}/site-packages/setuptools-*.dist-info",
    "{lib}/site-packages/wheel-*.dist-info",
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


def pip_download_argv(python: Path, requirements: Path, platform: str, short: str, dest: Path) -> list[str]:
    """The other architecture's wheel, accepted only when its hash is in the lock (`requirements`
    holds the one locked line)."""
    return [
        str(python), "-I", "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "--require-hashes",
        "--platform", platform, "--python-version", short, "--implementation", "cp",
        "--dest", str(dest), "-r", str(requirements),
    ]  # fmt: skip


def wheel_binaries(wheel: Path) -> dict[str, bytes]:
    """The Mach-O members of a wheel, by their path inside site-packages."""
    with zipfile.ZipFile(wheel) as zf:
        return {n: zf.read(n) for n in zf.namelist() if not n.endswith("/") and is_macho(zf.read(n)[:8])}


def install_argvs(python: Path, lock_file: Path, wheel: Path) -> list[list[str]]:
    """Dependencies from the lock (hash-checked wheels only), then our own wheel without dependencies."""
    pip = [str(python), "-I", "-m", "pip", "install", "--no-cache-dir", "--disable-pip-version-check"]
    return [
        [*pip, "--require-hashes", "--only-binary=:all:", "--no-deps", "-r", str(lock_file)],
        [*pip, "--no-deps", "--no-index", str(wheel)],
    ]


def check_sha256(file: Path, expected: str) -> None:
    """Refuse a download whose bytes are not the pinned ones."""
    digest = sha256_file(file)
    if digest != expected:
        raise UsageError(
            f"{file.name}: sha256 {digest} is not the pinned {expected} (pkg/pins.toml); "
            "delete it and download again, or check the pin against python.org"
        )


def check_installer_team(check_signature_output: str, expected: str, name: str) -> None:
    """Refuse an installer that `pkgutil --check-signature` does not show signed by the pinned team:
    the second lock beside the hash, so one wrong pin cannot let an unsigned runtime in."""
    team = parse_check_signature(check_signature_output)
    if team.team != expected:
        raise UsageError(
            f"{name}: signed by {team.found}, not the pinned team {expected} "
            "(pkg/pins.toml python.team_id); delete it and download again from python.org"
        )


def relocatable_python_argv(tool: Path, pin: pins.Pins, installers: Path, destination: Path) -> list[str]:
    """relocatable-python fetches `--baseurl % (version, version, os)` with curl; pointing it at the
    file we downloaded and hash-checked means it never fetches anything unverified."""
    base = f"file://{installers}/%s/python-%s-macos%s.pkg"
    return [
        "/usr/bin/python3", str(tool / "make_relocatable_python_framework.py"),
        "--python-version", pin.python_version, "--os-version", "11", "--baseurl", base,
        "--destination", str(destination),
    ]  # fmt: skip


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


def codesign_argv(
    identity: str, target: Path, *, entitlements: Path | None = None, ident: str = ""
) -> list[str]:
    """Ad hoc (`-`) is enough to run on Apple silicon; a Developer ID needs hardened runtime and a
    timestamp to pass notarization. Entitlements go on executables only (they mean nothing on a
    library), as python.org signs its own framework."""
    extra = ["--entitlements", str(entitlements)] if entitlements else []
    extra += ["--identifier", ident] if ident else []
    if identity == "-":
        return ["/usr/bin/codesign", "--force", *extra, "--sign", "-", str(target)]
    return [
        "/usr/bin/codesign", "--force", "--options", "runtime", "--timestamp", *extra,
        "--sign", identity, str(target),
    ]  # fmt: skip


def needs_entitlements(target: Path, version_dir: Path) -> bool:
    """The interpreter executables and Python.app: the binaries that load extension modules."""
    app = version_dir / "Resources" / "Python.app"
    return target == app or (target.parent == version_dir / "bin" and target.name.startswith("python"))


def verify_argvs(signed: Iterable[Path]) -> list[list[str]]:
    return [["/usr/bin/codesign", "--verify", "--strict", "--verbose=2", str(p)] for p in signed]


def check_signature_argv(pkg: Path) -> list[str]:
    return ["/usr/sbin/pkgutil", "--check-signature", str(pkg)]


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
    pin = pins.load()
    expected = pin.installer_sha256()
    payload = assemble(build / "pkg", config=config)
    framework = payload.file(FRAMEWORK)
    log(f"runtime: python.org {pin.python_version} universal2, made relocatable")
    python = _runtime(build, checkout, payload, pin, expected, relocatable_python, log)
    _sign_runtime(payload, pin, ids)
    # the launcher execs the installed path, which does not exist on the build Mac: run the bundle's own
    shown = _run([str(python), "-I", "-m", "bootstrapper", "--version"]).strip()
    log(f"runtime: {shown}, {_size(framework) / 1e6:.0f} MB installed (measured)")
    return _product(build, payload, ids, log)


def _runtime(
    build: Path,
    checkout: Path,
    payload: Payload,
    pin: pins.Pins,
    expected: str,
    relocatable_python: Path | None,
    log: Any,
) -> Path:
    """The relocatable python.org framework in the payload, with our wheel and the locked dependencies."""
    framework = payload.file(FRAMEWORK)
    version_dir = framework / "Versions" / pin.python_short
    installers = build / "python-installers"
    installer = installers / pin.python_version / f"python-{pin.python_version}-macos11.pkg"
    if not installer.is_file():
        installer.parent.mkdir(parents=True, exist_ok=True)
        _run(
            [
                "/usr/bin/curl",
                "--fail",
                "--location",
                "--proto",
                "=https",
                "-o",
                str(installer),
                pin.python_url,
            ]
        )
    check_sha256(installer, expected)
    check_installer_team(_run(check_signature_argv(installer)), pin.python_team_id, installer.name)
    tool = _relocatable_python(build, pin, relocatable_python)
    _run(relocatable_python_argv(tool, pin, installers, framework.parent), cwd=tool)
    python = payload.file(pin.interpreter)
    wheels = build / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(wheels), str(checkout)])
    wheel = max(wheels.glob(f"bootstrapper-{__version__}-*.whl"), default=None)
    if wheel is None:
        raise UsageError(f"no bootstrapper {__version__} wheel in {wheels}; see the pip output above")
    for argv in install_argvs(python, lock.LOCK, wheel):
        _run(argv)
    site = version_dir / "lib" / f"python{pin.python_short}" / "site-packages"
    _fuse(python, site, build / "fuse", pin.python_short, log)
    trim(version_dir)
    _run([str(python), "-I", "-m", "compileall", "-q", "-j0", "--invalidation-mode", "unchecked-hash",
          str(version_dir / "lib")])  # fmt: skip
    launcher.build(payload.file(LAUNCHER), pin.interpreter, universal=True)
    return python


def _sign_runtime(payload: Payload, pin: pins.Pins, ids: Identities) -> None:
    """Every Mach-O universal, signed inside-out (entitlements on the interpreters), then verified."""
    framework = payload.file(FRAMEWORK)
    version_dir = framework / "Versions" / pin.python_short
    machos = find_macho(payload.root)
    lipo = {str(p.relative_to(payload.root)): _run(["/usr/bin/lipo", "-archs", str(p)]) for p in machos}
    problems = not_universal(lipo)
    if problems:
        raise UsageError("refusing to build: " + "; ".join(problems))
    signed = [*signing_order([m for m in machos if framework in m.parents], version_dir), framework]
    for target in signed:
        ent = ENTITLEMENTS if needs_entitlements(target, version_dir) else None
        _run(codesign_argv(ids.app, target, entitlements=ent))
    launcher_file = payload.file(LAUNCHER)
    _run(codesign_argv(ids.app, launcher_file, ident=f"{PACKAGE_ID}.launcher"))
    for argv in verify_argvs([*signed, launcher_file]):
        _run(argv)
    problems = verify(payload, runtime=True)
    if problems:
        raise UsageError("payload check failed: " + "; ".join(problems))


def _product(build: Path, payload: Payload, ids: Identities, log: Any) -> Path:
    """The component package and the product archive around it, signed and notarized when asked."""
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
        _run(check_signature_argv(product))
        if ids.notary_profile:
            for argv in notarize_argvs(ids.notary_profile, product):
                _run(argv)
    log(f"package: {product} ({product.stat().st_size / 1e6:.1f} MB, measured; macOS {MIN_MACOS}+)")
    return product


def _fuse(python: Path, site_packages: Path, work: Path, short: str, log: Any) -> None:
    """Give every single-architecture binary in site-packages its other half, from the other wheel."""
    for (name, version), files in binaries_by_distribution(site_packages).items():
        have = {rel: archs(_run(["/usr/bin/lipo", "-archs", str(site_packages / rel)])) for rel in files}
        thin = {rel: a for rel, a in have.items() if not a >= REQUIRED_ARCHS}
        if not thin:
            continue
        platform = fuse_platform(next(iter(thin.values())))
        log(f"runtime: fusing {name} {version} with its {platform} wheel")
        dest = work / f"{name}-{platform}"
        dest.mkdir(parents=True, exist_ok=True)
        locked = lock.parse(lock.LOCK.read_text(encoding="utf-8"))
        if locked.versions.get(lock.normalize(name)) != version:
            raise UsageError(
                f"refusing to build: {name} {version} is not the version in pkg/requirements.lock"
            )
        one = dest / "requirement.txt"
        one.write_text(lock.requirement_lines(locked, [name]), encoding="utf-8")
        _run(pip_download_argv(python, one, platform, short, dest))
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


def _relocatable_python(build: Path, pin: pins.Pins, given: Path | None) -> Path:
    """A relocatable-python checkout at exactly the pinned commit (a given checkout must be at it too)."""
    dest = given or build / "relocatable-python"
    if given is None and not (dest / ".git").exists():
        dest.mkdir(parents=True, exist_ok=True)
        _run(["/usr/bin/git", "init", "--quiet", str(dest)])
        _run(["/usr/bin/git", "-C", str(dest), "fetch", "--quiet", "--depth", "1", pin.relocatable_python_url,
              pin.relocatable_python_commit])  # fmt: skip
        _run(["/usr/bin/git", "-C", str(dest), "checkout", "--quiet", "--detach", "FETCH_HEAD"])
    head = _run(["/usr/bin/git", "-C", str(dest), "rev-parse", "HEAD"]).strip()
    if head != pin.relocatable_python_commit:
        raise UsageError(
            f"{dest}: relocatable-python is at {head}, not the pinned {pin.relocatable_python_commit} "
            "(pkg/pins.toml); check out the pinned commit or unset BOOTSTRAPPER_RELOCATABLE_PYTHON"
        )
    return dest


def trim(version_dir: Path) -> None:
    """Remove what the daemon never needs (TRIM, TRIM_GLOBS) from a framework version folder."""
    lib = f"lib/python{version_dir.name}"
    doomed = [version_dir / rel.format(lib=lib) for rel in TRIM]
    doomed += [p for pattern in TRIM_GLOBS for p in version_dir.glob(pattern.format(lib=lib))]
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
