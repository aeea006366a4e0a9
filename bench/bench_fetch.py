"""Downloader benchmarks, each measured side by side with a baseline in one run.

1. A large file (1 GiB; BENCH_FETCH_MIB to change) from a loopback server, downloaded and verified:
   our wall time ÷ `curl -s URL | sha256sum`, and our peak RSS (measured in a child process).
2. Many items from a server that limits each connection's bandwidth: concurrency 4 ÷ concurrency 1.

The server runs in its own process (this file, `serve`), and so does our downloader (`client`), so
neither shares a GIL with the other and the RSS is ours alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MiB = 1024 * 1024


# --- the loopback server (child process) ------------------------------------------------------


class _Files(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    folder = Path()
    rate = 0.0

    def do_GET(self) -> None:
        path = self.folder / self.path.lstrip("/")
        size = path.stat().st_size
        self.send_response(200)
        self.send_header("Content-Length", str(size))
        self.send_header("ETag", '"bench"')
        self.end_headers()
        self.wfile.flush()
        with path.open("rb") as fh:
            if not self.rate:
                self.connection.sendfile(fh)
                return
            started = time.monotonic()
            sent = 0
            while block := fh.read(64 * 1024):
                self.wfile.write(block)
                sent += len(block)
                ahead = sent / self.rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)

    def log_message(self, format: str, *args: object) -> None:
        return


def serve(folder: str, rate: str) -> None:
    _Files.folder = Path(folder)
    _Files.rate = float(rate)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


class Server:
    """The server process, started and stopped around one benchmark."""

    def __init__(self, folder: Path, rate: float = 0.0) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "serve", str(folder), str(rate)], stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()


# --- our downloader (child process) -----------------------------------------------------------


def client(spec: str) -> None:
    """Fetch the items in `spec` (JSON) and print the time it took and the peak RSS."""
    import asyncio

    sys.path.insert(0, str(ROOT))
    from bootstrapper.fetch import Download, Downloader, FetchOptions

    job = json.loads(spec)
    options = FetchOptions(allow_http=True, concurrency=job["concurrency"])
    items = [
        Download(f"item[{n}]", it["url"], Path(it["dest"]), it["sha256"], it["size"], retries=0)
        for n, it in enumerate(job["items"])
    ]

    async def go() -> None:
        async with Downloader(options, Path(job["staging"])) as d:
            results = await d.fetch_all(items)
        failed = {k: str(v) for k, v in results.items() if not isinstance(v, Path)}
        if failed:
            raise SystemExit(f"failed: {failed}")

    started = time.perf_counter()
    asyncio.run(go())
    took = time.perf_counter() - started
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rss_bytes = rss if sys.platform == "darwin" else rss * 1024
    print(json.dumps({"seconds": took, "rss": rss_bytes}))


def run_ours(job: dict[str, object]) -> tuple[float, float, int]:
    """(wall seconds of the whole process, seconds inside fetch_all, peak RSS bytes)."""
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, __file__, "client", json.dumps(job)], capture_output=True, text=True, check=True
    )
    wall = time.perf_counter() - started
    result = json.loads(out.stdout)
    return wall, float(result["seconds"]), int(result["rss"])


def run_curl(url: str, expected: str) -> float:
    started = time.perf_counter()
    out = subprocess.run(f"curl -s {url} | sha256sum", shell=True, capture_output=True, text=True, check=True)  # noqa: S602 -- the baseline is a pipeline
    took = time.perf_counter() - started
    assert out.stdout.split()[0] == expected, "curl baseline got different bytes"
    return took


# --- the benchmarks ---------------------------------------------------------------------------


def _scratch() -> Path:
    """tmpfs when there is one: the benchmark measures the downloader, not the disk's fsync."""
    shm = Path("/dev/shm")
    return Path(tempfile.mkdtemp(prefix="bench-fetch-", dir=shm if shm.is_dir() else None))


def _make_file(path: Path, size: int) -> str:
    block = os.urandom(MiB)
    h = hashlib.sha256()
    with path.open("wb") as fh:
        left = size
        while left > 0:
            chunk = block[: min(MiB, left)]
            fh.write(chunk)
            h.update(chunk)
            left -= len(chunk)
    return h.hexdigest()


def bench_large(work: Path) -> None:
    size = int(os.environ.get("BENCH_FETCH_MIB", "1024")) * MiB
    served = work / "served"
    served.mkdir()
    digest = _make_file(served / "big.bin", size)
    server = Server(served)
    try:
        url = server.url("big.bin")
        ours_wall, ours_fetch, curl, rss = [], [], [], 0
        for n in range(3):
            dest = work / f"out{n}" / "big.bin"
            job = {
                "concurrency": 1,
                "staging": str(work / "staging"),
                "items": [{"url": url, "dest": str(dest), "sha256": digest, "size": size}],
            }
            curl.append(run_curl(url, digest))
            wall, inside, peak = run_ours(job)
            ours_wall.append(wall)
            ours_fetch.append(inside)
            rss = max(rss, peak)
            shutil.rmtree(dest.parent)
    finally:
        server.stop()
    c, w, f = statistics.median(curl), statistics.median(ours_wall), statistics.median(ours_fetch)
    print(f"large file: {size // MiB} MiB over loopback, median of 3, files on {work.parent}")
    print(f"  curl -s | sha256sum   {c:6.2f} s   {size / c / MiB:7.0f} MiB/s")
    print(
        f"  ours, whole process   {w:6.2f} s   {size / w / MiB:7.0f} MiB/s   ratio {w / c:.2f} (goal <= 1.1)"
    )
    print(f"  ours, fetch only      {f:6.2f} s   {size / f / MiB:7.0f} MiB/s   ratio {f / c:.2f}")
    print(f"  ours, peak RSS        {rss / MiB:6.1f} MiB (goal <= 80)")


def bench_concurrency(work: Path) -> None:
    count, each, rate = 16, 2 * MiB, 8 * MiB
    served = work / "many"
    served.mkdir()
    items = []
    for n in range(count):
        digest = _make_file(served / f"{n}.bin", each)
        items.append({"name": f"{n}.bin", "sha256": digest, "size": each})
    server = Server(served, rate=rate)
    times = {}
    try:
        for concurrency in (1, 4):
            out = work / f"many-out-{concurrency}"
            job = {
                "concurrency": concurrency,
                "staging": str(work / "staging"),
                "items": [
                    {"url": server.url(it["name"]), "dest": str(out / str(it["name"])), **it} for it in items
                ],
            }
            times[concurrency] = run_ours(job)[1]
    finally:
        server.stop()
    print(f"many items: {count} x {each // MiB} MiB, server limited to {rate // MiB} MiB/s per connection")
    print(f"  concurrency 1  {times[1]:6.2f} s")
    print(f"  concurrency 4  {times[4]:6.2f} s   ratio c4/c1 {times[4] / times[1]:.2f} (ideal 0.25)")


def main() -> None:
    work = _scratch()
    try:
        bench_large(work)
        bench_concurrency(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve(sys.argv[2], sys.argv[3])
    elif sys.argv[1:2] == ["client"]:
        client(sys.argv[2])
    else:
        main()
