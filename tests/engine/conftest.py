from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bootstrapper.config import Config
from bootstrapper.daemon import RunRequest, run_with_provision
from bootstrapper.paths import Paths
from bootstrapper.platform.sandbox import SandboxPlatform
from tests.support.site import Site, serve


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    yield from serve(tmp_path / "site")


@pytest.fixture
def sandbox(tmp_path: Path) -> Paths:
    root = tmp_path / "mac"
    root.mkdir()
    return Paths(root=root)


def run_sandbox(paths: Paths, url: str, platform: SandboxPlatform | None = None, **settings: Any) -> int:
    """The daemon's whole job, in this process, against the sandbox (the agent is a real process)."""
    config = dataclasses.replace(Config(), **{"allow_http": True, "agent_checkin_timeout": 15.0, **settings})
    platform = platform or SandboxPlatform(paths, os_version="14.6", arch="arm64", model="Mac15,3")
    return asyncio.run(run_with_provision(RunRequest(url, sandbox=True), config, paths, platform))


def result(paths: Paths) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(paths.result_file.read_text())
    return data


def statuses(paths: Paths) -> dict[str, str]:
    return {s["id"]: s["status"] for s in result(paths)["steps"]}
