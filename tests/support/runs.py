"""The real `bootstrapper run --sandbox` command line, as the end-to-end tests start it."""

from __future__ import annotations

import sys
from pathlib import Path


def run_argv(url: str, root: Path, *extra: str) -> list[str]:
    """`python -m bootstrapper run` of `url` in the sandbox at `root` (plain http allowed: loopback)."""
    return [
        sys.executable,
        "-m",
        "bootstrapper",
        "run",
        "--manifest",
        url,
        "--sandbox",
        str(root),
        "--allow-http",
        *extra,
    ]
