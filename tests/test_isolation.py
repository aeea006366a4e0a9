"""The suite refuses to touch the real system: a test that forgets its sandbox fails loudly."""

from __future__ import annotations

import pytest

from bootstrapper import daemon
from bootstrapper.engine.state import StateStore
from bootstrapper.paths import Paths


def test_forgetting_the_sandbox_fails_instead_of_writing_to_library() -> None:
    real = Paths()
    with pytest.raises(AssertionError, match="give Paths a sandbox root"):
        daemon.prepare_folders(real)
    with pytest.raises(AssertionError, match="give Paths a sandbox root"):
        StateStore.load(real.state_file)
    with pytest.raises(AssertionError, match="give Paths a sandbox root"):
        daemon.DaemonLock(real.lock_file)
    assert not real.install_dir.exists()
