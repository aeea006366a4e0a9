"""Downloader benchmarks, each measured side by side with a baseline in one run.

1. A large file (1 GiB; BENCH_FETCH_MIB to change) from an unlimited loopback server, downloaded and
   verified with the default settings: our wall time ÷ `curl -s URL | sha256sum` (goal ≤ 1.1), and
   our peak RSS (measured in a child process).
2. The same file from a CDN that caps each connection at 12 MiB/s on a 48 MiB/s link: ours (segments,
   as many as pay) ÷ `aria2c -x4 -s4` (goal ≤ 1.1).
3. Many items from a server that limits each connection's bandwidth: concurrency 4 ÷ concurrency 1.

The server runs in its own process (`linkserver.py`), and so does our downloader (`client`), so
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from linkserver import LinkServer

ROOT = Path(__file__).resolve().parents[1]
MiB = 1024 * 1024


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
    usage = resource.getrusage(resource.RUSAGE_SELF)
    rss_bytes = peak_kb() * 1024
    print(json.dumps({"seconds": took, "rss": rss_bytes, "cpu": usage.ru_utime + usage.ru_stime}))


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


def peak_kb() -> int:
    """Peak RSS in KiB: VmHWM, since Linux carries `ru_maxrss` over an exec from the forked parent."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss // 1024 if sys.platform == "darwin" else rss


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
    with LinkServer(served) as server:
        url = server.url("big.bin")
        ours_wall, ours_fetch, curl, rss = [], [], [], 0
        for n in range(3):
            dest = work / f"out{n}" / "big.bin"
            job = {
                "concurrency": 4,
                "staging": str(work / "staging"),
                "items": [{"url": url, "dest": str(dest), "sha256": digest, "size": size}],
            }
            curl.append(run_curl(url, digest))
            wall, inside, peak = run_ours(job)
            ours_wall.append(wall)
            ours_fetch.append(inside)
            rss = max(rss, peak)
            shutil.rmtree(dest.parent)
    c, w, f = statistics.median(curl), statistics.median(ours_wall), statistics.median(ours_fetch)
    print(f"large file: {size // MiB} MiB over loopback (no limit), median of 3, files on {work.parent}")
    print(f"  curl -s | sha256sum   {c:6.2f} s   {size / c / MiB:7.0f} MiB/s")
    print(
        f"  ours, whole process   {w:6.2f} s   {size / w / MiB:7.0f} MiB/s   ratio {w / c:.2f} (goal <= 1.1)"
    )
    print(f"  ours, fetch only      {f:6.2f} s   {size / f / MiB:7.0f} MiB/s   ratio {f / c:.2f}")
    print(f"  ours, peak RSS        {rss / MiB:6.1f} MiB (goal <= 80)")


def bench_capped(work: Path) -> None:
    size = int(os.environ.get("BENCH_FETCH_MIB", "1024")) * MiB
    path = work / "served" / "big.bin"
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(MiB):
            digest.update(block)
    link, per_connection = 48 * MiB, 12 * MiB
    print(
        f"large file on a capped CDN: {size // MiB} MiB, {per_connection // MiB} MiB/s per connection, "
        f"{link // MiB} MiB/s in all"
    )
    with LinkServer(path.parent, link, per_connection) as server:
        url = server.url("big.bin")
        times: dict[str, float] = {}
        if shutil.which("aria2c") is None:
            print("  aria2c: skipped: not installed (apt-get install -y aria2, or brew install aria2)")
        else:
            out = work / "aria"
            started = time.perf_counter()
            subprocess.run(
                ["aria2c", "-q", "-x4", "-s4", "-k1M", "--file-allocation=none", "-d", str(out), url],
                check=True,
            )
            times["aria2c"] = time.perf_counter() - started
            shutil.rmtree(out)
        dest = work / "capped-out" / "big.bin"
        job = {
            "concurrency": 4,
            "staging": str(work / "staging"),
            "items": [{"url": url, "dest": str(dest), "sha256": digest.hexdigest(), "size": size}],
        }
        times["ours"] = run_ours(job)[1]
        shutil.rmtree(dest.parent)
    for label, took in times.items():
        line = f"  {label:22s}{took:6.2f} s   {size / took / MiB:5.1f} MiB/s"
        if label == "ours" and "aria2c" in times:
            line += f"   ours ÷ aria2c -x4 -s4 = {took / times['aria2c']:.2f} (goal ≤ 1.1)"
        print(line)


def bench_concurrency(work: Path) -> None:
    count, each, rate = 16, 2 * MiB, 8 * MiB
    served = work / "many"
    served.mkdir()
    items = []
    for n in range(count):
        digest = _make_file(served / f"{n}.bin", each)
        items.append({"name": f"{n}.bin", "sha256": digest, "size": each})
    times = {}
    with LinkServer(served, per_connection=rate) as server:
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
    print(f"many items: {count} x {each // MiB} MiB, server limited to {rate // MiB} MiB/s per connection")
    print(f"  concurrency 1  {times[1]:6.2f} s")
    print(f"  concurrency 4  {times[4]:6.2f} s   ratio c4/c1 {times[4] / times[1]:.2f} (ideal 0.25)")


def main() -> None:
    work = _scratch()
    try:
        bench_large(work)
        bench_capped(work)
        bench_concurrency(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["client"]:
        client(sys.argv[2])
    else:
        main()
