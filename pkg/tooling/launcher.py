"""Build pkg/launcher/launcher.c: universal2 with clang on a Mac (`make pkg`), natively with `cc`
anywhere else (`make pkg-payload`, which only needs a real executable where the plists point).

The interpreter's path is compiled in (-DBOOTSTRAPPER_INTERPRETER), so the launcher reads no
environment variable and searches no PATH to find what it runs as root.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path, PurePosixPath

from bootstrapper.errors import UsageError
from bootstrapper.process import run_sync

SOURCE = Path(__file__).resolve().parents[1] / "launcher" / "launcher.c"
MACOS_ARCHS = ("arm64", "x86_64")
COMPILE_TIMEOUT = 120.0
_WARNINGS = ("-Wall", "-Wextra", "-Werror")


def compile_argv(
    compiler: str, interpreter: PurePosixPath, out: Path, *, universal: bool, min_macos: str = "11.0"
) -> list[str]:
    """The compiler's argv; the define is one argv item, so the path needs no shell quoting."""
    if not interpreter.is_absolute():
        raise ValueError(f"{interpreter}: the launcher needs an absolute interpreter path")
    arch = [a for name in MACOS_ARCHS for a in ("-arch", name)] if universal else []
    target = [f"-mmacosx-version-min={min_macos}"] if universal else []
    define = f'-DBOOTSTRAPPER_INTERPRETER="{interpreter}"'
    return [compiler, *arch, *target, "-O2", *_WARNINGS, define, "-o", str(out), str(SOURCE)]


def build(
    out: Path, interpreter: PurePosixPath, *, universal: bool = False, compiler: str | None = None
) -> Path:
    """Compile the launcher into `out` (mode 0755)."""
    cc = compiler or ("/usr/bin/clang" if universal else shutil.which("cc"))
    if not cc:
        raise UsageError(
            "no C compiler (cc) found: the package's launcher is a small C program; "
            "install one (apt-get install gcc, or xcode-select --install on a Mac)"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    result = run_sync(compile_argv(cc, interpreter, out, universal=universal), timeout=COMPILE_TIMEOUT)
    if not result.ok:
        raise UsageError(f"{SOURCE.name}: {cc} failed: {result.tail.strip()}")
    os.chmod(out, 0o755)  # noqa: S103 - a program every user may run, as /usr/bin's are
    return out
