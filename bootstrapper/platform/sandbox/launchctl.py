"""`launchctl` for the sandbox: `python -m bootstrapper.platform.sandbox ROOT ARGS...`.

The shim `<root>/.sandbox/bin/launchctl` runs this with the root it sits in, so the sandbox platform can
call it with exactly the argv a Mac's `/bin/launchctl` gets. `asuser UID CMD...` runs CMD here (as on
the Mac, asuser changes the bootstrap namespace, not the identity); everything else is answered by the
sandbox's launchd.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from bootstrapper.platform.sandbox.control import request
from bootstrapper.platform.sandbox.launchd import SandboxStateError, runtime

SHIM = ".sandbox/bin/launchctl"


def shim_text(python: str) -> str:
    """The same bytes for every root with the same runtime: the shim finds its root from where it lies."""
    return (
        "#!/bin/sh\n"
        "# launchctl for the simulated Mac this folder belongs to (written by bootstrapper).\n"
        'root=$(cd "$(dirname "$0")/../.." && pwd)\n'
        f'exec {shlex.quote(python)} -m bootstrapper.platform.sandbox "$root" "$@"\n'
    )


def ensure_shim(root: Path) -> Path:
    """Write the shim unless it is already there as it should be; its path. It runs the sandbox's
    runtime (`sandbox install --runtime`): the daemon that calls it may run from a copy of the
    interpreter that only starts through that runtime's own launcher."""
    shim = root / SHIM
    text = shim_text(runtime(root))
    try:
        if shim.read_text() == text:
            return shim
    except OSError:
        pass
    shim.parent.mkdir(parents=True, exist_ok=True)
    tmp = shim.with_name(f".launchctl.{os.getpid()}")
    tmp.write_text(text)
    tmp.chmod(0o755)
    os.replace(tmp, shim)
    return shim


def launchctl(root: Path, args: list[str]) -> int:
    """Run one launchctl command against the sandbox at `root`; its exit code (output already printed)."""
    if args[:1] == ["asuser"]:
        if len(args) < 3 or not args[1].isdigit():
            print("Usage: launchctl asuser <UID> <command> [args...]", file=sys.stderr)
            return 64
        try:
            os.execvp(args[2], args[2:])  # noqa: S606  (asuser runs the command it is given)
        except OSError as exc:
            print(f"launchctl asuser: {args[2]}: {exc.strerror}", file=sys.stderr)
            return 127
    try:
        reply = request(root, {"op": "launchctl", "argv": args})
    except SandboxStateError as exc:
        print(f"launchctl: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"launchctl: cannot use the sandbox at {root}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    sys.stdout.write(reply.out)
    sys.stderr.write(reply.err)
    return reply.rc


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m bootstrapper.platform.sandbox ROOT ARGS...", file=sys.stderr)
        return 64
    root = Path(argv[0])
    if not root.is_dir():
        print(
            f"launchctl: the sandbox {root} does not exist: install one with `bootstrapper sandbox install`",
            file=sys.stderr,
        )
        return 2
    return launchctl(root.resolve(), argv[1:])
