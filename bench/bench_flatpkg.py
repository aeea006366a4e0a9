"""Flat packages: extraction throughput against a plain file copy, and memory that does not grow.

Prints MB/s for reading+checking+extracting a payload (gzip and pbzx), the ratio to `shutil.copyfile`
of the same bytes measured in the same run, and the Python allocation peak.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from bootstrapper.flatpkg import FlatPackage
from bootstrapper.flatpkg.extract import extract, scan

# The package writer is test tooling, not part of the runtime: it lives in tests/support/.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.pkgwriter import build_component_pkg

MIB = 1024 * 1024


def _install(pkg: Path, root: Path) -> None:
    with FlatPackage(pkg) as p:
        comp = p.components[0]
        with p.open_payload(comp) as reader:
            scan(reader)
        with p.open_payload(comp) as reader:
            extract(reader, root)


def main() -> None:
    size = 128 * MIB
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        src = work / "src"
        src.mkdir()
        block = os.urandom(MIB // 4) + bytes(range(256)) * (3 * MIB // 1024)  # about 4:1 compressible
        with open(src / "blob", "wb") as fh:
            for _ in range(size // len(block)):
                fh.write(block)
        real = (src / "blob").stat().st_size
        started = time.perf_counter()
        shutil.copyfile(src / "blob", work / "copy")
        copy = time.perf_counter() - started
        print(f"copyfile           {real / MIB / copy:8.0f} MB/s")
        for compression in ("gzip", "pbzx"):
            started = time.perf_counter()
            pkg = build_component_pkg(
                work / f"{compression}.pkg",
                "com.example.bench",
                "1",
                payload_root=src,
                compression=compression,
            )  # type: ignore[arg-type]
            build = time.perf_counter() - started
            started = time.perf_counter()
            _install(pkg, work / f"root-{compression}")
            took = time.perf_counter() - started
            tracemalloc.start()
            _install(pkg, work / f"root2-{compression}")
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            print(
                f"{compression}: build {real / MIB / build:6.0f} MB/s, "
                f"scan+extract {real / MIB / took:6.0f} MB/s "
                f"({took / copy:4.1f}x copyfile), peak {peak / MIB:5.1f} MiB for {real / MIB:.0f} MiB"
            )


if __name__ == "__main__":
    main()
