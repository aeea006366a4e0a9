"""Reading a manifest file: only regular files, and never more than the size limit plus one byte."""

from __future__ import annotations

import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from bootstrapper.errors import ManifestError, UsageError
from bootstrapper.manifest.load import load_file
from bootstrapper.manifest.source import MAX_BYTES


def test_a_fifo_is_refused_at_once_instead_of_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "manifest.yaml"
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match=r"manifest.yaml: not a regular file .*; give the manifest file"):
        load_file(fifo)


def test_dev_zero_is_refused_instead_of_read_until_memory_runs_out() -> None:
    with pytest.raises(UsageError, match=r"^/dev/zero: not a regular file"):
        load_file(Path("/dev/zero"))


def test_a_huge_file_is_read_only_up_to_the_limit(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with big.open("wb") as f:
        f.truncate(256 * MAX_BYTES)  # 1 GiB, sparse: reading it all would take 1 GiB of memory
    tracemalloc.start()
    try:
        with pytest.raises(ManifestError, match=f"over {MAX_BYTES} bytes, the limit"):
            load_file(big)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * MAX_BYTES


def test_a_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="is a folder; give the manifest file"):
        load_file(tmp_path)


@pytest.mark.parametrize("kind", ["fifo", "zero"])
def test_validate_refuses_a_non_regular_file_with_one_line_and_exit_2(tmp_path: Path, kind: str) -> None:
    target = Path("/dev/zero")
    if kind == "fifo":
        target = tmp_path / "m.yaml"
        os.mkfifo(target)
    done = subprocess.run(
        [sys.executable, "-m", "bootstrapper", "validate", str(target)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and "not a regular file" in lines[0], lines
