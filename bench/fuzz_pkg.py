"""Fuzz `bootstrapper pkg info` and `pkg files` through the real CLI entry, in-process.

Runs a few thousand generated hostile packages (tests/support/hostile_pkgs.py, seeded, so a run
is reproducible) through `bootstrapper.cli.main` and prints the exit-code histogram per command
and per recipe. Only 0 (read) and 2 (refused with one error line) are allowed: a 3 is a crash,
and its case is saved for a test. `python bench/fuzz_pkg.py [COUNT [SEED]]`.

Most of the time per run is typer rebuilding its command tree on every `main()` call (about 35 ms),
not the reader: tests/flatpkg/test_fuzz.py drives the reader directly, far faster.
"""

from __future__ import annotations

import contextlib
import io
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COUNT = 2000
SEED = 2026
ALLOWED = {0, 2}


def run(count: int = COUNT, seed: int = SEED) -> int:
    """Fuzz `count` cases; returns the number of runs that ended other than 0 or 2."""
    sys.path.insert(0, str(ROOT))
    from bootstrapper.cli import main as cli
    from tests.support.hostile_pkgs import random_cases

    started = time.perf_counter()
    cases = random_cases(seed, count)
    made = time.perf_counter() - started
    codes: Counter[tuple[str, int]] = Counter()
    by_recipe: Counter[tuple[str, int]] = Counter()
    bad: list[Path] = []
    keep = Path(tempfile.mkdtemp(prefix="fuzz-pkg-crashes-"))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for n, case in enumerate(cases):
            path = Path(tmp) / f"{n}.pkg"
            path.write_bytes(case.data)
            for command in ("info", "files"):
                out, err = io.StringIO(), io.StringIO()
                with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                    code = cli(["pkg", command, str(path)])
                codes[command, code] += 1
                by_recipe[case.recipe, code] += 1
                if code not in ALLOWED or (code == 2 and err.getvalue().count("\n") != 1):
                    saved = keep / f"{case.recipe}-{n}.pkg"
                    saved.write_bytes(case.data)
                    bad.append(saved)
            path.unlink()
    took = time.perf_counter() - started
    print(f"cases              {count} (seed {seed}), made in {made:.1f} s, run in {took:.1f} s")
    print(f"throughput         {2 * count / took:8.0f} CLI runs/s")
    for command in ("info", "files"):
        hist = ", ".join(f"exit {c}: {n}" for (cmd, c), n in sorted(codes.items()) if cmd == command)
        print(f"pkg {command:<14} {hist}")
    for recipe in sorted({r for r, _ in by_recipe}):
        hist = ", ".join(f"{c}: {n}" for (r, c), n in sorted(by_recipe.items()) if r == recipe)
        print(f"  {recipe:<16} {hist}")
    if bad:
        print(f"FAIL               {len(bad)} runs ended other than 0/2 (one error line); cases in {keep}")
    else:
        keep.rmdir()
        print("ok                 only exit 0 and 2 (with one error line)")
    return len(bad)


def main() -> None:
    if run():
        raise SystemExit(1)


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    raise SystemExit(1 if run(*args) else 0)
