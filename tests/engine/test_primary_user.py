"""User steps belong to the primary user: the first real user on the console. Another user's agent
is told it is not needed and exits 0; the primary user's agent keeps serving while another user has
the console (fast user switching), and a restarted daemon remembers whose steps they are."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bootstrapper.cli import main as cli
from bootstrapper.engine.agents import AgentGate
from bootstrapper.engine.events import EventBus
from bootstrapper.engine.state import StateStore
from bootstrapper.ipc.server import AgentServer
from bootstrapper.paths import Paths
from bootstrapper.platform.sandbox import SandboxPlatform
from tests.support.ipc import FAST, AgentAs, run

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="agents of uids 501 and 502 need root")

ALICE, BOB = 501, 502


@pytest.fixture
def shared(tmp_path: Path) -> Iterator[Path]:
    """Homes the agents' uids can reach: pytest's own temporary folders are private to root."""
    folder = Path(tempfile.mkdtemp(prefix="bootstrapper-primary-", dir="/tmp"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_the_primary_users_agent_keeps_serving_and_anothers_is_told_not_needed(
    tmp_path: Path, shared: Path
) -> None:
    paths = Paths(root=shared / "mac")
    paths.run_dir.mkdir(parents=True)
    assert cli(["sandbox", "login", str(paths.root), "alice"]) == 0
    homes = {uid: shared / f"home{uid}" for uid in (ALICE, BOB)}
    for uid, home in homes.items():
        home.mkdir()
        os.chown(home, uid, uid)
    # Forked before any event loop runs (the interpreter is not reachable by these uids).
    alice = AgentAs(ALICE, paths.socket, homes[ALICE], tmp_path / "alice.log")
    bob = AgentAs(BOB, paths.socket, homes[BOB], tmp_path / "bob.log")
    state = StateStore.load(paths.state_file)
    platform = SandboxPlatform(paths, agent_argv=["/bin/true"])  # the agents above are the real ones

    async def body() -> None:
        gate = AgentGate(platform, None, EventBus([]), checkin_timeout=10)
        gate.remember(state)
        async with AgentServer(paths.socket, gate.allowed_uid, 0, limits=FAST) as server:
            gate.attach(server)
            alice.start()
            first = await gate.session()
            assert first.uid == ALICE
            assert state.state.primary_user is not None and state.state.primary_user["uid"] == ALICE
            assert await asyncio.to_thread(cli, ["sandbox", "switch", str(paths.root), "bob"]) == 0
            bob.start()
            assert await bob.wait(10) == 0, bob.output()  # exits 0: its LaunchAgent stays down
            # Bob has the console; Alice's steps still run in her session, through her agent.
            again = await gate.session()
            assert again is first and (await again.ping()).ok
            await gate.shutdown_all()
            assert await alice.wait(10) == 0

    try:
        run(body(), timeout=40)
    finally:
        alice.stop()
        bob.stop()
    out = bob.output()
    assert out.count("does not need this agent") == 1 and "WARNING" not in out, out
    # A daemon started again later serves the same user, whoever is on the console.
    restarted = AgentGate(platform, None, EventBus([]))
    restarted.remember(StateStore.load(paths.state_file))
    assert restarted.allowed_uid(ALICE) and not restarted.allowed_uid(BOB)
