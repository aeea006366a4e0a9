"""Generated hostile packages through every reader: only success or one-line PackageError comes out.

The default run is a quick sweep (under 15 s on a loaded machine); set BOOTSTRAPPER_FUZZ_EXAMPLES
for a longer hunt, e.g. `BOOTSTRAPPER_FUZZ_EXAMPLES=5000 pytest tests/flatpkg/test_fuzz.py`.
hypothesis keeps any failure in `.hypothesis/` and replays it first on the next run.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from bootstrapper.errors import PlatformError
from bootstrapper.paths import Paths
from bootstrapper.platform.sandbox import SandboxPlatform
from tests.support.hostile_pkgs import OUTSIDE, RECIPES, Case, exercise, hostile_packages, random_cases, tree

EXAMPLES = int(os.environ.get("BOOTSTRAPPER_FUZZ_EXAMPLES", "200"))


@pytest.fixture(scope="module")
def outside() -> Iterator[Path]:
    """The folder some generated symlinks point at: writing through one would put a file here."""
    path = Path(OUTSIDE)
    path.mkdir(exist_ok=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def check(case: Case, outside: Path) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        (base / "neighbour").mkdir()
        (base / "neighbour" / "keep.txt").write_text("keep")
        pkg = base / "case.pkg"
        pkg.write_bytes(case.data)
        before = tree(base)
        said = exercise(pkg, base / "root")
        after = {p for p in tree(base) if p != "root" and not p.startswith("root/")}
        assert after == before, f"{case.recipe}: extraction wrote outside its root: {sorted(after - before)}"
        assert (base / "neighbour" / "keep.txt").read_text() == "keep"
    assert list(outside.iterdir()) == [], f"{case.recipe}: a file was written through an absolute symlink"
    assert said, case.recipe
    for message in said:
        assert "\n" not in message, f"{case.recipe}: a PackageError of several lines: {message!r}"
    return said


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
@given(case=hostile_packages())
def test_a_hostile_package_gives_only_success_or_a_package_error(case: Case, outside: Path) -> None:
    check(case, outside)


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_every_recipe_makes_cases_the_reader_refuses(recipe: str, outside: Path) -> None:
    """Each recipe draws hostile input, not just good packages: most of its cases are refused somewhere."""
    cases = [c for c in random_cases(seed=sum(map(ord, recipe)), count=400) if c.recipe == recipe][:12]
    assert cases
    refused = sum(any(m != "ok" for m in check(c, outside)) for c in cases)
    assert refused >= len(cases) // 2, f"{recipe}: only {refused} of {len(cases)} cases were refused"


def test_the_seeded_generator_is_reproducible() -> None:
    assert random_cases(seed=7, count=20) == random_cases(seed=7, count=20)


def test_the_sandbox_installer_turns_every_hostile_package_into_an_install_error(tmp_path: Path) -> None:
    """The daemon's path: whatever the bytes, `install_pkg` fails with its own error, never a crash."""
    box = SandboxPlatform(Paths(root=tmp_path / "mac"), arch="arm64", os_version="14.6")
    outcomes: Counter[str] = Counter()
    for n, case in enumerate(random_cases(seed=11, count=EXAMPLES // 2)):
        path = tmp_path / f"{n}.pkg"
        path.write_bytes(case.data)
        try:
            asyncio.run(box.install_pkg(path, timeout=60))
        except PlatformError as exc:
            assert "\n" not in str(exc), f"{case.recipe}: {exc!r}"
            outcomes[type(exc).__name__] += 1
        else:
            outcomes["installed"] += 1
    assert outcomes["InstallError"] > 0 and set(outcomes) <= {"installed", "InstallError", "PlatformError"}
