"""The committed packages that once crashed the reader, through the real CLI and extraction."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from bootstrapper.cli import main
from bootstrapper.flatpkg import FlatPackage
from bootstrapper.flatpkg.extract import extract, scan
from tests.support.hostile_pkgs import CORPUS, exercise, toc_and_heap

HOSTILE = Path(__file__).resolve().parents[1] / "data" / "pkgs" / "hostile"


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_each_committed_package_is_what_its_recipe_makes(tmp_path: Path, name: str) -> None:
    made = CORPUS[name](tmp_path / name)
    assert toc_and_heap(HOSTILE / name) == toc_and_heap(made)


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_no_committed_package_gives_anything_but_success_or_a_package_error(
    tmp_path: Path, name: str
) -> None:
    said = exercise(HOSTILE / name, tmp_path / "root")
    assert said and all("\n" not in s for s in said)


def test_a_checksum_offset_of_2_64_minus_1_is_one_error_line_exit_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = HOSTILE / "toc-checksum-offset-2e64.pkg"
    assert main(["pkg", "info", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(
        f"error: {path}: truncated: the TOC checksum needs heap bytes 18446744073709551615..18446744073709551635"
    )
    assert main(["pkg", "files", str(path)]) == 2


def test_a_hard_link_then_a_symlink_of_the_same_name_leaves_the_symlink(tmp_path: Path) -> None:
    outside = tmp_path / "target"
    outside.write_text("untouched")
    root = tmp_path / "root"
    with FlatPackage(HOSTILE / "hardlink-then-symlink.pkg") as pkg:
        comp = pkg.components[0]
        with pkg.open_payload(comp) as reader:
            assert scan(reader) == (3, 6)
        with pkg.open_payload(comp) as reader:
            result = extract(reader, root)
    assert stat.S_ISLNK(os.lstat(root / "x").st_mode) and os.readlink(root / "x") == "target"
    assert (result.files, result.symlinks, result.hardlinks) == (0, 1, 0)
    assert sorted(os.listdir(root)) == ["x"], "no temporary file is left behind"
    assert outside.read_text() == "untouched"


def test_the_hard_link_package_lists_and_reads_cleanly(capsys: pytest.CaptureFixture[str]) -> None:
    path = HOSTILE / "hardlink-then-symlink.pkg"
    assert main(["pkg", "info", str(path)]) == 0
    assert main(["pkg", "files", str(path)]) == 0
    assert capsys.readouterr().out.splitlines()[-3:] == [".", "./x", "./x"]


def test_the_corpus_readme_names_every_file() -> None:
    readme = (HOSTILE / "README.md").read_text()
    on_disk = {p.name for p in HOSTILE.glob("*.pkg")}
    assert on_disk == set(CORPUS)
    assert all(f"`{name}`" in readme for name in on_disk)
