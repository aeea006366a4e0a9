"""Run every benchmark in bench/ (files named bench_*.py, each with a `main() -> None`).

Benchmarks print ratios measured side by side in one run: the machines are shared and noisy, so
absolute times drift while ratios hold. `make bench` runs this; `python bench/run.py NAME` runs one.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: Runs that are not benchmarks but belong in `make bench`, each with a `main() -> None` too.
EXTRA = ("fuzz_pkg.py", "fuzz_manifest.py")


def main(argv: list[str]) -> int:
    wanted = set(argv)
    for path in [*sorted(HERE.glob("bench_*.py")), *(HERE / name for name in EXTRA)]:
        name = path.stem.removeprefix("bench_")
        if wanted and name not in wanted:
            continue
        spec = importlib.util.spec_from_file_location(path.stem, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        print(f"== {name}", flush=True)
        module.main()
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    raise SystemExit(main(sys.argv[1:]))
