"""The orchestrator: makespan against its lower bound and against InstallApplications' sequential
mode, daemon CPU while it waits for a login, and peak memory over a 2 GiB run.

Two networks, served from another process (`linkserver.py`), each measured side by side in one run:
- a Mac's shared link: one 24 MiB/s budget for every connection; six 24 MiB files, each followed by
  a root script that takes 1 s. The bound is the bytes at curl's rate, plus the last script.
- a CDN that caps each connection at 12 MiB/s on a 48 MiB/s link; four 48 MiB files, each followed
  by a 1 s script. The bound is the bytes at `aria2c -x4 -s4`'s rate, plus the last script.
Sequential is InstallApplications' way: one connection, download an item, run it, then the next.
Goals: shared link ÷ bound ≤ 1.03, sequential ÷ ours ≥ 1.6; capped CDN ÷ bound ≤ 1.05, sequential ÷
ours ≥ 2.5; CPU while waiting ≤ 0.2 % of a core; peak RSS over 2 GiB ≤ 80 MB.

`BENCH_QUICK=1` shortens the login wait (30 s → 5 s) and the big run (2 GiB → 512 MiB).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from bootstrapper.config import Config
from bootstrapper.engine.agents import AgentGate
from bootstrapper.engine.context import RunContext
from bootstrapper.engine.events import Event, EventBus, Message
from bootstrapper.engine.run import Scheduler
from bootstrapper.engine.state import StateStore
from bootstrapper.manifest.conditions import NoProbe
from bootstrapper.manifest.load import load_bytes
from bootstrapper.paths import Paths
from bootstrapper.platform.sandbox import SandboxPlatform

sys.path.insert(0, str(Path(__file__).resolve().parent))
from linkserver import LinkServer

QUICK = os.environ.get("BENCH_QUICK") == "1"
MiB = 1024 * 1024
SCRIPT_SECONDS = 1.0


@dataclasses.dataclass(frozen=True)
class Network:
    label: str
    link: float
    per_connection: float
    files: int
    each: int
    baseline: str


SHARED = Network("shared link", 24 * MiB, 0, 6, 24 * MiB, "curl")
CDN = Network("capped CDN", 48 * MiB, 12 * MiB, 4, 48 * MiB, "aria2c -x4 -s4")


def _site(root: Path, net: Network) -> list[str]:
    """`net.files` random files, each followed by a script that takes SCRIPT_SECONDS; their names."""
    items: list[dict[str, Any]] = []
    names = []
    script = f"#!/bin/sh\nsleep {SCRIPT_SECONDS}\n".encode()
    for i in range(net.files):
        data = os.urandom(net.each)
        (root / f"f{i}.bin").write_bytes(data)
        (root / f"s{i}.sh").write_bytes(script)
        names.append(f"f{i}.bin")
        items.append(
            {
                "name": f"file {i}",
                "type": "rootfile",
                "url": f"f{i}.bin",
                "hash": hashlib.sha256(data).hexdigest(),
                "size": len(data),
                "file": f"/Library/Bench/f{i}.bin",
            }
        )
        items.append(
            {
                "name": f"script {i}",
                "type": "rootscript",
                "url": f"s{i}.sh",
                "hash": hashlib.sha256(script).hexdigest(),
            }
        )
    doc = {"format": 1, "settings": {"allow_http": True}, "setupassistant": items}
    (root / "m.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return names


async def _makespan(url: str, sandbox: Path, concurrency: int, lookahead: int) -> float:
    paths = Paths(root=sandbox)
    for folder in (paths.install_dir, paths.staging_dir):
        folder.mkdir(parents=True, exist_ok=True)
    os.chmod(paths.staging_dir, 0o700)
    import httpx

    async with httpx.AsyncClient() as client:
        data = (await client.get(url)).content
    manifest = load_bytes(data, url, location=url, allow_http=True).manifest
    config = dataclasses.replace(
        Config(), allow_http=True, concurrency=concurrency, lookahead_bytes=lookahead
    )
    platform = SandboxPlatform(paths, arch="arm64", os_version="14.6")
    bus = EventBus()
    gate = AgentGate(platform, None, bus)
    ctx = RunContext(paths, platform, config, bus, gate, owner_uid=os.getuid())
    from bootstrapper.engine.network import fetch_options

    state = StateStore.load(paths.state_file)
    started = time.perf_counter()
    report = await Scheduler(manifest, ctx, state, fetch_options(config), probe=NoProbe()).execute()
    took = time.perf_counter() - started
    assert report.result == "success", report
    return took


def _baseline(net: Network, server: LinkServer, names: list[str], out: Path) -> float | str:
    """Seconds the reference tool takes for all the files, one after another; or why it did not run."""
    out.mkdir(exist_ok=True)
    if net.baseline == "curl":
        args = ["curl", "-s"]
        for name in names:
            args += [server.url(name), "-o", str(out / name)]
    else:
        if shutil.which("aria2c") is None:
            return "aria2c is not installed (apt-get install -y aria2, or brew install aria2)"
        listing = out / "list.txt"
        listing.write_text("".join(f"{server.url(n)}\n" for n in names))
        # -k1M lets it split a file into 4 (its default minimum split is 20 MB)
        args = ["aria2c", "-q", "-x4", "-s4", "-k1M", "-j1", "--file-allocation=none",
                "--allow-overwrite=true", "-d", str(out), "-i", str(listing)]  # fmt: skip
    started = time.perf_counter()
    subprocess.run(args, check=True)
    took = time.perf_counter() - started
    shutil.rmtree(out)
    return took


def _scenario(net: Network, tmp: Path) -> None:
    site = tmp / "site"
    site.mkdir()
    names = _site(site, net)
    total = net.files * net.each
    pairs: list[tuple[float | str, float]] = []
    with LinkServer(site, net.link, net.per_connection) as server:
        # Side by side, REPEATS times: on a shared machine one pair can be off by a few per cent
        # either way (the reference tool's own time varies as much), the median pair is not.
        for n in range(REPEATS):
            base_n = _baseline(net, server, names, tmp / "baseline")
            ours_n = asyncio.run(
                _makespan(server.url("m.yaml"), tmp / f"ours{n}", 4, Config().lookahead_bytes)
            )
            pairs.append((base_n, ours_n))
        seq = asyncio.run(_makespan(server.url("m.yaml"), tmp / "seq", 1, 1))
    shutil.rmtree(site)
    base, ours = _median_pair(pairs)
    print(
        f"{net.label}: {net.link / MiB:.0f} MiB/s"
        + (f", {net.per_connection / MiB:.0f} MiB/s per connection" if net.per_connection else "")
        + f"; {net.files} × {net.each // MiB} MiB files, each followed by a {SCRIPT_SECONDS:g} s script"
    )
    if isinstance(base, str):
        print(f"  bound at {net.baseline}'s rate: skipped: {base}")
    else:
        bound = base + SCRIPT_SECONDS
        goal = "≤ 1.03" if net is SHARED else "≤ 1.05"
        print(
            f"  {net.baseline}: {base:.2f} s for the bytes ({total / base / MiB:.1f} MiB/s) → bound "
            f"{bound:.2f} s; ours {ours:.2f} s → ÷ bound = {ours / bound:.3f} (goal {goal}; the median "
            f"of {REPEATS} pairs: "
            + ", ".join(f"{o / (b + SCRIPT_SECONDS):.3f}" for b, o in pairs if not isinstance(b, str))
            + ")"
        )
    goal = "≥ 1.6" if net is SHARED else "≥ 2.5"
    print(
        f"  sequential (one connection, download then run) {seq:.2f} s → sequential ÷ ours = {seq / ours:.2f} (goal {goal})"
    )


#: Side-by-side pairs (reference tool, ours) per scenario; the median pair is reported.
REPEATS = 3


def _median_pair(pairs: list[tuple[float | str, float]]) -> tuple[float | str, float]:
    """The pair whose ratio ours ÷ bound is the median (the first pair when the tool is missing)."""
    timed = [(b, o) for b, o in pairs if not isinstance(b, str)]
    if not timed:
        return pairs[0]
    timed.sort(key=lambda pair: pair[1] / (float(pair[0]) + SCRIPT_SECONDS))
    return timed[len(timed) // 2]


def makespan() -> None:
    for net in (SHARED, CDN):
        scratch = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
        with tempfile.TemporaryDirectory(prefix="bench-engine-", dir=scratch) as tmp:
            _scenario(net, Path(tmp))


class _Watch:
    """Notes the CPU time and the clock when the run starts waiting for a login, and when it ends."""

    def __init__(self) -> None:
        self.marks: list[tuple[float, float]] = []

    def handle(self, event: Event) -> None:
        if isinstance(event, Message) and "waiting for a user" in event.text:
            self.marks.append((time.process_time(), time.monotonic()))

    def close(self) -> None:
        return


async def _login_wait(seconds: float) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="bench-login-") as tmp:
        paths = Paths(root=Path(tmp))
        platform = SandboxPlatform(paths, login_delay=seconds)
        watch = _Watch()
        gate = AgentGate(platform, None, EventBus([watch]))
        await gate.console_user()
        cpu_end, wall_end = time.process_time(), time.monotonic()
    cpu_start, wall_start = watch.marks[0]
    return cpu_end - cpu_start, wall_end - wall_start


_LOGIN_CHILD = r"""
import asyncio, json, sys
sys.path.insert(0, sys.argv[1])
from bench_engine import _login_wait
cpu, wall = asyncio.run(_login_wait(float(sys.argv[2])))
print(json.dumps({"cpu": cpu, "wall": wall}))
"""


def login_cpu() -> None:
    # In a process of its own, as the daemon waits in its own: here, one collection of the garbage
    # the makespan runs left behind, falling in the window, once added 70 ms to a 5 ms wait.
    seconds = 5.0 if QUICK else 30.0
    out = subprocess.run(
        [sys.executable, "-c", _LOGIN_CHILD, str(Path(__file__).resolve().parent), str(seconds)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    result = json.loads(out.stdout.strip().splitlines()[-1])
    cpu, wall = result["cpu"], result["wall"]
    print(
        f"waiting {wall:.1f} s for a login: {cpu * 1000:.1f} ms CPU = {100 * cpu / wall:.3f} % of a core (goal ≤ 0.2 %)"
    )


_RSS_CHILD = r"""
import asyncio, dataclasses, json, resource, sys
from pathlib import Path
from bootstrapper.config import Config
from bootstrapper.daemon import RunRequest, run_with_provision
from bootstrapper.paths import Paths
from bootstrapper.platform.sandbox import SandboxPlatform
url, root = sys.argv[1], Path(sys.argv[2])
paths = Paths(root=root)
config = dataclasses.replace(Config(), allow_http=True)
code = asyncio.run(run_with_provision(RunRequest(url, sandbox=True), config, paths, SandboxPlatform(paths)))
def peak_kb():
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over an exec from the forked parent
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss // 1024 if sys.platform == "darwin" else rss
print(json.dumps({"code": code, "maxrss_kb": peak_kb()}))
"""


def peak_rss() -> None:
    parts, part_size = (2, 256 * 2**20) if QUICK else (4, 512 * 2**20)
    with tempfile.TemporaryDirectory(prefix="bench-rss-", dir="/var/tmp") as tmp:
        site = Path(tmp) / "site"
        site.mkdir()
        blob = site / "blob.bin"
        digest = hashlib.sha256()
        block = os.urandom(2**20)
        with blob.open("wb") as fh:
            for _ in range(part_size // len(block)):
                fh.write(block)
                digest.update(block)
        items = []
        for i in range(parts):
            os.link(blob, site / f"part{i}.bin")
            items.append(
                {
                    "name": f"part {i}",
                    "type": "rootfile",
                    "url": f"part{i}.bin",
                    "hash": digest.hexdigest(),
                    "file": f"/Library/Big/part{i}.bin",
                    "size": part_size,
                }
            )
        (site / "m.yaml").write_text(
            yaml.safe_dump({"format": 1, "settings": {"allow_http": True}, "setupassistant": items})
        )
        with LinkServer(site) as server:
            out = subprocess.run(
                [sys.executable, "-c", _RSS_CHILD, server.url("m.yaml"), str(Path(tmp) / "mac")],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["code"] == 0, out.stderr
    total = parts * part_size
    print(
        f"a {total / 2**30:.1f} GiB run (the real daemon's job, in a child process): peak RSS {result['maxrss_kb'] / 1024:.1f} MiB (goal ≤ 80 MB)"
    )


def main() -> None:
    makespan()
    login_cpu()
    peak_rss()


if __name__ == "__main__":
    main()
