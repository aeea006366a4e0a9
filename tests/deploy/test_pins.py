"""The build's pinned inputs: pkg/pins.toml agrees with pyproject.toml, and pkg/requirements.lock was
made from pyproject.toml's runtime dependencies (after changing them, `make lock`)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from bootstrapper.errors import UsageError
from pkg.tooling import lock, pins

REPO = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
RELOCK = "pkg/requirements.lock is stale: run `make lock` and commit it"


def test_the_bundled_python_is_one_pyproject_declares() -> None:
    pin = pins.load()
    assert pin.python_version in SpecifierSet(PROJECT["requires-python"]), (
        f"pkg/pins.toml pins Python {pin.python_version}, outside requires-python {PROJECT['requires-python']}"
    )
    lines = {c.rsplit(" :: ", 1)[1] for c in PROJECT["classifiers"] if re.fullmatch(r".*Python :: 3\.\d+", c)}
    assert pin.python_short in lines, (
        f"add the classifier Programming Language :: Python :: {pin.python_short}"
    )
    lowest = min(lines, key=lambda v: tuple(map(int, v.split("."))))
    assert f"{lowest}.0" in SpecifierSet(PROJECT["requires-python"]) and f"{lowest}" == "3.11"


def test_the_pins_name_verifiable_inputs() -> None:
    pin = pins.load()
    assert pin.python_url == (
        f"https://www.python.org/ftp/python/{pin.python_version}/python-{pin.python_version}-macos11.pkg"
    )
    assert re.fullmatch(r"[0-9a-f]{40}", pin.relocatable_python_commit)
    assert re.fullmatch(r"[0-9a-f]{64}", pin.installer_sha256()) and pin.python_team_id == "BMM5U3QVKW"
    assert pin.interpreter.as_posix().endswith(f"Versions/{pin.python_short}/bin/python{pin.python_short}")


def test_make_pkg_refuses_an_installer_without_a_hash(tmp_path: Path) -> None:
    text = (REPO / "pkg" / "pins.toml").read_text()
    empty = tmp_path / "pins.toml"
    empty.write_text(re.sub(r'(?m)^sha256 = ".*"$', 'sha256 = ""', text))
    with pytest.raises(UsageError, match=r"python\.sha256 is empty; copy the SHA-256 of https://www\.python"):
        pins.load(empty).installer_sha256(empty)
    filled = tmp_path / "filled.toml"
    filled.write_text(re.sub(r'(?m)^sha256 = ".*"$', f'sha256 = "{"ab" * 32}"', text))
    assert pins.load(filled).installer_sha256(filled) == "ab" * 32


@pytest.mark.parametrize(
    ("line", "replacement", "message"),
    [
        (r'sha256 = ".*"', 'sha256 = "abc"', "python.sha256 = 'abc': expected 64 lower-case hex"),
        (r'commit = ".*"', 'commit = "main"', "relocatable-python.commit = 'main': expected a 40-hex"),
        (r'team_id = ".*"', 'team_id = "psf"', "python.team_id = 'psf': expected the 10-character Apple"),
        (
            r'url = "https://www.python.org.*"',
            'url = "https://x.org/python-3.13.1-macos11.pkg"',
            "not python-3",
        ),
    ],
)
def test_a_bad_pin_is_one_line_naming_the_field(
    tmp_path: Path, line: str, replacement: str, message: str
) -> None:
    bad = tmp_path / "pins.toml"
    bad.write_text(re.sub(f"(?m)^{line}$", replacement, (REPO / "pkg" / "pins.toml").read_text(), count=1))
    with pytest.raises(UsageError, match=re.escape(message)) as caught:
        pins.load(bad)
    assert "\n" not in str(caught.value)


def test_the_lock_was_made_from_pyprojects_runtime_dependencies() -> None:
    locked = lock.parse(lock.LOCK.read_text())
    assert locked.requires == lock.top_level(), RELOCK
    for requirement in map(Requirement, PROJECT["dependencies"]):
        name = lock.normalize(requirement.name)
        assert name in locked.versions, f"{name} is not locked; {RELOCK}"
        assert requirement.specifier.contains(locked.versions[name], prereleases=True), (
            f"{name} {locked.versions[name]} does not satisfy {requirement.specifier}; {RELOCK}"
        )


def test_every_locked_package_has_hashes_and_no_dev_tool_is_locked() -> None:
    locked = lock.parse(lock.LOCK.read_text())
    assert locked.versions and set(locked.versions) == set(locked.hashes)
    assert all(locked.hashes[name] for name in locked.versions)
    assert not {"pytest", "mypy", "ruff", "hypothesis", "pip", "setuptools"} & set(locked.versions)
    assert PROJECT["name"] not in locked.versions


def test_a_new_runtime_dependency_makes_the_lock_stale(tmp_path: Path) -> None:
    project = tmp_path / "pyproject.toml"
    text = (REPO / "pyproject.toml").read_text()
    anchor = '"pyyaml>=6.0.1",'
    assert anchor in text
    project.write_text(text.replace(anchor, anchor + '\n    "truststore>=0.10",'))
    assert lock.parse(lock.LOCK.read_text()).requires != lock.top_level(project)


def test_lock_round_trip_and_one_line_requirements() -> None:
    reports = [
        {"install": [_item("PyYAML", "6.0.4", "a" * 64), _item("rich", "15.0.0", "c" * 64)]},
        {"install": [_item("pyyaml", "6.0.4", "b" * 64), _item("rich", "15.0.0", "c" * 64)]},
    ]
    locked = lock.merge(reports)
    locked.requires = ["pyyaml>=6", "rich>=13"]
    again = lock.parse(lock.render(locked, "3.14"))
    assert again.requires == locked.requires and again.versions == {"pyyaml": "6.0.4", "rich": "15.0.0"}
    assert again.hashes["pyyaml"] == {"a" * 64, "b" * 64}
    line = lock.requirement_lines(again, ["PyYAML"])
    assert line == f"pyyaml==6.0.4 --hash=sha256:{'a' * 64} --hash=sha256:{'b' * 64}\n"
    with pytest.raises(UsageError, match=r"not in pkg/requirements\.lock; run `make lock`"):
        lock.requirement_lines(again, ["cryptography"])


def test_platforms_that_disagree_on_a_version_stop_the_lock() -> None:
    reports = [
        {"install": [_item("rich", "15.0.0", "c" * 64)]},
        {"install": [_item("rich", "14.0.0", "d" * 64)]},
    ]
    with pytest.raises(UsageError, match=r"rich: pip picked 15\.0\.0 for one Mac platform and 14\.0\.0"):
        lock.merge(reports)


def _item(name: str, version: str, sha: str) -> dict[str, object]:
    return {
        "metadata": {"name": name, "version": version},
        "download_info": {"archive_info": {"hashes": {"sha256": sha}}},
    }
