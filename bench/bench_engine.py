"""The orchestrator: makespan against its lower bound, against InstallApplications' sequential mode,
daemon CPU while it waits for a login, and peak memory over a 2 GiB run.

A loopback server limits bandwidth the way a Mac's link does (one budget shared by all connections);
an installer takes a set time per package. A second line repeats the run against a server that also
caps each connection (as many CDNs do), where more connections do add speed.
Goals: makespan ÷ max(bytes / bandwidth, Σ install time) ≤ 1.05; sequential ÷ ours ≥ 1.6;
CPU while waiting ≤ 0.2 % of a core; peak RSS over 2 GiB ≤ 80 MB.

`BENCH_QUICK=1` shortens the login wait (30 s → 5 s) and the big run (2 GiB → 512 MiB).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
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
from bootstrapper.platform.base import InstallResult, Receipt
from bootstrapper.platform.sandbox import SandboxPlatform

# The package writer is test tooling, not part of the runtime: it lives in tests/support/.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.pkgwriter import build_component_pkg

QUICK = os.environ.get("BENCH_QUICK") == "1"
MB = 1_000_000
LINK = 24 * MB  # bytes per second for the whole machine
NO_CAP = 10**12
CDN_PER_CONNECTION = 8 * MB
INSTALL_SECONDS = 0.35


class _Bucket:
    """A token bucket shared by every connection: the machine's link."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.lock = threading.Lock()
        self.next_free = time.monotonic()

    def take(self, n: int) -> float:
        with self.lock:
            now = time.monotonic()
            start = max(now, self.next_free)
            self.next_free = start + n / self.rate
            return self.next_free - now


def _server(root: Path, link: float, per_connection: float) -> tuple[http.server.ThreadingHTTPServer, str]:
    bucket = _Bucket(link)

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return

        def do_GET(self) -> None:
            path = root / self.path.lstrip("/")
            data_len = path.stat().st_size
            self.send_response(200)
            self.send_header("Content-Length", str(data_len))
            self.end_headers()
            chunk = 64 * 1024
            started = time.monotonic()
            sent = 0
            with path.open("rb") as fh:
                while block := fh.read(chunk):
                    wait = bucket.take(len(block))
                    own = started + (sent + len(block)) / per_connection - time.monotonic()
                    time.sleep(max(wait, own, 0))
                    self.wfile.write(block)
                    sent += len(block)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


class TimedInstaller(SandboxPlatform):
    """An installer that takes a set time per package and writes nothing but its receipt."""

    def __init__(self, paths: Paths, seconds: float) -> None:
        super().__init__(paths, arch="arm64", os_version="14.6")
        self.seconds = seconds
        self.installed: dict[str, str] = {}

    async def install_pkg(
        self, package: Path, on_progress: Any = None, *, timeout: float = 3600.0
    ) -> InstallResult:
        from bootstrapper.flatpkg import read_package

        facts = read_package(package, digest=False)
        await asyncio.sleep(self.seconds)
        for comp in facts.components:
            self.installed[comp.info.identifier] = comp.info.version
        return InstallResult(package, "install", "none", self.seconds)

    async def receipt(self, pkgid: str) -> Receipt | None:
        version = self.installed.get(pkgid)
        return Receipt(pkgid, version, "", "/", 0) if version else None


def _mixed_site(root: Path) -> tuple[list[dict[str, Any]], int, int]:
    """12 items: 8 packages (a small one first), 2 root scripts, 2 root files."""
    items: list[dict[str, Any]] = []
    total = 0
    packages = 0

    def publish(name: str, data: bytes) -> dict[str, str]:
        nonlocal total
        (root / name).write_bytes(data)
        total += len(data)
        return {"url": name, "hash": hashlib.sha256(data).hexdigest()}

    sizes = [0.3, 6, 6, 6, 6, 6, 6, 6]
    for i, size in enumerate(sizes):
        pkg = build_component_pkg(
            root / f"p{i}.pkg", f"com.bench.p{i}", "1.0", {f"opt/p{i}/blob": os.urandom(int(size * MB))}
        )
        entry = publish(pkg.name, pkg.read_bytes())
        items.append(
            {
                "name": f"package {i}",
                "type": "package",
                "packageid": f"com.bench.p{i}",
                "version": "1.0",
                **entry,
            }
        )
        packages += 1
        if i in (2, 5):
            items.append(
                {"name": f"script {i}", "type": "rootscript", **publish(f"s{i}.sh", b"#!/bin/sh\ntrue\n")}
            )
        if i in (3, 6):
            items.append(
                {
                    "name": f"file {i}",
                    "type": "rootfile",
                    "file": f"/Library/Bench/f{i}",
                    **publish(f"f{i}", os.urandom(2 * MB)),
                }
            )
    return items, total, packages


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
    platform = TimedInstaller(paths, INSTALL_SECONDS)
    bus = EventBus()
    gate = AgentGate(platform, None, bus)
    ctx = RunContext(paths, platform, config, bus, gate, owner_uid=os.getuid())
    from bootstrapper.daemon import fetch_options

    state = StateStore.load(paths.state_file)
    started = time.perf_counter()
    report = await Scheduler(manifest, ctx, state, fetch_options(config), probe=NoProbe()).execute()
    took = time.perf_counter() - started
    assert report.result == "success", report
    return took


def makespan() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-engine-") as tmp:
        site = Path(tmp) / "site"
        site.mkdir()
        items, total, packages = _mixed_site(site)
        doc = {"format": 1, "settings": {"allow_http": True}, "setupassistant": items}
        (site / "m.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
        lookahead = Config().lookahead_bytes
        runs: dict[str, tuple[float, float]] = {}
        for label, per_connection in (("link", NO_CAP), ("cdn", CDN_PER_CONNECTION)):
            server, base = _server(site, LINK, per_connection)
            try:
                ours = asyncio.run(_makespan(f"{base}/m.yaml", Path(tmp) / f"ours-{label}", 4, lookahead))
                seq = asyncio.run(_makespan(f"{base}/m.yaml", Path(tmp) / f"seq-{label}", 1, 1))
            finally:
                server.shutdown()
                server.server_close()
            runs[label] = (ours, seq)
    bound = max(total / LINK, packages * INSTALL_SECONDS)
    print(
        f"12 items, {total / MB:.1f} MB over a {LINK / MB:.0f} MB/s link, {packages} installs × "
        f"{INSTALL_SECONDS} s: lower bound max(bytes/bandwidth, Σ install) = {bound:.2f} s"
    )
    ours, seq = runs["link"]
    print(f"  makespan ours {ours:.2f} s → ÷ lower bound = {ours / bound:.3f} (goal ≤ 1.05)")
    print(
        f"  sequential (download one, install it, next) {seq:.2f} s → sequential ÷ ours = {seq / ours:.2f} (goal ≥ 1.6)"
    )
    ours, seq = runs["cdn"]
    print(
        f"  same, server capping each connection at {CDN_PER_CONNECTION / MB:.0f} MB/s: ours {ours:.2f} s "
        f"(÷ bound {ours / bound:.3f}), sequential ÷ ours = {seq / ours:.2f}"
    )


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


def login_cpu() -> None:
    seconds = 5.0 if QUICK else 30.0
    cpu, wall = asyncio.run(_login_wait(seconds))
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
print(json.dumps({"code": code, "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
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
        server, base = _server(site, 10**12, 10**12)
        try:
            out = subprocess.run(
                [sys.executable, "-c", _RSS_CHILD, f"{base}/m.yaml", str(Path(tmp) / "mac")],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
        finally:
            server.shutdown()
            server.server_close()
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
