"""Before root runs a file: ownership, modes, the #! line and the hash, checked again."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from bootstrapper.agent import verify_script
from bootstrapper.engine.trust import untrusted_reason
from bootstrapper.errors import ScriptRefusedError


@pytest.fixture
def safe_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "safe"
    folder.mkdir(mode=0o755)
    os.chmod(tmp_path, 0o755)
    return folder


def script(folder: Path, body: bytes = b"#!/bin/sh\necho hi\n", mode: int = 0o700) -> tuple[Path, str]:
    path = folder / "s.sh"
    path.write_bytes(body)
    os.chmod(path, mode)
    return path, hashlib.sha256(body).hexdigest()


def test_a_root_owned_private_script_may_run(safe_dir: Path) -> None:
    path, digest = script(safe_dir)
    assert untrusted_reason(path, os.getuid(), digest) is None


def test_a_script_others_can_write_is_refused(safe_dir: Path) -> None:
    path, digest = script(safe_dir, mode=0o722)
    assert (
        untrusted_reason(path, os.getuid(), digest)
        == f"{path}: can be changed by other users (mode 722); chmod go-w it"
    )


def test_a_folder_others_can_write_is_refused(safe_dir: Path) -> None:
    path, digest = script(safe_dir)
    os.chmod(safe_dir, 0o777)
    assert (
        untrusted_reason(path, os.getuid(), digest)
        == f"{safe_dir}: can be changed by other users (mode 777); chmod go-w it or use another folder"
    )


def test_a_sticky_root_folder_is_tolerated(safe_dir: Path) -> None:
    if os.getuid() != 0:
        pytest.skip("a root-owned sticky folder needs root to create")
    path, digest = script(safe_dir)
    os.chmod(safe_dir, 0o1777)
    assert untrusted_reason(path, os.getuid(), digest) is None


def test_a_file_changed_after_verification_is_refused(safe_dir: Path) -> None:
    path, digest = script(safe_dir)
    path.write_bytes(b"#!/bin/sh\nrm -rf /\n")
    reason = untrusted_reason(path, os.getuid(), digest)
    assert reason is not None
    assert reason.startswith(f"{path}: changed since it was verified")


def test_a_script_without_shebang_is_refused(safe_dir: Path) -> None:
    path, digest = script(safe_dir, body=b"echo hi\n")
    assert (
        untrusted_reason(path, os.getuid(), digest)
        == f"{path}: has no #! line; start the script with one, e.g. #!/bin/sh"
    )


def test_a_symlink_is_not_followed(safe_dir: Path) -> None:
    target, digest = script(safe_dir)
    link = safe_dir / "link.sh"
    link.symlink_to(target)
    assert untrusted_reason(link, os.getuid(), digest) == f"{link}: is a symbolic link; refusing to follow it"


def test_a_file_owned_by_another_user_is_refused(safe_dir: Path) -> None:
    if os.getuid() != 0:
        pytest.skip("changing a file's owner needs root")
    path, digest = script(safe_dir)
    os.chown(path, 65534, 65534)
    assert untrusted_reason(path, 0, digest) == (
        f"{path}: is owned by uid 65534, who could have changed it; not trusted (remove it or make it root's)"
    )


def test_a_hard_linked_script_is_refused(safe_dir: Path) -> None:
    path, digest = script(safe_dir)
    os.link(path, safe_dir / "other-name")
    reason = untrusted_reason(path, os.getuid(), digest)
    assert reason == f"{path}: has 2 hard links, so another name can reach it; remove the others"


# --- the agent runs the same check on its side, with its own trusted uids -------------------------

AGENT_TRUSTED = frozenset({0, os.getuid()})


def test_the_agent_refuses_a_group_writable_script(safe_dir: Path) -> None:
    path, digest = script(safe_dir, mode=0o775)
    with pytest.raises(
        ScriptRefusedError, match=r"^refused: .*: can be changed by other users \(mode 775\); chmod go-w it$"
    ):
        verify_script(str(path), digest, AGENT_TRUSTED)


def test_the_agent_refuses_a_script_in_a_folder_others_can_write(safe_dir: Path) -> None:
    path, digest = script(safe_dir)
    os.chmod(safe_dir, 0o777)
    with pytest.raises(
        ScriptRefusedError,
        match=rf"^refused: {safe_dir}: can be changed by other users \(mode 777\); chmod go-w it or use",
    ):
        verify_script(str(path), digest, AGENT_TRUSTED)


def test_the_agent_refuses_a_symlinked_script(safe_dir: Path) -> None:
    target, digest = script(safe_dir)
    link = safe_dir / "link.sh"
    link.symlink_to(target)
    with pytest.raises(ScriptRefusedError, match="is a symbolic link; refusing to follow it"):
        verify_script(str(link), digest, AGENT_TRUSTED)


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")
def test_the_agent_refuses_a_script_owned_by_an_untrusted_uid(safe_dir: Path) -> None:
    path, digest = script(safe_dir)
    os.chown(path, 65534, 65534)
    with pytest.raises(
        ScriptRefusedError, match=rf"^refused: {path}: is owned by uid 65534, who could have changed it; not"
    ):
        verify_script(str(path), digest, frozenset({501}))


def test_the_agent_refuses_a_folder_or_a_missing_script(safe_dir: Path) -> None:
    with pytest.raises(ScriptRefusedError, match="is not a regular file"):
        verify_script(str(safe_dir), "0" * 64, AGENT_TRUSTED)
    with pytest.raises(ScriptRefusedError, match=r"missing.sh: does not exist$"):
        verify_script(str(safe_dir / "missing.sh"), "0" * 64, AGENT_TRUSTED)


def test_the_agent_runs_an_intact_script(safe_dir: Path) -> None:
    path, digest = script(safe_dir)
    verify_script(str(path), digest, AGENT_TRUSTED)
