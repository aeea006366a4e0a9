"""Fuzz `bootstrapper validate` and `plan` through the real CLI entry, in-process.

Generates a few thousand seeded manifest mutants (valid manifests with keys, values, types, URLs,
hosts, ports, conditions and raw bytes mutated) and prints the exit-code histogram. Only 0 (valid)
and 2 (refused, one line per problem) are allowed: a 3 is a crash, and its case is saved for a test.
`python bench/fuzz_manifest.py [COUNT [SEED]]`.
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
COUNT = 2000
SEED = 2026
ALLOWED = {0, 2}
HASH = "ab" * 32

_VALUES: list[Any] = [
    None, True, 0, -1, 2**70, 1e308, "", "x" * 300, "\u202eevil", "\u200b", [], {}, [1], {"a": 1},
    "https://[::1/a.sh", "https://example.com:99999/a", "https://exa mple.com/a", "https://example.com:abc/a",
    "http://example.com/a", "file:///etc/passwd", "https://u:p@example.com/a", "../x", "/", "\x00",
    ">= 14.0", "== 99.99.99.99", "intel", "apple_silicon", HASH, HASH.upper(), "sha256 hash", 12345,
]  # fmt: skip
_KEYS = [
    "name", "type", "url", "hash", "file", "packageid", "version", "skip_if", "only_if", "retries",
    "retrywait", "fail_policy", "donotwait", "timeout", "arguments", "path", "size", "required", "secrets",
    "team_id", "bogus",
]  # fmt: skip


def _base() -> dict[str, Any]:
    return {
        "format": 1,
        "setupassistant": [
            {"name": "pkg", "type": "package", "url": "https://example.com/a.pkg", "hash": HASH,
             "packageid": "com.example.a", "version": "1.0"},
            {"name": "script", "type": "rootscript", "url": "https://example.com/s.sh", "hash": HASH,
             "skip_if": {"arch": "x86_64", "path_exists": "/Applications/A.app"}},
        ],
        "userland": [{"name": "user", "type": "userscript", "url": "https://example.com/u.sh", "hash": HASH}],
    }  # fmt: skip


def mutant(rng: random.Random) -> bytes:
    doc = _base()
    for _ in range(rng.randint(1, 4)):
        stage = rng.choice(["setupassistant", "userland"])
        item = rng.choice(doc[stage])
        item[rng.choice(_KEYS)] = rng.choice(_VALUES)
    text = json.dumps(doc) if rng.random() < 0.5 else _yaml(doc)
    data = text.encode("utf-8", "surrogatepass")
    if rng.random() < 0.2:  # raw byte damage
        cut = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            cut[rng.randrange(len(cut))] = rng.randrange(256)
        data = bytes(cut)
    return data


def _yaml(doc: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


def run(count: int = COUNT, seed: int = SEED) -> int:
    """Fuzz `count` cases through validate and plan; returns the number of runs other than 0 or 2."""
    sys.path.insert(0, str(ROOT))
    from bootstrapper.cli import main as cli

    rng = random.Random(seed)  # noqa: S311 -- reproducible cases, not a secret
    codes: Counter[tuple[str, int]] = Counter()
    bad: list[Path] = []
    keep = Path(tempfile.mkdtemp(prefix="fuzz-manifest-crashes-"))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(count):
            data = mutant(rng)
            path = Path(tmp) / f"{n}.yaml"
            path.write_bytes(data)
            for command in ("validate", "plan"):
                out, err = io.StringIO(), io.StringIO()
                with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                    code = cli([command, str(path)])
                codes[command, code] += 1
                if code not in ALLOWED:
                    saved = keep / f"{n}.yaml"
                    saved.write_bytes(data)
                    bad.append(saved)
    took = time.perf_counter() - started
    print(f"cases              {count} (seed {seed}), run in {took:.1f} s")
    for command in ("validate", "plan"):
        shown = ", ".join(f"{code}: {k}" for (c, code), k in sorted(codes.items()) if c == command)
        print(f"  {command:<16} {shown}")
    if bad:
        print(f"CRASH              {len(bad)} runs ended other than 0/2; cases kept in {keep}")
    else:
        print("ok                 only exit 0 and 2")
    return len(bad)


def main() -> None:
    """The `make bench` row: the default count and seed."""
    if run():
        raise SystemExit(1)


if __name__ == "__main__":
    args = sys.argv[1:]
    raise SystemExit(
        1 if run(int(args[0]) if args else COUNT, int(args[1]) if len(args) > 1 else SEED) else 0
    )
