"""Manifest validation and CLI start-up.

Goals: validating a 1,000-item manifest ≤ 0.5 s; `bootstrapper --help` ≤ 0.3 s. Each figure is
shown beside a baseline measured in the same run: PyYAML's own safe_load of the same text (what any
YAML tool pays), and a bare `python -c pass` start-up.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import yaml

from bootstrapper.manifest.load import load_bytes

HASH = "ab" * 32


def _manifest(n: int) -> bytes:
    lines = ["format: 1", "userland:"]
    for i in range(n):
        lines += [
            f"  - name: item {i}",
            "    type: package",
            f"    url: https://cdn.example.com/pkgs/item-{i}.pkg",
            f"    hash: {HASH}",
            f"    packageid: com.example.item{i}",
            f'    version: "1.{i}"',
            "    only_if: {arch: arm64, os_version: '>= 13.0'}",
        ]
    return ("\n".join(lines) + "\n").encode()


def _best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def _startup(argv: list[str], repeat: int = 7) -> float:
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        runs.append(time.perf_counter() - t)
    return statistics.median(runs)


def main() -> None:
    data = _manifest(1000)
    ours = _best(lambda: load_bytes(data, "bench.yaml"), 5)
    base = _best(lambda: yaml.safe_load(data), 5)
    print(
        f"validate 1,000 items: {ours * 1000:.0f} ms (goal ≤ 500 ms); "
        f"yaml.safe_load alone {base * 1000:.0f} ms;"
        f" ratio ours/safe_load {ours / base:.2f}"
    )
    help_time = _startup([sys.executable, "-m", "bootstrapper", "--help"])
    bare = _startup([sys.executable, "-c", "pass"])
    print(
        f"`bootstrapper --help`: {help_time * 1000:.0f} ms (goal ≤ 300 ms); bare python {bare * 1000:.0f} ms;"
        f" ratio {help_time / bare:.2f}"
    )


if __name__ == "__main__":
    main()
