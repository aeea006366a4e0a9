"""InstallApplications' bootstrap.json loads as InstallApplications runs it, quirks included."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

import pytest

from bootstrapper.errors import ManifestError
from bootstrapper.manifest.kinds import ItemType
from bootstrapper.manifest.load import load_bytes, load_file
from bootstrapper.manifest.model import AllOf, Arch, FailPolicy, Format, Stage

HASH = "b" * 64
MANIFESTS = Path(__file__).resolve().parents[1] / "data" / "manifests"
VALID = sorted(MANIFESTS.glob("*.json"))


def ia(doc: object) -> bytes:
    return json.dumps(doc, indent=2).encode()


def item(**extra: object) -> dict[str, object]:
    base: dict[str, object] = {
        "name": "x",
        "type": "rootscript",
        "url": "https://e.com/x.sh",
        "file": "/Library/installapplications/x.sh",
        "hash": HASH,
    }
    base.update(extra)
    return base


@pytest.mark.parametrize("path", VALID, ids=[p.name for p in VALID])
def test_every_real_installapplications_manifest_validates(path: Path) -> None:
    loaded = load_file(path)
    assert loaded.manifest.format is Format.IA
    assert loaded.manifest.items


def test_the_windows_port_manifest_is_refused_with_clear_errors() -> None:
    with pytest.raises(ManifestError) as info:
        load_file(MANIFESTS / "invalid" / "windowsadmins-installapplications-example.json", display="w.json")
    assert info.value.problems == [
        "w.json:3:5: setupassistant[0] → name: missing; every item needs a name",
        "w.json:9:15: setupassistant[0] → type: 'msi' is not an item type; expected one of package, rootscript, "
        "userscript, rootfile, userfile, wait",
        "w.json:13:5: userland[0] → name: missing; every item needs a name",
        "w.json:19:15: userland[0] → type: 'nupkg' is not an item type; expected one of package, rootscript, "
        "userscript, rootfile, userfile, wait",
    ]


def test_erikng_demo_reads_every_field() -> None:
    m = load_file(MANIFESTS / "erikng-installapplicationsdemo-demo.json").manifest
    assert [len(m.stage(s)) for s in Stage] == [1, 5, 7]
    munki = m.stage(Stage.SETUPASSISTANT)[0]
    assert munki.packageid == "com.googlecode.munki.launchd"
    assert munki.version == "3.0.3265"
    assert munki.hash == "66441eaba5aa717fd81d1a84ddfb309da90cff6bc5904dc0e94c1f6e216c2a89"
    assert munki.url is not None
    assert munki.url.endswith("munkitools_launchd-3.0.3265.pkg?raw=true")
    assert sum(1 for i in m.items if i.donotwait) >= 1
    assert {i.type for i in m.items} == {ItemType.PACKAGE, ItemType.ROOTSCRIPT, ItemType.USERSCRIPT}


def test_ports_keys_are_read() -> None:
    m = load_file(MANIFESTS / "go-installapplications-README-example.json").manifest
    pkg = m.stage(Stage.USERLAND)[0]
    assert pkg.fail_policy is FailPolicy.FAILURE_IS_NOT_AN_OPTION
    assert pkg.required
    user_prefs = m.stage(Stage.USERLAND)[1]
    assert user_prefs.skip_if == AllOf((Arch("x86_64"),))
    assert m.stage(Stage.USERLAND)[2].type is ItemType.USERFILE
    assert m.stage(Stage.PREFLIGHT)[0].file == PurePosixPath("/Library/bootstrapper/setup.sh")


def test_missing_preflight_and_empty_stages_load() -> None:
    loaded = load_bytes(ia({"setupassistant": [], "userland": [item()]}), "b.json")
    assert len(loaded.manifest.items) == 1


def test_empty_packageid_and_version_mean_install_every_time_with_a_warning() -> None:
    doc = {
        "userland": [
            item(type="package", packageid="", version="", file="/Library/installapplications/a b.pkg")
        ]
    }
    loaded = load_bytes(ia(doc), "b.json")
    pkg = loaded.manifest.items[0]
    assert pkg.packageid is None
    assert pkg.file == PurePosixPath("/Library/installapplications/a b.pkg")
    assert any(
        "packageid: needed to tell whether the package is installed" in str(w) for w in loaded.warnings
    )


def test_url_quirks_load() -> None:
    urls = [
        "https://test.example.se:20443/custompkg/x.pkg",
        "https://github.com/o/r/blob/main/x.pkg?raw=true",
        "https://cdn.example.com//double//slash.sh",
    ]
    doc = {"userland": [item(name=f"n{i}", url=u) for i, u in enumerate(urls)]}
    loaded = load_bytes(ia(doc), "b.json")
    assert [i.url for i in loaded.manifest.items] == urls


def test_unknown_keys_and_placeholder_hashes_are_warnings() -> None:
    doc = {"userland": [item(hash="sha256 hash", displayname="X")]}
    loaded = load_bytes(ia(doc), "b.json")
    assert loaded.manifest.items[0].hash is None
    texts = [str(w) for w in loaded.warnings]
    assert any("displayname: unknown key, ignored" in t for t in texts)
    assert any("the item is refused at run time until it has a real sha256" in t for t in texts)


def test_user_items_in_setupassistant_are_refused_not_silently_dropped() -> None:
    doc = {"setupassistant": [item(type="userscript")]}
    with pytest.raises(ManifestError, match="belong in userland, not setupassistant"):
        load_bytes(ia(doc), "b.json")


def test_packages_in_preflight_are_ignored_with_a_warning() -> None:
    doc = {"preflight": [item(type="package", packageid="a", version="1")]}
    loaded = load_bytes(ia(doc), "b.json")
    assert loaded.manifest.items == ()
    assert any("preflight runs root scripts only; this package is ignored" in str(w) for w in loaded.warnings)


def test_trailing_whitespace_and_no_final_newline_load() -> None:
    text = b'{"userland": [ \n' + json.dumps(item()).encode() + b"   \n]}"
    assert load_bytes(text, "b.json").manifest.items[0].name == "x"


def test_a_rootscript_already_on_disk_needs_no_url() -> None:
    """As InstallApplications allows: `file` and `hash`, no `url` (an earlier package put it there)."""
    on_disk = {"name": "s", "type": "rootscript", "file": "/Library/Scripts/s.sh", "hash": HASH}
    loaded = load_bytes(ia({"setupassistant": [on_disk]}), "b.json")
    (script,) = loaded.manifest.items
    assert (script.url, script.file, script.hash) == (None, PurePosixPath("/Library/Scripts/s.sh"), HASH)
    assert loaded.warnings == ()  # not a download: the place outside the install folder is no matter


@pytest.mark.parametrize("missing", ["file", "hash"])
def test_a_rootscript_without_url_needs_its_file_and_hash(missing: str) -> None:
    on_disk = {"name": "s", "type": "rootscript", "file": "/Library/Scripts/s.sh", "hash": HASH}
    del on_disk[missing]
    with pytest.raises(ManifestError) as info:
        load_bytes(ia({"setupassistant": [on_disk]}), "b.json")
    assert any(
        "url: missing; give where it is downloaded from, or `file` and `hash` of a script already on the Mac"
        in p
        for p in info.value.problems
    ), info.value.problems


def test_other_types_still_need_a_url() -> None:
    pkg = {"name": "p", "type": "package", "file": "/Library/p.pkg", "hash": HASH, "required": True}
    with pytest.raises(ManifestError, match="url: missing; where is it downloaded from"):
        load_bytes(ia({"setupassistant": [pkg]}), "b.json")
