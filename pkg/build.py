"""Build driver behind `make pkg-payload`, `make pkg` and `make mac-smoke`.

    python pkg/build.py payload      assemble build/pkg-payload, check it, rehearse the scripts
    python pkg/build.py pkg          the signed product archive (macOS only)
    python pkg/build.py generate     rewrite the committed generated files (profile, schema, plists, docs)
    python pkg/build.py mac-smoke    install the built package on this Mac and check the outcome
    python pkg/build.py lock         regenerate pkg/requirements.lock from pyproject.toml (needs PyPI)

Signing comes from the environment: BOOTSTRAPPER_APP_IDENTITY (Developer ID Application, for the
runtime's binaries; ad hoc when unset), BOOTSTRAPPER_INSTALLER_IDENTITY (Developer ID Installer, for
productsign), BOOTSTRAPPER_KEYCHAIN, BOOTSTRAPPER_NOTARY_PROFILE (a `notarytool store-credentials`
profile). BOOTSTRAPPER_RELOCATABLE_PYTHON points at a relocatable-python checkout you have pinned.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bootstrapper.config import read_plist  # noqa: E402
from bootstrapper.deploy.layout import template_values  # noqa: E402
from bootstrapper.errors import BootstrapperError, UsageError  # noqa: E402
from bootstrapper.process import run_sync  # noqa: E402
from pkg.tooling import build, committed, lock, pins  # noqa: E402
from pkg.tooling.payload import archive, assemble, source_date_epoch, verify  # noqa: E402
from pkg.tooling.rehearse import rehearse_all  # noqa: E402
from pkg.tooling.templates import render  # noqa: E402

BUILD = REPO / "build"
FAKE = REPO / "tests" / "support" / "fake_launchctl.py"
#: Recorded macOS outputs (scutil console states) the rehearsal replays.
SAMPLES = REPO / "tests" / "data" / "macos"


def payload(_: argparse.Namespace) -> int:
    epoch = source_date_epoch()
    out = assemble(BUILD / "pkg-payload", epoch=epoch)
    tar = archive(out, BUILD / "pkg-payload.tar", epoch)
    problems = verify(out)
    if not SAMPLES.is_dir():
        problems.append(f"{SAMPLES}: the recorded macOS outputs are missing; restore tests/data/ from git")
    else:
        problems += rehearse_all(out, BUILD / "pkg-rehearsal", FAKE, SAMPLES)
    for problem in problems:
        print(f"error: pkg-payload: {problem}", file=sys.stderr)
    if problems:
        return 1
    sha = hashlib.sha256(tar.read_bytes()).hexdigest()
    print(f"pkg-payload: {out.base} assembled; plists, programs and scripts checked; scripts rehearsed")
    print(f"pkg-payload: {tar.relative_to(REPO)} sha256 {sha} (SOURCE_DATE_EPOCH={epoch})")
    return 0


def package(args: argparse.Namespace) -> int:
    build.require_macos()
    ids = build.Identities(
        app=os.environ.get("BOOTSTRAPPER_APP_IDENTITY") or "-",
        installer=os.environ.get("BOOTSTRAPPER_INSTALLER_IDENTITY") or None,
        keychain=os.environ.get("BOOTSTRAPPER_KEYCHAIN") or None,
        notary_profile=os.environ.get("BOOTSTRAPPER_NOTARY_PROFILE") or None,
    )
    tool = os.environ.get("BOOTSTRAPPER_RELOCATABLE_PYTHON")
    config = read_plist(Path(args.config)) if args.config else None
    if args.config and not config:
        raise UsageError(f"--config {args.config}: no settings in it")
    build.build_package(BUILD, REPO, ids, relocatable_python=Path(tool) if tool else None, config=config)
    if not ids.installer:
        print("warning: the package is unsigned; set BOOTSTRAPPER_INSTALLER_IDENTITY to sign it for MDM")
    return 0


def relock(_: argparse.Namespace) -> int:
    """Resolve pyproject.toml's runtime dependencies for the pinned Python on each Mac platform."""
    short = pins.load().python_short
    requires = lock.top_level()
    passed = {k: v for k, v in os.environ.items() if k.startswith("PIP_") or k.lower().endswith("_proxy")}
    reports = []
    with tempfile.TemporaryDirectory(prefix="bootstrapper-lock-") as tmp:
        for platform in lock.PLATFORMS:
            report = Path(tmp) / platform / "report.json"
            report.parent.mkdir()
            argv = lock.resolve_argv(sys.executable, requires, platform, short, report)
            done = run_sync(argv, timeout=600.0, env={"HOME": os.environ.get("HOME", "/root"), **passed})
            if not done.ok:
                last = done.tail.strip().splitlines()[-1:] or ["no output"]
                raise UsageError(f"make lock: pip could not resolve for {platform}: {last[0]}")
            reports.append(lock.load_report(report))
    locked = lock.merge(reports)
    locked.requires = requires
    lock.LOCK.write_text(lock.render(locked, short), encoding="utf-8")
    print(
        f"wrote {lock.LOCK.relative_to(REPO)}: {len(locked.versions)} packages for CPython {short} on macOS"
    )
    return 0


def generate(args: argparse.Namespace) -> int:
    if args.check:
        stale = committed.stale(REPO)
        for path in stale:
            print(
                f"error: {path.relative_to(REPO)} is out of date; run `python pkg/build.py generate`",
                file=sys.stderr,
            )
        return 1 if stale else 0
    for path, data in committed.generated(REPO).items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        print(f"wrote {path.relative_to(REPO)}")
    return 0


def mac_smoke(args: argparse.Namespace) -> int:
    if sys.platform != "darwin":
        raise UsageError("make mac-smoke runs on a Mac (or a macOS VM) that you can reinstall; not here")
    pkg = (
        Path(args.pkg)
        if args.pkg
        else max(BUILD.glob("bootstrapper-*.pkg"), default=None, key=os.path.getmtime)
    )
    python = BUILD / "pkg" / "root" / str(pins.load().interpreter).lstrip("/")
    if pkg is None or not pkg.is_file() or not python.is_file():
        raise UsageError("no built package in build/; run `make pkg` first")
    script = BUILD / "mac-smoke.sh"
    text = (REPO / "pkg" / "mac-smoke.sh.in").read_text(encoding="utf-8")
    script.write_text(render(text, template_values(), name="mac-smoke.sh.in"), encoding="utf-8")
    print(f"mac-smoke: installing {pkg.name} on this Mac (sudo asks for your password)")
    os.execv("/usr/bin/sudo", ["sudo", "/bin/sh", str(script), str(pkg.resolve()), str(python)])  # noqa: S606


def main() -> int:
    parser = argparse.ArgumentParser(prog="pkg/build.py", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("payload").set_defaults(run=payload)
    p = sub.add_parser("pkg")
    p.add_argument("--config", help="a plist of settings to ship inside the package (config.plist)")
    p.set_defaults(run=package)
    g = sub.add_parser("generate")
    g.add_argument("--check", action="store_true", help="fail when a committed copy is out of date")
    g.set_defaults(run=generate)
    sub.add_parser("lock").set_defaults(run=relock)
    s = sub.add_parser("mac-smoke")
    s.add_argument("pkg", nargs="?", help="the package to install (default: the newest in build/)")
    s.set_defaults(run=mac_smoke)
    args = parser.parse_args()
    try:
        code: int = args.run(args)
    except BootstrapperError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    return code


if __name__ == "__main__":
    sys.exit(main())
