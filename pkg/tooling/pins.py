"""pkg/pins.toml: the Python installer and relocatable-python `make pkg` uses, read and checked once.

The build trusts nothing it downloads by name alone: python.org's installer by its sha256, the
relocatable-python checkout by its commit. An empty or malformed pin stops the build with one line that
names the field and the fix, never a build from an unverified input.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from bootstrapper.deploy.layout import FRAMEWORK
from bootstrapper.errors import UsageError

PINS = Path(__file__).resolve().parents[1] / "pins.toml"


@dataclass(frozen=True)
class Pins:
    python_version: str
    python_url: str
    python_sha256: str
    python_team_id: str
    relocatable_python_url: str
    relocatable_python_commit: str

    @property
    def python_short(self) -> str:
        """`3.14` for 3.14.8: the framework's Versions/ folder and the interpreter's name."""
        return ".".join(self.python_version.split(".")[:2])

    @property
    def interpreter(self) -> PurePosixPath:
        return FRAMEWORK / "Versions" / self.python_short / "bin" / f"python{self.python_short}"

    def installer_sha256(self, where: Path = PINS) -> str:
        """The installer's hash, or the reason `make pkg` cannot start without it."""
        if not self.python_sha256:
            raise UsageError(
                f"{where}: python.sha256 is empty; copy the SHA-256 of {self.python_url} from its "
                "python.org release page into it, then run `make pkg` again"
            )
        return self.python_sha256


def load(path: Path = PINS) -> Pins:
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"{path}: cannot read the build pins ({exc}); restore it from git") from None

    def field(table: str, key: str, pattern: str, hint: str) -> str:
        value = doc.get(table, {}).get(key)
        if not isinstance(value, str) or not re.fullmatch(pattern, value):
            raise UsageError(f"{path}: {table}.{key} = {value!r}: expected {hint}")
        return value

    pins = Pins(
        python_version=field("python", "version", r"3\.\d+\.\d+", "a final CPython version such as 3.14.8"),
        python_url=field("python", "url", r"https://\S+\.pkg", "the https URL of python.org's .pkg"),
        python_sha256=field("python", "sha256", r"(|[0-9a-f]{64})", "64 lower-case hex digits (or empty)"),
        python_team_id=field("python", "team_id", r"[A-Z0-9]{10}", "the 10-character Apple Team ID"),
        relocatable_python_url=field("relocatable-python", "url", r"https://\S+", "an https git URL"),
        relocatable_python_commit=field("relocatable-python", "commit", r"[0-9a-f]{40}", "a 40-hex commit"),
    )
    name = PurePosixPath(urlsplit(pins.python_url).path).name
    if name != f"python-{pins.python_version}-macos11.pkg":
        raise UsageError(
            f"{path}: python.url names {name}, not python-{pins.python_version}-macos11.pkg; "
            "pin the universal2 installer of the same version"
        )
    return pins
