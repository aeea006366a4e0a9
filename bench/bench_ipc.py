"""Daemon → agent round trips against the real agent process.

Goal: 10,000 no-op (`ping` op) requests, p50 ≤ 1 ms and p99 ≤ 5 ms. Shown beside a baseline
measured in the same run: a bare asyncio echo of one small frame over a Unix socketpair, the floor that
any framing on this event loop pays. A few `run_script` round trips of `/bin/true` are shown too, since
that is what a user step costs on top of its own run time.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bootstrapper.ipc.server import AgentServer
from bootstrapper.paths import Paths

N = 10_000


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def _baseline(n: int) -> list[float]:
    a, b = socket.socketpair(socket.AF_UNIX)
    ra, wa = await asyncio.open_unix_connection(sock=a)
    rb, wb = await asyncio.open_unix_connection(sock=b)

    async def echo() -> None:
        while data := await rb.read(4096):
            wb.write(data)

    task = asyncio.create_task(echo())
    frame = b"\0\0\0\x20" + b'{"type":"request","id":1,"op":""}'
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        wa.write(frame)
        await ra.readexactly(len(frame))
        samples.append(time.perf_counter() - t)
    wa.close()
    await task
    wb.close()
    return samples


async def _measure(root: Path) -> None:
    paths = Paths(root=root)
    uid = os.getuid()
    async with AgentServer(paths.socket, lambda u: u == uid, uid) as server:
        agent = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "bootstrapper", "agent", "--sandbox", str(root)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            session = await server.wait_for_agent(uid, 30)
            for _ in range(200):  # warm up both ends
                await session.ping()
            pings = []
            for _ in range(N):
                t = time.perf_counter()
                await session.ping()
                pings.append(time.perf_counter() - t)
            script = root / "true.sh"
            script.write_text("#!/bin/sh\nexit 0\n")
            script.chmod(0o755)
            digest = hashlib.sha256(script.read_bytes()).hexdigest()
            runs = []
            for i in range(50):
                t = time.perf_counter()
                reply = await session.run_script(f"bench{i}", script, digest, timeout=10)
                runs.append(time.perf_counter() - t)
                assert reply.ok, reply
            await session.shutdown()
            await asyncio.wait_for(agent.wait(), 10)
        finally:
            if agent.returncode is None:
                agent.kill()
                await agent.wait()
    base = await _baseline(N)
    p50, p99 = _pct(pings, 0.50), _pct(pings, 0.99)
    b50, b99 = _pct(base, 0.50), _pct(base, 0.99)
    print(f"ping op round trip ({N:,}): p50 {p50:.3f} ms (goal ≤ 1), p99 {p99:.3f} ms (goal ≤ 5)")
    print(f"  baseline asyncio echo over a socketpair: p50 {b50:.3f} ms, p99 {b99:.3f} ms")
    print(f"  ratio to baseline: p50 {p50 / b50:.1f}x, p99 {p99 / b99:.1f}x")
    print(f"run_script of a no-op script (50): median {statistics.median(runs) * 1000:.2f} ms")


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-ipc-", dir="/tmp"))
    try:
        asyncio.run(_measure(root))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
