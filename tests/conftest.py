from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

#: Real-world test data kept in the repository; each folder's SOURCES.md records origin and licence.
TESTDATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session")
def testdata() -> Path:
    """The real-world test data (real packages, manifests, macOS command outputs)."""
    return TESTDATA


@pytest.fixture(autouse=True)
def _no_real_system_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """A test that forgets to give a sandbox root must fail loudly, not write under the real /Library
    (CI runs as root, where it would succeed): the state file, the lock, our folders and self-removal
    refuse the real root during tests.
    """
    from bootstrapper import daemon
    from bootstrapper.engine import cleanup, state
    from bootstrapper.paths import INSTALL_DIR

    real = Path(str(INSTALL_DIR))

    def check(path: Path) -> None:
        if Path(path).is_relative_to(real):
            raise AssertionError(f"test touched the real {path}: give Paths a sandbox root")

    def guard(owner: object, name: str, pick: Callable[..., Path]) -> None:
        original = getattr(owner, name)

        def guarded(*args: object, **kwargs: object) -> object:
            check(pick(*args, **kwargs))
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, guarded)

    guard(state.StateStore, "load", lambda path, **_: path)
    guard(daemon, "DaemonLock", lambda path: path)
    guard(daemon, "prepare_folders", lambda paths: paths.install_dir)
    guard(cleanup, "remove_ourselves", lambda platform, paths, uids: paths.install_dir)
