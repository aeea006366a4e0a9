"""The Makefile's first words to a newcomer: a missing or old Python is named, with the fix."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_a_missing_python_is_named_not_called_old(tmp_path: Path) -> None:
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(REPO / name, tmp_path / name)
    done = subprocess.run(
        ["make", "-s", "venv", "PYTHON=python-that-is-not-there"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "error: no python-that-is-not-there on PATH" in done.stderr
    assert "3.11 or newer" in done.stderr
    assert not (tmp_path / ".venv").exists()
