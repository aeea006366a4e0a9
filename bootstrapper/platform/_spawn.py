"""Start a program detached, the way launchd starts a job: its own session, no terminal, output to a log.

Run through `process.run` (`python -m bootstrapper.platform._spawn LOG ARGV...`) so that the
program's one subprocess path is kept: the clean environment and the timeout apply to the launch,
and the started program outlives it. Prints the new process id.
"""

from __future__ import annotations

import subprocess
import sys


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: python -m bootstrapper.platform._spawn LOG PROGRAM [ARGS...]", file=sys.stderr)
        return 2
    log, *command = argv
    with open(log, "ab") as out:
        child = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    print(child.pid, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
