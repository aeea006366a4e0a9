"""`python -m bootstrapper.platform.sandbox ROOT ARGS...`: the sandbox's launchctl, as its shim runs it."""

import sys

from bootstrapper.platform.sandbox.launchctl import main

raise SystemExit(main(sys.argv[1:]))
