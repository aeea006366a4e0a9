"""`make pkg-payload` twice from the same commit gives the same bytes, modes and times: how an admin
checks a package against a tag."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from bootstrapper.errors import UsageError
from pkg.tooling.payload import archive, assemble, digest, source_date_epoch

REPO = Path(__file__).resolve().parents[2]
EPOCH = 1_700_000_000


def test_two_assemblies_are_identical(tmp_path: Path) -> None:
    first = assemble(tmp_path / "one", epoch=EPOCH)
    os.utime(first.distribution, (1, 1))  # noise a rebuild must wipe out
    first = assemble(tmp_path / "one", epoch=EPOCH)
    second = assemble(tmp_path / "two", epoch=EPOCH)
    assert digest(first) == digest(second)
    assert len(digest(first)) >= 10
    a = archive(first, tmp_path / "one.tar", EPOCH).read_bytes()
    b = archive(second, tmp_path / "two.tar", EPOCH).read_bytes()
    assert a == b


def test_every_entry_gets_the_epoch_and_a_fixed_mode(tmp_path: Path) -> None:
    payload = assemble(tmp_path / "p", epoch=EPOCH)
    for path in [payload.base, *payload.base.rglob("*")]:
        st = path.lstat()
        assert int(st.st_mtime) == EPOCH, path
        assert stat.S_IMODE(st.st_mode) in (0o755, 0o644), path
        if os.geteuid() == 0:
            assert (st.st_uid, st.st_gid) == (0, 0), path
    assert stat.S_IMODE((payload.scripts / "postinstall").stat().st_mode) == 0o755
    assert stat.S_IMODE(payload.distribution.stat().st_mode) == 0o644


def test_another_epoch_gives_another_archive(tmp_path: Path) -> None:
    payload = assemble(tmp_path / "p", epoch=EPOCH)
    before = archive(payload, tmp_path / "a.tar", EPOCH).read_bytes()
    assemble(tmp_path / "p", epoch=EPOCH + 1)
    assert archive(payload, tmp_path / "b.tar", EPOCH + 1).read_bytes() != before


def test_the_default_epoch_is_the_last_commits_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    committed = subprocess.run(
        ["git", "-C", str(REPO), "log", "-1", "--format=%ct"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert source_date_epoch() == int(committed)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1234")
    assert source_date_epoch() == 1234
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(UsageError, match="SOURCE_DATE_EPOCH='yesterday': expected whole seconds"):
        source_date_epoch()
