"""Fake macOS commands for contract tests: tiny executables that answer like the real ones.

`FakeMac(folder)` writes one executable per command into `folder/bin` (installer, pkgutil,
launchctl, scutil, stat, sysctl, sw_vers, ioreg, shutdown, sudo). Each logs its argv (and stdin)
to `calls.jsonl` and answers:
- with a scripted answer, when the test set one (`answer(tool, argv, output, rc)`), usually a real
  recording from tests/data/macos/;
- otherwise like a small stateful Mac: `installer` prints the recorded successful `-verboseR`
  transcript and registers receipts for the package's components (read with our own reader);
  `pkgutil` answers from those receipts (with junk printed before the plist, as pkgutil can);
  `launchctl` keeps a set of loaded targets and uses the recorded exit codes and messages
  (113 not found, 133 invalid plist, 5 already loaded).
"""

from __future__ import annotations

import json
import os
import plistlib
import stat
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
TOOLS = (
    "installer",
    "pkgutil",
    "launchctl",
    "scutil",
    "stat",
    "sysctl",
    "sw_vers",
    "ioreg",
    "shutdown",
    "sudo",
)
MACOS = REPO / "tests" / "data" / "macos"


class FakeMac:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.bin = folder / "bin"
        self.bin.mkdir(parents=True, exist_ok=True)
        for tool in TOOLS:
            exe = self.bin / tool
            exe.write_text(
                f"#!{sys.executable}\n"
                "import sys\n"
                f"sys.path.insert(0, {str(REPO)!r})\n"
                "from tests.support.fake_macos import serve\n"
                f"raise SystemExit(serve({tool!r}, {str(folder)!r}, sys.argv[1:]))\n"
            )
            exe.chmod(exe.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        self._write("answers.json", {})

    def _write(self, name: str, data: object) -> None:
        (self.folder / name).write_text(json.dumps(data))

    def answer(self, tool: str, argv: list[str], output: str, rc: int = 0) -> None:
        """Answer `tool argv…` with this output and exit code (instead of the simulation)."""
        answers = json.loads((self.folder / "answers.json").read_text())
        answers[json.dumps([tool, *argv])] = {"output": output, "rc": rc}
        self._write("answers.json", answers)

    def calls(self, tool: str | None = None) -> list[list[str]]:
        """The argv (after the program) of every call, in order; of one tool if named."""
        return [c["argv"] for c in self.records() if tool is None or c["tool"] == tool]

    def records(self) -> list[dict[str, Any]]:
        file = self.folder / "calls.jsonl"
        if not file.exists():
            return []
        return [json.loads(line) for line in file.read_text().splitlines()]

    def set_loaded(self, *targets: str) -> None:
        self._write("loaded.json", sorted(targets))


def recording(name: str) -> str:
    return (MACOS / name).read_text(encoding="utf-8")


# --- the executables' side ---------------------------------------------------------------------


def serve(tool: str, folder: str, argv: list[str]) -> int:
    state = Path(folder)
    stdin = sys.stdin.read() if tool == "scutil" else ""
    with (state / "calls.jsonl").open("a") as fh:
        fh.write(json.dumps({"tool": tool, "argv": argv, "stdin": stdin, "time": time.time()}) + "\n")
    answers = json.loads((state / "answers.json").read_text())
    scripted = answers.get(json.dumps([tool, *argv]))
    if scripted is not None:
        sys.stdout.write(scripted["output"])
        return int(scripted["rc"])
    handler = _HANDLERS.get(tool)
    if handler is None:
        print(f"{tool}: no answer scripted for {argv}", file=sys.stderr)
        return 64
    return handler(state, argv)


def _load(state: Path, name: str, default: Any) -> Any:
    file = state / name
    return json.loads(file.read_text()) if file.exists() else default


def _save(state: Path, name: str, data: Any) -> None:
    (state / name).write_text(json.dumps(data))


def _installer(state: Path, argv: list[str]) -> int:
    if argv[:1] != ["-verboseR"] or "-pkg" not in argv or argv[-2:] != ["-target", "/"]:
        print("installer: usage", file=sys.stderr)
        return 2
    from bootstrapper.errors import PackageError
    from bootstrapper.flatpkg import FlatPackage

    pkg = Path(argv[argv.index("-pkg") + 1])
    try:
        with FlatPackage(pkg) as package:
            comps = [c for c in package.components if c.has_payload]
    except PackageError as exc:
        print(f"installer: Error - {exc}")
        return 1
    receipts = _load(state, "receipts.json", {})
    for comp in comps:
        receipts[comp.info.identifier] = {
            "pkgid": comp.info.identifier,
            "pkg-version": comp.info.version,
            "install-location": comp.info.effective_install_location.lstrip("/"),
            "install-time": int(time.time()),
            "volume": "/",
            "receipt-plist-version": 1.0,
        }
    _save(state, "receipts.json", receipts)
    sys.stdout.write(recording("installer-verboseR-success-vscode-via-jamf.txt"))
    return 0


def _no_receipt(pkgid: str) -> int:
    print(f"No receipt for '{pkgid}' found at '/'.", file=sys.stderr)
    return 1


def _pkgutil(state: Path, argv: list[str]) -> int:
    receipts = _load(state, "receipts.json", {})
    match argv:
        case ["--pkg-info-plist", pkgid]:
            if pkgid not in receipts:
                return _no_receipt(pkgid)
            sys.stdout.write("2024-05-01 12:00:00.000 pkgutil[123:4567] some noise before the plist\n")
            sys.stdout.write(plistlib.dumps(receipts[pkgid]).decode())
            return 0
        case ["--forget", pkgid]:
            if receipts.pop(pkgid, None) is None:
                return _no_receipt(pkgid)
            _save(state, "receipts.json", receipts)
            print(f"Forgot package '{pkgid}' on '/'.")
            return 0
    return 64


def _not_found(target: str) -> int:
    domain, _, label = target.rpartition("/")
    where = "system" if domain == "system" else f"user gui: {domain.partition('/')[2]}"
    print(f'Could not find service "{label}" in domain for {where}', file=sys.stderr)
    return 113


def _launchctl(state: Path, argv: list[str]) -> int:
    loaded = set(_load(state, "loaded.json", []))
    match argv:
        case ["bootstrap", domain, plist]:
            try:
                label = plistlib.loads(Path(plist).read_bytes())["Label"]
            except Exception:
                print(f"{plist}: Invalid property list", file=sys.stderr)
                return 133
            target = f"{domain}/{label}"
            if target in loaded:
                print("Bootstrap failed: 5: Input/output error", file=sys.stderr)
                return 5
            _save(state, "loaded.json", sorted(loaded | {target}))
            return 0
        case ["bootout", target]:
            if target.count("/") == 1 and target.startswith("gui/"):
                _save(state, "loaded.json", sorted(t for t in loaded if not t.startswith(target + "/")))
                return 0
            if target not in loaded:
                print("Boot-out failed: 113: Could not find specified service", file=sys.stderr)
                return 113
            _save(state, "loaded.json", sorted(loaded - {target}))
            return 0
        case ["kickstart", *flags, target] if set(flags) <= {"-k", "-p"}:
            return 0 if target in loaded else _not_found(target)
        case ["print", target]:
            if target not in loaded:
                if target.startswith("gui/"):
                    print("Bad request.", file=sys.stderr)
                return _not_found(target)
            text = recording("launchctl-print-user-service-partial.txt")
            sys.stdout.write(text.replace("user/501/com.apple.iCloudHelper", target, 1))
            return 0
        case ["asuser", _uid, *rest]:
            os.execv(rest[0], rest)  # noqa: S606 (a fake sudo/asuser hands over, like the real ones)
    return 64


def _sudo(state: Path, argv: list[str]) -> int:
    match argv:
        case ["-u", _name, "-H", "--", *rest]:
            os.execv(rest[0], rest)  # noqa: S606 (a fake sudo/asuser hands over, like the real ones)
    return 1


def _fixed(default: dict[tuple[str, ...], tuple[str, int]]) -> Any:
    def handler(state: Path, argv: list[str]) -> int:
        out, rc = default.get(tuple(argv), ("", 1))
        sys.stdout.write(out)
        return rc

    return handler


IOREG = plistlib.dumps(
    [{"IOObjectClass": "IOPlatformExpertDevice", "IOPlatformSerialNumber": "C02FAKE0SERIAL"}]
).decode()

_HANDLERS = {
    "installer": _installer,
    "pkgutil": _pkgutil,
    "launchctl": _launchctl,
    "sudo": _sudo,
    "scutil": _fixed({(): (recording("scutil-consoleuser-logged-in.txt"), 0)}),
    "stat": _fixed({("-f", "%Su:%u:%g", "/dev/console"): ("root:0:0\n", 0)}),
    "sysctl": _fixed(
        {
            ("-in", "hw.optional.arm64"): ("1\n", 0),
            ("-in", "sysctl.proc_translated"): ("0\n", 0),
            ("-n", "hw.model"): ("Mac15,3\n", 0),
        }
    ),
    "sw_vers": _fixed({("-productVersion",): ("14.6.1\n", 0)}),
    "ioreg": _fixed({("-c", "IOPlatformExpertDevice", "-d", "2", "-a"): (IOREG, 0)}),
    "shutdown": _fixed({("-r", "now"): ("Shutdown NOW!\n", 0)}),
}
