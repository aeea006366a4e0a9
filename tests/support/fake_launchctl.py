"""Fake `launchctl`, `scutil` and `chown` for rehearsing the package scripts on any machine.

Run as `python fake_launchctl.py TOOL ARGS...` (pkg.tooling.rehearse writes small wrappers).
State lives in $FAKE_MACOS_DIR: `loaded.json` (the loaded service targets) and `calls.jsonl` (every
call, with the exit code the fake answered). Exit codes and messages are the real ones recorded in
tests/data/macos/ where a recording exists:
- 113 "Could not find specified service": launchctl-print-gui-not-found-113.txt,
  launchctl-kickstart-gui-not-found-113.txt (and the 113 note in SOURCES.md);
- 133 "<path>: Invalid property list": launchctl-bootstrap-invalid-plist-133.txt;
- 5 "Input/output error" for a bootstrap that cannot proceed (SOURCES.md, launchctl notes).
Behaviour without a recording (a missing plist file) answers 2, like ENOENT, and says so.
"""

from __future__ import annotations

import json
import os
import plistlib
import sys
from pathlib import Path

NOT_FOUND = 113
INVALID_PLIST = 133
IO_ERROR = 5
USAGE = 64


def _state() -> Path:
    return Path(os.environ["FAKE_MACOS_DIR"])


def _loaded() -> set[str]:
    file = _state() / "loaded.json"
    return set(json.loads(file.read_text())) if file.exists() else set()


def _save(loaded: set[str]) -> None:
    (_state() / "loaded.json").write_text(json.dumps(sorted(loaded)))


def _record(tool: str, argv: list[str], rc: int, stdin: str = "") -> int:
    with (_state() / "calls.jsonl").open("a") as fh:
        fh.write(json.dumps({"tool": tool, "argv": argv, "rc": rc, "stdin": stdin}) + "\n")
    return rc


def _fail(message: str, rc: int) -> int:
    print(message, file=sys.stderr)
    return rc


def launchctl(args: list[str]) -> int:
    loaded = _loaded()
    match args:
        case ["bootout", target]:
            if target not in loaded:
                return _fail(f"Boot-out failed: {NOT_FOUND}: Could not find specified service", NOT_FOUND)
            loaded.discard(target)
            _save(loaded)
            return 0
        case ["bootstrap", domain, plist_path]:
            path = Path(plist_path)
            if not path.is_file():
                return _fail(f"Bootstrap failed: 2: No such file or directory ({path})", 2)
            try:
                plist = plistlib.loads(path.read_bytes())
                label = plist["Label"]
            except Exception:
                return _fail(f"{path}: Invalid property list", INVALID_PLIST)
            if domain != "system" and not domain.startswith("gui/"):
                return _fail(f"Bootstrap failed: {IO_ERROR}: Input/output error", IO_ERROR)
            if (domain == "system") == (plist.get("LimitLoadToSessionType") == "Aqua"):
                return _fail(f"Bootstrap failed: {IO_ERROR}: Input/output error", IO_ERROR)
            target = f"{domain}/{label}"
            if target in loaded:
                return _fail(f"Bootstrap failed: {IO_ERROR}: Input/output error", IO_ERROR)
            loaded.add(target)
            _save(loaded)
            return 0
        case ["enable", _]:
            return 0
        case ["print", target]:
            if target not in loaded:
                domain, _, label = target.rpartition("/")
                words = "system" if domain == "system" else f"user gui: {domain.partition('/')[2]}"
                return _fail(
                    f'Bad request.\nCould not find service "{label}" in domain for {words}', NOT_FOUND
                )
            print(f"{target} = {{\n\tstate = running\n}}")
            return 0
        case _:
            return _fail(f"Unrecognized subcommand: {' '.join(args)}", USAGE)


def scutil(stdin: str) -> int:
    """Answers `show State:/Users/ConsoleUser` with the recording named by $FAKE_CONSOLE_STATE."""
    recording = os.environ.get("FAKE_CONSOLE_STATE", "")
    if stdin.strip() != "show State:/Users/ConsoleUser":
        return _fail(f"unexpected scutil input: {stdin!r}", USAGE)
    if not recording:
        print("  No such key")
        return 0
    for line in Path(recording).read_text().splitlines():
        if not line.startswith(">"):  # an interactive prompt line kept in one recording
            print(line)
    return 0


def main(argv: list[str]) -> int:
    tool, args = argv[0], argv[1:]
    if tool == "launchctl":
        return _record(tool, args, launchctl(args))
    if tool == "scutil":
        stdin = sys.stdin.read()
        return _record(tool, args, scutil(stdin), stdin)
    if tool == "chown":
        return _record(tool, args, 0)
    return _fail(f"fake_launchctl: unknown tool {tool!r}", USAGE)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
