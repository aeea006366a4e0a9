"""The agent gives a step's secrets to that script only, and masks them before answering or logging."""

from __future__ import annotations

from pathlib import Path

from bootstrapper.ipc.server import AgentServer
from bootstrapper.paths import Paths
from tests.support.ipc import FAST, agent_process, me, run, script

SECRET = "tok-5e1f0a7c9d"


def test_the_script_gets_its_secret_and_its_output_comes_back_masked(sandbox: Paths, tmp_path: Path) -> None:
    path, digest = script(tmp_path, "s.sh", 'echo "token=$API_TOKEN"; exit 2')
    other, other_digest = script(tmp_path, "o.sh", 'echo "token=${API_TOKEN:-none}"')
    log = tmp_path / "agent.log"

    async def body() -> None:
        async with AgentServer(sandbox.socket, lambda uid: uid == me(), me(), limits=FAST) as server:
            with agent_process(sandbox.root, log):
                session = await server.wait_for_agent(me(), 10)
                reply = await session.run_script("s", path, digest, timeout=5, env={"API_TOKEN": SECRET})
                assert (reply.exit_code, reply.output) == (2, "token=***\n")
                # The next script, without secrets, does not inherit the last one's.
                after = await session.run_script("o", other, other_digest, timeout=5)
                assert after.output == "token=none\n"

    run(body())
    assert SECRET not in log.read_text()
