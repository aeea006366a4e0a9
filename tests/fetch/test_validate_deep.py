"""`validate --deep` against a manifest served from loopback: sizes, hashes, package ids and versions."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest
from rich.console import Console

from bootstrapper.commands.validate import deep_validate
from bootstrapper.engine.deep import check_items
from bootstrapper.fetch import FetchOptions
from bootstrapper.manifest.load import load_file
from bootstrapper.manifest.model import Manifest
from tests.fetch.conftest import sha
from tests.support.httpfault import FaultServer
from tests.support.pkgwriter import build_component_pkg

SCRIPT = b"#!/bin/sh\necho configured\n"
OPTIONS = FetchOptions(allow_http=True, connect_timeout=5, read_timeout=5)


@pytest.fixture
def served(srv: FaultServer, tmp_path: Path) -> dict[str, tuple[str, bytes]]:
    pkg = build_component_pkg(
        tmp_path / "Demo.pkg", "com.example.demo", "1.0", {"Applications/Demo.txt": b"hi"}
    )
    files = {"/configure.sh": SCRIPT, "/Demo.pkg": pkg.read_bytes()}
    return {path: (srv.add(path, lambda ex, d=data: ex.serve(d)), data) for path, data in files.items()}  # type: ignore[misc]


def manifest(tmp_path: Path, body: str) -> Manifest:
    path = tmp_path / "bootstrap.yaml"
    path.write_text("format: 1\nsettings:\n  allow_http: true\n" + body)
    return load_file(path, allow_http=True).manifest


def good(served: dict[str, tuple[str, bytes]], version: str = "1.0", script_hash: str | None = None) -> str:
    script_url, script = served["/configure.sh"]
    pkg_url, pkg = served["/Demo.pkg"]
    return f"""
setupassistant:
  - name: Configure
    type: rootscript
    url: {script_url}
    hash: {script_hash or sha(script)}
  - name: Demo
    type: package
    url: {pkg_url}
    hash: {sha(pkg)}
    size: {len(pkg)}
    packageid: com.example.demo
    version: "{version}"
"""


def run(m: Manifest) -> tuple[int, str]:
    out = io.StringIO()
    code = deep_validate([m], OPTIONS, Console(file=out, width=300, color_system=None))
    return code, out.getvalue()


def test_a_correct_manifest_passes(served: dict[str, tuple[str, bytes]], tmp_path: Path) -> None:
    code, out = run(manifest(tmp_path, good(served)))
    assert code == 0, out
    assert out.count("ok") >= 2


def test_wrong_hash_fails_and_prints_the_hash_to_paste(
    served: dict[str, tuple[str, bytes]], tmp_path: Path
) -> None:
    code, out = run(manifest(tmp_path, good(served, script_hash="ab" * 32)))
    assert code == 2
    assert f"paste this hash: {sha(SCRIPT)}" in out


def test_package_version_that_differs_from_the_manifest_fails(
    served: dict[str, tuple[str, bytes]], tmp_path: Path
) -> None:
    m = manifest(tmp_path, good(served, version="2.0"))
    checks = asyncio.run(check_items(m, OPTIONS, tmp_path / "work"))
    (demo,) = [c for c in checks if c.item.name == "Demo"]
    assert demo.mismatches == ["version is '1.0', the manifest says '2.0'"]
    assert run(m)[0] == 2


def test_package_id_that_is_not_in_the_package_fails(
    served: dict[str, tuple[str, bytes]], tmp_path: Path
) -> None:
    m = manifest(
        tmp_path, good(served).replace("packageid: com.example.demo", "packageid: com.example.other")
    )
    code, out = run(m)
    assert code == 2
    assert "com.example.other" in out and "com.example.demo" in out


def test_missing_file_is_a_mismatch(srv: FaultServer, tmp_path: Path) -> None:
    body = f"""
userland:
  - name: Gone
    type: userscript
    url: {srv.url("/gone.sh")}
    hash: "{"0" * 64}"
"""
    code, out = run(manifest(tmp_path, body))
    assert code == 2
    assert "404" in out


def test_validate_deep_command_exits_2_on_a_mismatch(
    served: dict[str, tuple[str, bytes]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bootstrapper.cli import main

    manifest(tmp_path, good(served))
    path = str(tmp_path / "bootstrap.yaml")
    assert main(["validate", "--deep", "--allow-http", path]) == 0
    manifest(tmp_path, good(served, script_hash="cd" * 32))
    assert main(["validate", "--deep", "--allow-http", path]) == 2
    assert sha(SCRIPT) in capsys.readouterr().out
    assert main(["validate", "--deep", "--format", "json", path]) == 2


def _flaky(data: bytes, failures: int) -> object:
    """A handler that answers 500 `failures` times, then serves `data`."""
    seen = {"n": 0}

    def handle(ex: object) -> None:
        seen["n"] += 1
        if seen["n"] <= failures:
            ex.reply(500)  # type: ignore[attr-defined]
        else:
            ex.serve(data)  # type: ignore[attr-defined]

    return handle


def test_deep_honours_the_items_retries(srv: FaultServer, tmp_path: Path) -> None:
    url = srv.add("/flaky.sh", _flaky(SCRIPT, failures=2))  # type: ignore[arg-type]
    body = f"""
setupassistant:
  - name: Flaky
    type: rootscript
    url: {url}
    hash: {sha(SCRIPT)}
    retries: 2
    retrywait: 0
"""
    code, out = run(manifest(tmp_path, body))
    assert code == 0, out


def test_deep_gives_up_after_the_items_retries_without_saying_retrying(
    srv: FaultServer, tmp_path: Path
) -> None:
    url = srv.add("/down.sh", _flaky(SCRIPT, failures=99))  # type: ignore[arg-type]
    body = f"""
setupassistant:
  - name: Down
    type: rootscript
    url: {url}
    hash: {sha(SCRIPT)}
    retries: 1
    retrywait: 0
"""
    code, out = run(manifest(tmp_path, body))
    assert code == 1
    assert "HTTP 500" in out and "retrying" not in out


def test_deep_text_ends_with_one_verdict_line(
    served: dict[str, tuple[str, bytes]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bootstrapper.cli import main

    manifest(tmp_path, good(served, script_hash="cd" * 32))
    path = str(tmp_path / "bootstrap.yaml")
    assert main(["validate", "--deep", "--allow-http", path]) == 2
    lines = capsys.readouterr().out.strip().splitlines()
    assert (
        lines[-1].startswith(f"{path}: invalid (2 items, ") and "1 item not as the manifest says" in lines[-1]
    )
    assert not any(line.startswith(f"{path}: valid") for line in lines)


def test_deep_json_and_github_formats(
    served: dict[str, tuple[str, bytes]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from bootstrapper.cli import main

    manifest(tmp_path, good(served, script_hash="cd" * 32))
    path = str(tmp_path / "bootstrap.yaml")
    assert main(["validate", "--deep", "--format", "json", "--allow-http", path]) == 2
    doc = json.loads(capsys.readouterr().out)
    (checked,) = doc["manifests"]
    configure = next(c for c in checked["deep"] if c["name"] == "Configure")
    assert configure["ok"] is False and configure["sha256"] == sha(SCRIPT)
    assert main(["validate", "--deep", "--format", "github", "--allow-http", path]) == 2
    out = capsys.readouterr().out
    errors = [line for line in out.splitlines() if line.startswith("::error file=")]
    assert len(errors) == 1 and "Configure" in errors[0] and ",line=" in errors[0]
