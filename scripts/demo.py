"""`make demo`: the whole bootstrap of manifests/demo.yaml, end to end, in a sandbox, without root.

A loopback web server (started and stopped here) serves manifests/; the real `bootstrapper run`
process acts as the daemon in the sandbox `.demo/`, starts the real agent process for the user
items, installs a real .pkg, and removes itself at the end. The sandbox is left to inspect; run the
demo again and the preflight script finds the Mac already set up.
"""

from __future__ import annotations

import functools
import http.server
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SANDBOX = ROOT / ".demo"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return


def main() -> int:
    handler = functools.partial(_Quiet, directory=str(ROOT / "manifests"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/demo.yaml"
    print(f"demo: serving manifests/ at {url}; sandbox {SANDBOX.relative_to(ROOT)}/", flush=True)
    try:
        argv = [
            sys.executable,
            "-m",
            "bootstrapper",
            "run",
            "--manifest",
            url,
            "--sandbox",
            str(SANDBOX),
            "--allow-http",
        ]
        code = subprocess.call(argv)
    finally:
        server.shutdown()
        server.server_close()
    result = SANDBOX / "Library" / "Logs" / "bootstrapper" / "result.json"
    print(f"demo: exit code {code}; completion record: {result.relative_to(ROOT)}", flush=True)
    print("demo: run `make demo` again: the preflight finds this sandbox already set up.", flush=True)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
