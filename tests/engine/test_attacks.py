"""A local user against the daemon: real `bootstrapper run --sandbox` processes, a second uid (501).

Each test is named after the attack. The sandbox lives in a root-owned 0755 folder under /tmp with
a root-owned sticky `Users/Shared` (as on a Mac), so uid 501 can reach it, plant files and links
there, and try to swap them while the daemon runs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bootstrapper.paths import Paths
from tests.support.pkgwriter import build_component_pkg
from tests.support.runs import run_argv
from tests.support.site import Site

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="playing a second local user (uid 501) needs root"),
]

ATTACKER = 501
REFUSED_LINK = "is a symbolic link another user could have planted; use the real folder's path"


def attack(script: str) -> subprocess.CompletedProcess[str]:
    """Run a shell script as uid 501 (no account needed), as a local attacker would."""
    return subprocess.run(
        ["/bin/sh", "-c", script],
        user=ATTACKER,
        group=ATTACKER,
        extra_groups=[],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


@pytest.fixture
def mac() -> Iterator[Paths]:
    """A sandbox uid 501 can reach: root-owned 0755 folders and a root-owned sticky Users/Shared."""
    root = Path(tempfile.mkdtemp(prefix="attack-", dir="/tmp"))
    root.chmod(0o755)
    shared = root / "Users" / "Shared"
    shared.mkdir(parents=True)
    (root / "Users").chmod(0o755)
    shared.chmod(0o1777)
    try:
        yield Paths(root=root)
    finally:
        shutil.rmtree(root)


def bait(data: bytes) -> Path:
    """A world-readable file the attacker copies their bytes from."""
    folder = Path(tempfile.mkdtemp(prefix="bait-", dir="/tmp"))
    folder.chmod(0o755)
    path = folder / "bytes"
    path.write_bytes(data)
    path.chmod(0o644)
    return path


def plant(data: bytes, dest: Path) -> None:
    source = bait(data)
    try:
        done = attack(f"cp {source} {dest}")
        assert done.returncode == 0, done.stderr
    finally:
        shutil.rmtree(source.parent)
    assert dest.stat().st_uid == ATTACKER


def daemon(url: str, root: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(run_argv(url, root), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def run(url: str, root: Path) -> tuple[int, str]:
    proc = daemon(url, root)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


def record(paths: Paths) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(paths.result_file.read_text())
    return data


def step(paths: Paths, step_id: str) -> dict[str, Any]:
    return next(s for s in record(paths)["steps"] if s["id"] == step_id)


def downloaded(paths: Paths, key: str) -> bool:
    """The daemon reported the item's bytes verified and in place."""
    log = paths.log_dir / "events.jsonl"
    if not log.exists():
        return False
    for line in log.read_text().splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if (
            event.get("event") == "download_progress"
            and event.get("step_id") == key
            and event.get("total_bytes")
            and event.get("done_bytes") == event.get("total_bytes")
        ):
            return True
    return False


def _package(tmp_path: Path, name: str, marker: str) -> bytes:
    pkg = build_component_pkg(
        tmp_path / name,
        "com.example.app",
        "1.0",
        {f"Library/Example/{marker}": marker.encode()},
        scripts={"postinstall": f'#!/bin/sh\ntouch "$BOOTSTRAPPER_ROOT/{marker}-postinstall"\n'},
    )
    return pkg.read_bytes()


def test_package_swap_in_a_shared_folder_installs_our_package(mac: Paths, site: Site, tmp_path: Path) -> None:
    good = _package(tmp_path, "good.pkg", "good")
    evil = _package(tmp_path, "evil.pkg", "evil")
    pkg_url, pkg_hash = site.add("app.pkg", good)
    gate = site.script("gate.sh", 'while [ ! -e "$BOOTSTRAPPER_ROOT/go" ]; do sleep 0.05; done')
    doc = {
        "setupassistant": [
            {"name": "gate", "type": "rootscript", "file": "/Library/installapplications/gate.sh",
             "url": f"{site.base}/{gate['url']}", "hash": gate["hash"]},
            {"name": "app", "type": "package", "file": "/Users/Shared/app.pkg",
             "url": f"{site.base}/{pkg_url}", "hash": pkg_hash,
             "packageid": "com.example.app", "version": "1.0"},
        ]
    }  # fmt: skip
    url = f"{site.base}/{site.add('bootstrap.json', json.dumps(doc).encode())[0]}"
    dest = mac.root / "Users/Shared/app.pkg"
    plant(good, dest)  # the right bytes, so a check by hash alone would keep the attacker's file

    proc = daemon(url, mac.root)
    try:
        deadline = time.monotonic() + 60
        while not downloaded(mac, "setupassistant[1]"):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the package was never downloaded"
            time.sleep(0.05)
        # After the download, before the install: the attacker puts their own package there.
        source = bait(evil)
        try:
            attack(
                f"cp {source} {dest.parent}/.swap && mv -f {dest.parent}/.swap {dest} || cat {source} > {dest}"
            )
        finally:
            shutil.rmtree(source.parent)
        (mac.root / "go").touch()
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert not (mac.root / "evil-postinstall").exists(), "the attacker's postinstall ran as root"
    assert (mac.root / "good-postinstall").exists()
    assert (mac.root / "Library/Example/good").exists()
    assert not (mac.root / "Library/Example/evil").exists()
    # the run deletes the packages it downloaded at the end, wherever they were placed
    assert not dest.exists() or (dest.stat().st_uid == 0 and dest.read_bytes() == good)


def test_preplanted_rootfile_with_the_right_bytes_is_replaced_by_roots(mac: Paths, site: Site) -> None:
    data = b"PermitRootLogin no\n"
    file_url, digest = site.add("sshd.conf", data)
    url = site.manifest(
        {
            "setupassistant": [
                {
                    "name": "conf",
                    "type": "rootfile",
                    "file": "/Users/Shared/sshd.conf",
                    "url": file_url,
                    "hash": digest,
                }
            ]
        }
    )
    dest = mac.root / "Users/Shared/sshd.conf"
    plant(data, dest)
    code, err = run(url, mac.root)
    assert code == 0, err
    info = dest.stat()
    assert (info.st_uid, info.st_gid) == (0, 0)
    assert dest.read_bytes() == data
    # root's file in a sticky folder: the attacker can neither change nor replace it now
    assert attack(f"printf x >> {dest}").returncode != 0
    assert attack(f"rm -f {dest}").returncode != 0 and dest.exists()


def _secret(mac: Paths) -> Path:
    """A root-only folder, like /var/root or /Library/LaunchDaemons, and a link to it in Shared."""
    secret = mac.root / "Library" / "Secret"
    secret.mkdir(parents=True, mode=0o700)
    done = attack(f"ln -s {secret} {mac.root}/Users/Shared/drop")
    assert done.returncode == 0, done.stderr
    return secret


def test_symlinked_parent_folder_of_a_rootfile_is_refused(mac: Paths, site: Site) -> None:
    secret = _secret(mac)
    file_url, digest = site.add("f.txt", b"root's\n")
    url = site.manifest(
        {
            "setupassistant": [
                {
                    "name": "f",
                    "type": "rootfile",
                    "file": "/Users/Shared/drop/f.txt",
                    "url": file_url,
                    "hash": digest,
                }
            ]
        }
    )
    code, err = run(url, mac.root)
    assert code == 1, err
    assert list(secret.iterdir()) == []
    reason = step(mac, "setupassistant[0]")["reason"]
    assert step(mac, "setupassistant[0]")["status"] == "failed"
    assert f"{mac.root}/Users/Shared/drop: {REFUSED_LINK}" in reason
    assert "\n" not in reason and "Traceback" not in err


def test_symlinked_parent_folder_of_a_userfile_is_refused(mac: Paths, site: Site) -> None:
    secret = _secret(mac)
    file_url, digest = site.add("u.txt", b"the user's\n")
    url = site.manifest(
        {
            "userland": [
                {
                    "name": "u",
                    "type": "userfile",
                    "file": "/Users/Shared/drop/u.txt",
                    "url": file_url,
                    "hash": digest,
                }
            ]
        }
    )
    code, err = run(url, mac.root)
    assert code == 0, err  # failable_execution: the step failed, the run went on
    assert list(secret.iterdir()) == []
    entry = step(mac, "userland[0]")
    assert entry["status"] == "failed"
    assert entry["reason"] == f"{mac.root}/Users/Shared/drop: {REFUSED_LINK}"
    assert "Traceback" not in err


def test_a_local_manifest_another_user_owns_is_not_obeyed(mac: Paths, site: Site) -> None:
    script = site.script("x.sh", 'touch "$BOOTSTRAPPER_ROOT/obeyed"')
    doc = (
        "format: 1\nsettings: {allow_http: true}\nsetupassistant:\n"
        f"  - {{name: x, type: rootscript, url: '{site.base}/{script['url']}', hash: {script['hash']}}}\n"
    )
    manifest = mac.root / "Users/Shared/manifest.yaml"
    plant(doc.encode(), manifest)
    code, err = run(str(manifest), mac.root)
    assert code == 2, err
    assert not (mac.root / "obeyed").exists()
    reason = record(mac)["reason"]
    assert reason == (
        f"{manifest}: is owned by uid 501, who could have changed it; not trusted (remove it or make it root's)"
    )
    assert "Traceback" not in err
